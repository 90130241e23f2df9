"""Converts an original checkpoint into an Everywear weights directory.

    python checkpoints/convert.py --format=cpvton_torch --source=gmm_final.pth \
        --output_dir=checkpoints/cpvton_gmm
    python checkpoints/convert.py --format=cpvton_torch --variant=cpvton_plus \
        --source=cp-vton-plus/gmm_final.pth --output_dir=checkpoints/cpvton_plus_gmm
    python checkpoints/convert.py --format=viton_stage1 --source=model/stage1/model-15000 \
        --output_dir=checkpoints/viton_edm
    python checkpoints/convert.py --format=viton_stage2 --source=model/stage2/model-6000 \
        --output_dir=checkpoints/viton_rm
"""

import os
import sys

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')  # keep TensorFlow's start-up chatter quiet

from absl import app  # noqa: E402  (after the environment is set)
from absl import flags  # noqa: E402

from everywear_tf import configs  # noqa: E402
from everywear_tf import errors  # noqa: E402
from everywear_tf import weights  # noqa: E402
from everywear_tf.convert import cpvton_torch  # noqa: E402
from everywear_tf.convert import viton_tf1  # noqa: E402

FORMATS = {
        'cpvton_torch': ('gmm', lambda source, config: cpvton_torch.convert(source, config)),
        'viton_stage1': ('edm', viton_tf1.convert_stage1),
        'viton_stage2': ('rm', viton_tf1.convert_stage2),
}

_SOURCE = flags.DEFINE_string('source', None, 'The original checkpoint: a .pth file, or a TF1 '
                              'checkpoint prefix such as model/stage1/model-15000.')
_FORMAT = flags.DEFINE_enum('format', None, list(FORMATS), 'What the source is.')
_VARIANT = flags.DEFINE_enum('variant', configs.CPVTON, list(configs.GMM_VARIANTS),
                             'For cpvton_torch: CP-VTON (RGB cloth branch) or CP-VTON+ (mask).')
_CONFIG = flags.DEFINE_enum('config', configs.FULL, list(configs.CONFIG_NAMES),
                            'The network size the checkpoint has (originals are full).')
_OUTPUT_DIR = flags.DEFINE_string('output_dir', None, 'The weights directory to write.')
_OVERWRITE = flags.DEFINE_bool('overwrite', False, 'Replace an existing output directory.')
flags.mark_flags_as_required(['source', 'format', 'output_dir'])


def main(argv):
    del argv
    module, convert = FORMATS[_FORMAT.value]
    overrides = {'variant': _VARIANT.value} if module == 'gmm' else {}
    config = configs.get(module, _CONFIG.value, **overrides)
    try:
        model = convert(_SOURCE.value, config)
        directory = weights.save(model, _OUTPUT_DIR.value, source=_SOURCE.value,
                                 overwrite=_OVERWRITE.value, converted_from=_FORMAT.value,
                                 converter_version=1)
    except errors.EverywearError as e:
        print(f'convert: error: {e}', file=sys.stderr)
        return 1
    print(f'wrote {directory}')
    return 0


if __name__ == '__main__':
    app.run(lambda argv: sys.exit(main(argv)))
