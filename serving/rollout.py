r"""Rolls a category's GMM, EDM and RM to a new version on a running TF Serving.

    python serving/rollout.py publish --category=men_tshirts --weights_root=runs/new_weights
    python serving/rollout.py stage --category=men_tshirts --version=2
    python serving/rollout.py canary --category=men_tshirts --version=2
    python serving/rollout.py promote --category=men_tshirts
    python serving/rollout.py rollback --category=men_tshirts
    python serving/rollout.py status --category=men_tshirts
    python serving/rollout.py publish --category=frontend    # the photo front end, converted
                                                             # from the installed mediapipe

Common flags: --model_config_file (the file every replica reads; rewritten atomically, locked
while a step runs), --export_base (the exported tree on this machine), --server (gRPC host:port
of each replica: repeat it or separate with commas; a step is done when every one reports it).
"""

import json
import sys

from everywear_tf.cli import app as command  # noqa: E402 (before TensorFlow)

command.quiet_tensorflow()

from absl import flags  # noqa: E402

from everywear_tf import errors  # noqa: E402
from everywear_tf import spec  # noqa: E402
from everywear_tf.models import factory  # noqa: E402
from everywear_tf.serving import rollout  # noqa: E402

COMMANDS = ('publish', 'stage', 'canary', 'promote', 'rollback', 'status')
_CATEGORY = flags.DEFINE_enum('category', None, list(spec.CATEGORIES) + [spec.FRONTEND],
                              'The category to roll (its three models and, if the config '
                              'lists it, its one-call model), or the front end.')
_CONFIG = flags.DEFINE_string('model_config_file', 'serving/models.config',
                              'The ModelServerConfig the server reads.')
_EXPORT_BASE = flags.DEFINE_string('export_base', 'exported', 'The exported SavedModel tree.')
_SERVER = flags.DEFINE_multi_string('server', ['localhost:8500'],
                                    'gRPC host:port of a replica; repeat it or separate with '
                                    'commas: a step is done when every one reports it.')
_RELOAD = flags.DEFINE_bool('reload', True, 'Send each config to every replica '
                            '(HandleReloadConfigRequest); --noreload leaves it to their '
                            'polling of --model_config_file and only waits.')
_ROLLBACK_TARGETS = flags.DEFINE_integer('rollback_targets', 1,
                                         'Earlier stable versions kept loaded for rollback; '
                                         'other versions no label points at are unloaded.',
                                         lower_bound=0)
_WEIGHTS_ROOT = flags.DEFINE_string('weights_root', None, 'publish: <root>/<model_name>/ '
                                    'weights directories.')
_VERSION = flags.DEFINE_string('version', None, "publish: a number or 'auto'; stage, canary, "
                               'promote: the version.')
_TIMEOUT = flags.DEFINE_float('timeout', 300.0, 'Seconds each step waits for the replicas.')
_PRECISION = flags.DEFINE_enum('precision', factory.FLOAT32, list(factory.PRECISIONS),
                               'publish: float32, or the bfloat16 variant of the same weights '
                               '(refused on a CPU without native bfloat16 unless --force).')
_FORCE = flags.DEFINE_bool('force', False, 'publish: the bfloat16 variant even on a CPU without '
                           'native bfloat16 (avx512_bf16 or amx_bf16), where it is several '
                           'times slower than float32.')
flags.mark_flag_as_required('category')


def main(argv):
    if len(argv) != 2 or argv[1] not in COMMANDS:
        print(f'rollout: error: say one of {", ".join(COMMANDS)}', file=sys.stderr)
        return 2
    command = argv[1]
    try:
        steps = rollout.Rollout(_CONFIG.value, _EXPORT_BASE.value, _SERVER.value,
                                _CATEGORY.value, _TIMEOUT.value,
                                log=lambda m: print(m, file=sys.stderr, flush=True),
                                rollback_targets=_ROLLBACK_TARGETS.value, reload=_RELOAD.value)
    except (errors.EverywearError, ValueError) as e:
        print(f'rollout: error: {e}', file=sys.stderr)
        return 1
    try:
        if command == 'publish' and _CATEGORY.value == spec.FRONTEND:
            from everywear_tf.inference.frontend import estimator
            print(steps.publish_module(estimator.FrontEndModule.from_mediapipe(),
                                       _VERSION.value or 'auto'))
        elif command == 'publish':
            if not _WEIGHTS_ROOT.value:
                raise rollout.RolloutError('publish needs --weights_root')
            print(steps.publish(_WEIGHTS_ROOT.value, _VERSION.value or 'auto',
                                _PRECISION.value, force=_FORCE.value))
        elif command == 'status':
            print(json.dumps(steps.status(), indent=1))
        elif command == 'rollback':
            print(steps.rollback())
        elif command == 'promote':
            steps.promote(int(_VERSION.value) if _VERSION.value else None)
        else:
            if not _VERSION.value:
                raise rollout.RolloutError(f'{command} needs --version')
            getattr(steps, command)(int(_VERSION.value))
    except (errors.EverywearError, ValueError) as e:
        print(f'rollout: error: {e}', file=sys.stderr)
        return 1
    finally:
        steps.close()
    return 0


if __name__ == '__main__':
    command.run(main)
