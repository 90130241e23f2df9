r"""Writes TF Serving's models.config, batching.config and monitoring.config through the protos.

    python serving/write_configs.py --output_dir=serving --base_path=/models

The committed files in serving/ are this command's output (a test keeps them in sync).
"""


from absl import flags

from everywear_tf.cli import app as command
from everywear_tf.serving import config

_OUTPUT_DIR = flags.DEFINE_string('output_dir', 'serving', 'Where to write the three files.')
_BASE_PATH = flags.DEFINE_string('base_path', '/models',
                                 'Absolute directory holding <model_name>/<version>/ as the '
                                 'server sees it (the container path under Docker).')
_MAX_BATCH_SIZE = flags.DEFINE_integer('max_batch_size', 8, 'Server-side batching limit.')
_BATCH_TIMEOUT_MICROS = flags.DEFINE_integer('batch_timeout_micros', 2000,
                                             'How long a batch waits to fill.')
_NUM_BATCH_THREADS = flags.DEFINE_integer('num_batch_threads', 2,
                                          'Batches run in parallel; the number of cores.')


def main(argv):
    del argv
    sizes = tuple(s for s in (1, 2, 4, 8, 16, 32, 64) if s < _MAX_BATCH_SIZE.value)
    paths = config.write_all(_OUTPUT_DIR.value, _BASE_PATH.value,
                             max_batch_size=_MAX_BATCH_SIZE.value,
                             batch_timeout_micros=_BATCH_TIMEOUT_MICROS.value,
                             num_batch_threads=_NUM_BATCH_THREADS.value,
                             allowed_batch_sizes=sizes + (_MAX_BATCH_SIZE.value,))
    for path in paths.values():
        print('wrote', path)


if __name__ == '__main__':
    command.run(main)
