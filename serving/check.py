r"""Sends each model one realistic request through TF Serving's gRPC API and reports.

    python serving/check.py --server=localhost:8500
    python serving/check.py --server=localhost:8500 --models=gmm_men_tshirts --label=canary
"""


from everywear_tf.cli import app as command  # noqa: E402 (before TensorFlow)

command.quiet_tensorflow()

from absl import flags  # noqa: E402

from everywear_tf.serving import check  # noqa: E402

_SERVER = flags.DEFINE_string('server', 'localhost:8500', 'gRPC host:port of TF Serving.')
_MODELS = flags.DEFINE_list('models', None, 'Model names (default: all ten served, the nine '
                            'try-on models and frontend).')
_LABEL = flags.DEFINE_string('label', None, 'Version label to address (e.g. stable, canary).')
_TIMEOUT = flags.DEFINE_float('timeout', 30.0, 'Seconds per request.')


def main(argv):
    del argv
    results = check.check(_SERVER.value, _MODELS.value, _TIMEOUT.value, _LABEL.value)
    print(check.report(results))
    return 0 if all(r['ok'] for r in results) else 1


if __name__ == '__main__':
    command.run(main)
