r"""Development model server speaking TF Serving's gRPC and REST APIs (a stand-in: production
runs the official tensorflow/serving image; see BUILD.md).

    python serving/dev_server.py --model_config_file=serving/models.config \
        --model_base_path_prefix=$PWD/exported --port=8500 --rest_api_port=8501 \
        --allow_version_labels_for_unavailable_models

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
from everywear_tf.serving import config as serving_config  # noqa: E402
from everywear_tf.serving import dev_server  # noqa: E402
from everywear_tf.serving import manager  # noqa: E402

_CONFIG = flags.DEFINE_string('model_config_file', 'serving/models.config',
                              'ModelServerConfig text proto.')
_PREFIX = flags.DEFINE_string('model_base_path_prefix', None,
                              'Replace a leading /models in base paths by this directory (the '
                              'committed config uses the container path /models).')
_PORT = flags.DEFINE_integer('port', 8500, 'gRPC port (0: any free port).')
_REST_PORT = flags.DEFINE_integer('rest_api_port', 8501, 'REST port (0: any free port).')
_HOST = flags.DEFINE_string('host', '127.0.0.1', 'Address to bind; 127.0.0.1 by default.')
_FS_POLL = flags.DEFINE_float('file_system_poll_wait_seconds', 1.0,
                              'Rescan base paths for versions; 0 scans once.')
_CONFIG_POLL = flags.DEFINE_float('model_config_file_poll_wait_seconds', 0.0,
                                  'Re-read the config file; 0 reads it once.')
_ALLOW_LABELS = flags.DEFINE_bool('allow_version_labels_for_unavailable_models', False,
                                  'Let new labels point at versions not yet loaded.')


def _config(path=None):
    config = serving_config.read_models(path or _CONFIG.value)
    if _PREFIX.value:
        for model in config.model_config_list.config:
            if model.base_path.startswith('/models/'):
                model.base_path = os.path.join(os.path.abspath(_PREFIX.value),
                                               model.base_path[len('/models/'):])
    return config


def main(argv):
    del argv
    try:
        config = _config()
    except errors.EverywearError as e:
        print(f'dev_server: error: {e}', file=sys.stderr)
        return 1
    server = dev_server.DevServer(
            config, _HOST.value, _PORT.value, _REST_PORT.value, _FS_POLL.value, _CONFIG.value,
            _CONFIG_POLL.value, _ALLOW_LABELS.value,
            log=lambda message: print(message, file=sys.stderr, flush=True), read_config=_config)
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
