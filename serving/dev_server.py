r"""Development model server speaking TF Serving's gRPC and REST APIs (a stand-in: production
runs the official tensorflow/serving image; see BUILD.md).

    python serving/dev_server.py --model_config_file=serving/models.config \
        --model_base_path_prefix=$PWD/exported --port=8500 --rest_api_port=8501 \
        --allow_version_labels_for_unavailable_models \
        --enable_batching --batching_parameters_file=serving/batching.config

Flag names follow tensorflow_model_server's where they exist.
"""

import os
import signal
import sys
import threading

from everywear_tf.cli import app as command  # noqa: E402 (before TensorFlow)

command.quiet_tensorflow()

from absl import flags  # noqa: E402

from everywear_tf import errors  # noqa: E402
from everywear_tf.serving import batching  # noqa: E402
from everywear_tf.serving import config as serving_config  # noqa: E402
from everywear_tf.serving import dev_server  # noqa: E402
from everywear_tf.serving import manager  # noqa: E402

_CONFIG = flags.DEFINE_string('model_config_file', 'serving/models.config',
                              'ModelServerConfig text proto.')
_PREFIX = flags.DEFINE_string('model_base_path_prefix', None,
                              'The local directory the container path /models stands for: a '
                              'leading /models in the base paths of every config (the file, '
                              'each poll of it, and HandleReloadConfigRequest) is read there, '
                              'as a Docker volume mounts it for tensorflow_model_server.')
_PORT = flags.DEFINE_integer('port', 8500, 'gRPC port (0: any free port).')
_REST_PORT = flags.DEFINE_integer('rest_api_port', 8501, 'REST port (0: any free port).')
_HOST = flags.DEFINE_string('host', '127.0.0.1', 'Address to bind; 127.0.0.1 by default.')
_FS_POLL = flags.DEFINE_float('file_system_poll_wait_seconds', 1.0,
                              'Rescan base paths for versions; 0 scans once.')
_CONFIG_POLL = flags.DEFINE_float('model_config_file_poll_wait_seconds', 0.0,
                                  'Re-read the config file every this many seconds and apply it '
                                  'when it changed (so every replica polling one file follows '
                                  'it); 0 reads it once.')
_ALLOW_LABELS = flags.DEFINE_bool('allow_version_labels_for_unavailable_models', False,
                                  'Let new labels point at versions not yet loaded.')
_MONITORING = flags.DEFINE_string('monitoring_config_file', None,
                                  'MonitoringConfig text proto; with prometheus_config enabled, '
                                  'request metrics are served on the REST port at its path.')
_HEALTH = flags.DEFINE_bool('enable_grpc_healthcheck_service', False,
                            'Serve grpc.health.v1 (SERVING once the server runs).')
_BATCHING = flags.DEFINE_bool('enable_batching', False,
                              'Merge concurrent Predict requests of one model version and '
                              'signature into batches, as TF Serving does.')
_BATCHING_FILE = flags.DEFINE_string('batching_parameters_file', None,
                                     'BatchingParameters text proto (serving/batching.config); '
                                     'needs --enable_batching; without it, TF Serving\'s '
                                     'defaults.')
_PER_MODEL = flags.DEFINE_bool('enable_per_model_batching_parameters', False,
                               'With --enable_batching: batch a version only if its directory '
                               'holds batching_params.pbtxt, with those parameters.')


def main(argv):
    del argv
    try:
        config = serving_config.read_models(_CONFIG.value)
        monitoring = (serving_config.read(_MONITORING.value, serving_config.MonitoringConfig)
                      if _MONITORING.value else None)
        if _BATCHING_FILE.value and not _BATCHING.value:  # TF Serving's main.cc refuses it
            raise serving_config.ConfigError(_BATCHING_FILE.value, 'You supplied '
                                             '--batching_parameters_file without '
                                             '--enable_batching')
        server_batching = batching.ServerBatching(
                batching.read(_BATCHING_FILE.value) if _BATCHING_FILE.value else None,
                _PER_MODEL.value) if _BATCHING.value else None
    except errors.EverywearError as e:
        print(f'dev_server: error: {e}', file=sys.stderr)
        return 1
    if _PREFIX.value and not os.path.isdir(_PREFIX.value):
        print(f'dev_server: error: {_PREFIX.value}: --model_base_path_prefix is not a directory',
              file=sys.stderr)
        return 1
    server = dev_server.DevServer(
            config, _HOST.value, _PORT.value, _REST_PORT.value, _FS_POLL.value, _CONFIG.value,
            _CONFIG_POLL.value, _ALLOW_LABELS.value,
            log=lambda message: print(message, file=sys.stderr, flush=True),
            monitoring_config=monitoring, enable_grpc_healthcheck_service=_HEALTH.value,
            batching=server_batching)
    # The prefix lives in the manager, so every config it is given is read the same way; the
    # configs themselves (and rollout.py's reloads) keep the server's /models paths.
    server.manager.base_path_prefix = _PREFIX.value
    try:
        server.start()
    except manager.ServingError as e:  # TF Serving exits too: "Failed to start server"
        print(f'dev_server: failed to start: {e.code.name}: {e.message}', file=sys.stderr)
        return 1
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *a: stopped.set())
    signal.signal(signal.SIGINT, lambda *a: stopped.set())
    stopped.wait()
    server.stop()
    return 0


if __name__ == '__main__':
    command.run(main)
