r"""Exports networks as TF Serving SavedModels: <base_dir>/<model_name>/<version>/.

    # one model from a weights directory (converted or trained)
    python export/export_saved_model.py --weights_dir=checkpoints/demo/gmm_men_tshirts \
        --model_name=gmm_men_tshirts --base_dir=exported
    # all nine from <weights_root>/<model_name>/
    python export/export_saved_model.py --all --weights_root=checkpoints/demo --base_dir=exported
    # random weights (to try serving without a checkpoint)
    python export/export_saved_model.py --all --random_weights --config=lite --base_dir=exported
    # the bfloat16 variant as its own version (same signature), e.g. to canary it
    python export/export_saved_model.py --all --weights_root=checkpoints/demo --base_dir=exported \
        --precision=bfloat16
    # (refused on a CPU without native bfloat16, AVX512_BF16 or AMX, where it is several times
    # slower than float32; --force exports it anyway, with a warning)
    # the photo front end (pose and parse from the photo; needs the frontend extra), alone or
    # with --all
    python export/export_saved_model.py --frontend --base_dir=exported
"""

import os
import sys

from everywear_tf.cli import app as command  # noqa: E402 (before TensorFlow)

command.quiet_tensorflow()

from absl import flags  # noqa: E402

from everywear_tf import configs  # noqa: E402
from everywear_tf import errors  # noqa: E402
from everywear_tf import hardware  # noqa: E402
from everywear_tf import spec  # noqa: E402
from everywear_tf import weights  # noqa: E402
from everywear_tf.export import exporter  # noqa: E402
from everywear_tf.models import factory  # noqa: E402

_MODEL_NAME = flags.DEFINE_string('model_name', None, 'One model, e.g. gmm_men_tshirts.')
_ALL = flags.DEFINE_bool('all', False, 'Export all nine <module>_<category> models and each '
                         "category's one-call tryon_<category> model.")
_FRONTEND = flags.DEFINE_bool('frontend', False, 'Export the photo front end as the frontend '
                              'model (converted from the installed mediapipe wheel).')
_WEIGHTS_DIR = flags.DEFINE_string('weights_dir', None, 'Weights directory of --model_name.')
_WEIGHTS_ROOT = flags.DEFINE_string('weights_root', None,
                                    'Directory holding one weights directory per model name.')
_RANDOM = flags.DEFINE_bool('random_weights', False, 'Export untrained networks.')
_CONFIG = flags.DEFINE_enum('config', configs.LITE, list(configs.CONFIG_NAMES),
                            'Network size for --random_weights.')
_BASE_DIR = flags.DEFINE_string('base_dir', 'exported', 'The serving tree to export into.')
_VERSION = flags.DEFINE_string('version', exporter.AUTO, "An integer, or 'auto' (next free).")
_OVERWRITE = flags.DEFINE_bool('overwrite', False, 'Replace an existing version.')
_PRECISION = flags.DEFINE_enum('precision', factory.FLOAT32, list(factory.PRECISIONS),
                               'What the convolutions compute in; the signature is the same. '
                               'bfloat16 is refused on a CPU without native bfloat16 '
                               '(avx512_bf16 or amx_bf16) unless --force.')
_FORCE = flags.DEFINE_bool('force', False, 'Export the bfloat16 variant even on a CPU without '
                           'native bfloat16 (it is then several times slower than float32).')


def _model_for(name):
    module, _ = spec.module_of(name)
    if _RANDOM.value:
        return factory.build(configs.get(module, _CONFIG.value)), 'random weights'
    directory = _WEIGHTS_DIR.value or os.path.join(_WEIGHTS_ROOT.value, name)
    return weights.load(directory, module=module), directory


def main(argv):
    del argv
    if _ALL.value and _MODEL_NAME.value or not (_ALL.value or _MODEL_NAME.value or
                                                 _FRONTEND.value):
        print('export: error: pass exactly one of --all and --model_name (and/or --frontend)',
              file=sys.stderr)
        return 2
    sources = [bool(_WEIGHTS_DIR.value), bool(_WEIGHTS_ROOT.value), _RANDOM.value]
    networks = _ALL.value or _MODEL_NAME.value
    if networks and sum(sources) != 1 or (_ALL.value and _WEIGHTS_DIR.value):
        print('export: error: pass one of --weights_dir (with --model_name), --weights_root or '
              '--random_weights', file=sys.stderr)
        return 2
    names = (spec.all_model_names() if _ALL.value else
             (_MODEL_NAME.value,) if _MODEL_NAME.value else ())
    try:
        if names and _PRECISION.value == factory.BFLOAT16:
            hardware.check_bfloat16('export of the bfloat16 variant', _FORCE.value,
                                    warn=lambda m: print(f'export: {m}', file=sys.stderr))
        if _FRONTEND.value:
            from everywear_tf.inference.frontend import estimator
            path = exporter.export_module(estimator.FrontEndModule.from_mediapipe(),
                                          _BASE_DIR.value, spec.FRONTEND_MODEL, _VERSION.value,
                                          overwrite=_OVERWRITE.value,
                                          manifest={'source': 'mediapipe==0.10.21 model files'})
            print(f'exported {spec.FRONTEND_MODEL} to {path}')
        built = {}
        for name in names:
            model, source = _model_for(name)
            path = exporter.export(model, _BASE_DIR.value, name, _VERSION.value,
                                   overwrite=_OVERWRITE.value, source=source,
                                   precision=_PRECISION.value)
            print(f'exported {name} from {source} to {path}')
            built[name] = model, source
        if _ALL.value:  # each category's one-call model beside its three modules
            for category in spec.CATEGORIES:
                parts = [built[spec.model_name(module, category)] for module in spec.MODULES]
                name = spec.category_model_name(category)
                path = exporter.export_category(
                        category, *(model for model, _ in parts), base_dir=_BASE_DIR.value,
                        version=_VERSION.value, overwrite=_OVERWRITE.value,
                        source=', '.join(source for _, source in parts),
                        precision=_PRECISION.value)
                print(f'exported {name} to {path}')
    except (errors.EverywearError, ValueError) as e:
        print(f'export: error: {e}', file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    command.run(main)
