r"""Converts an original checkpoint into an Everywear weights directory.

    python checkpoints/convert.py --format=cpvton_torch --source=cp-vton/gmm_final.pth \
        --output_dir=checkpoints/cpvton_gmm
    python checkpoints/convert.py --format=cpvton_torch --variant=cpvton_plus \
        --source=cp-vton-plus/gmm_final.pth --output_dir=checkpoints/cpvton_plus_gmm
    python checkpoints/convert.py --format=viton_stage1 --source=VITON/model/stage1/model-15000 \
        --output_dir=checkpoints/viton_edm
    python checkpoints/convert.py --format=viton_stage2 --source=VITON/model/stage2/model-6000 \
        --output_dir=checkpoints/viton_rm

Run from the repository root with the package installed (``pip install -e .``). Errors are
printed as ``convert: error: <message>`` (exit status 1); when a checkpoint does not match the
network, the first line summarises and every problem follows on its own line.
"""

import sys

from everywear_tf.cli import app as command  # noqa: E402 (before TensorFlow)

command.quiet_tensorflow()

from absl import app  # noqa: E402  (after the environment is set)
from absl import flags  # noqa: E402

from everywear_tf import configs  # noqa: E402
from everywear_tf import errors  # noqa: E402
from everywear_tf import spec  # noqa: E402
from everywear_tf.convert import output  # noqa: E402
from everywear_tf.convert import tables  # noqa: E402

SUMMARY_LIMIT = 12  # problems on the error line; all of them follow, one per line

_SOURCE = flags.DEFINE_string('source', None, 'The original checkpoint: a .pth file, or a TF1 '
                              'checkpoint prefix such as VITON/model/stage1/model-15000.')
_FORMAT = flags.DEFINE_enum('format', None, sorted(output.FORMATS),
                            'cpvton_torch: a CP-VTON / CP-VTON+ GMM state dict (.pth); '
                            'viton_stage1 / viton_stage2: VITON TF1 checkpoints.')
_VARIANT = flags.DEFINE_enum('variant', configs.CPVTON, list(configs.GMM_VARIANTS),
                             'For cpvton_torch: cpvton (RGB cloth branch) or cpvton_plus '
                             '(cloth-mask branch).')
_CONFIG = flags.DEFINE_enum('config', configs.FULL, list(configs.CONFIG_NAMES),
                            'The network size of the checkpoint (the originals are full).')
_OUTPUT_DIR = flags.DEFINE_string('output_dir', None, 'The weights directory to write, e.g. '
                                  'checkpoints/cpvton_gmm.')
_OVERWRITE = flags.DEFINE_bool('overwrite', False, 'Replace an existing output directory.')
flags.mark_flags_as_required(['source', 'format', 'output_dir'])


def error_lines(error):
    """``convert: error: ...`` and, for a long table mismatch, one line per problem."""
    problems = getattr(error, 'problems', ())
    if len(problems) <= SUMMARY_LIMIT:
        return [f'convert: error: {error}']
    summary = f'{error.path}: does not match the network ({len(problems)} problems): ' \
              f'{tables.summarize(problems, SUMMARY_LIMIT)}'
    return [f'convert: error: {summary}', 'all problems:'] + [f'  {p}' for p in problems]


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f'unexpected arguments {argv[1:]}')
    module = output.FORMATS[_FORMAT.value][0]
    if module != spec.GMM and _VARIANT.present:
        print('convert: error: --variant is for --format=cpvton_torch only', file=sys.stderr)
        return 1
    overrides = {'variant': _VARIANT.value} if module == spec.GMM else {}
    config = configs.get(module, _CONFIG.value, **overrides)
    try:
        directory = output.convert_to_directory(_SOURCE.value, _FORMAT.value, config,
                                                _OUTPUT_DIR.value, overwrite=_OVERWRITE.value)
    except errors.EverywearError as e:
        print('\n'.join(error_lines(e)), file=sys.stderr)
        return 1
    print(f'wrote {directory} ({module.upper()}, {_CONFIG.value} config, from '
          f'{_FORMAT.value})')
    return 0


if __name__ == '__main__':
    command.run(main)
