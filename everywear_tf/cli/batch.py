r"""everywear-batch: try-ons for every line of a jobs file, into an Everywear workspace.

  everywear-batch --input_dir=shoot --workspace=ws
  everywear-batch --input_dir=shoot --workspace=ws --server=localhost:8500 --workers=4
  everywear-batch --input_dir=shoot --workspace=ws --server=localhost:8500 --model_label=canary

Input layout and outputs: everywear_tf/inference/batch.py. Rerun the same command after an
interruption: finished jobs are skipped. Failed jobs are listed in <workspace>/output/report.json
and make the exit status 1; the others complete. What would fail every job (a workspace that
cannot be written, ids whose names collide, a missing weights root, an unreachable server) is
one error before any job: "everywear-batch: error: ...", exit status 1. Interrupted (Ctrl-C,
SIGTERM), the run lets the running jobs end, writes report.json and exits with status 130
(143 for SIGTERM); rerun to go on.
"""

import os
import signal
import sys

from everywear_tf.cli import app as command

command.quiet_tensorflow()

from absl import app  # noqa: E402
from absl import flags  # noqa: E402

from everywear_tf import demo_weights  # noqa: E402
from everywear_tf import errors  # noqa: E402
from everywear_tf.inference import batch  # noqa: E402
from everywear_tf.inference import pipeline  # noqa: E402
from everywear_tf.inference import workspace  # noqa: E402

_INPUT_DIR = flags.DEFINE_string('input_dir', None, 'persons/, garments/<category>/, pairs.txt')
_WORKSPACE = flags.DEFINE_string('workspace', 'workspace', 'Where input/, stage/, output/ go.')
_JOBS = flags.DEFINE_string('jobs', None, 'Jobs file (default: <input_dir>/pairs.txt, and '
                            'without it every person with every garment).')
_WEIGHTS_ROOT = flags.DEFINE_string('weights_root', demo_weights.DIRECTORY,
                                    'Directory of <module>_<category>/ weights directories.')
_SAVED_MODELS = flags.DEFINE_string('saved_models', None, 'Run exported SavedModels in process '
                                     'from this TF Serving base path (<name>/<version>/) '
                                     'instead of --weights_root.')
_SERVER = flags.DEFINE_string('server', None, 'TF Serving gRPC host:port (default: in process).')
flags.mark_flags_as_mutual_exclusive(['saved_models', 'server'])
_WORKERS = flags.DEFINE_integer('workers', None, 'Jobs run at once (default: 4 with --server, '
                                '1 in process, where TensorFlow already uses every core).',
                                lower_bound=1)
command.define_model_flags()  # --model_label, --model_version, --model_config_file
command.define_photo_flags()  # --max_photo_pixels, --exif_orientation, --relight
flags.mark_flag_as_required('input_dir')


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f'unexpected arguments: {argv[1:]}')
    selection = command.model_selection()
    try:
        pairs = _JOBS.value or workspace.Workspace(_WORKSPACE.value, _INPUT_DIR.value).pairs()
        if _JOBS.value or os.path.exists(pairs):
            jobs = batch.read_jobs(pairs)
        else:
            jobs = batch.discover_jobs(_INPUT_DIR.value)
            print(f'no {pairs}: {len(jobs)} jobs, every person with every garment',
                  file=sys.stderr)
    except errors.EverywearError as e:
        print(f'everywear-batch: error: {e}', file=sys.stderr)
        return 1
    workers = _WORKERS.value or (4 if _SERVER.value else 1)
    signal.signal(signal.SIGTERM, _terminated)
    try:
        # Checked once before any job (Batch.run): the workspace, its lock, the jobs' names,
        # and the backend (weights root, export or server) for the categories the jobs need.
        backend = pipeline.make_backend(_WEIGHTS_ROOT.value, _SAVED_MODELS.value,
                                        _SERVER.value, **selection)
        report = batch.Batch(_INPUT_DIR.value, _WORKSPACE.value, backend, workers=workers,
                             **command.photo_options()).run(jobs)
    except errors.EverywearError as e:
        print(f'everywear-batch: error: {e}', file=sys.stderr)
        return 1
    except _Terminated:
        print('everywear-batch: terminated (SIGTERM); rerun to go on', file=sys.stderr)
        return 128 + signal.SIGTERM
    except KeyboardInterrupt:
        print('everywear-batch: interrupted; rerun to go on', file=sys.stderr)
        return 130
    failed = report['failed']
    print(f'{report["total"] - len(failed)} of {report["total"]} jobs done; '
          f'{len(failed)} failed (see {workspace.Workspace(_WORKSPACE.value).report()})')
    return 1 if failed else 0


class _Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread: the batch stops as on Ctrl-C (report written)."""


def _terminated(signum, frame):
    del frame
    signal.signal(signum, signal.SIG_IGN)  # a second SIGTERM does not cut the report short
    raise _Terminated()


def run():
    """The console script's entry point."""
    command.run(main, __name__)


if __name__ == '__main__':
    run()
