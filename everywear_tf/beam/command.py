r"""everywear-beam: the batch of everywear-batch as an Apache Beam pipeline (RunInference).

  everywear-beam --input_dir=shoot --workspace=ws --saved_models=exported
  everywear-beam --input_dir=shoot --workspace=ws --server=tf-serving:8500
  everywear-beam --input_dir=gs://B/shoot --workspace=gs://B/ws --saved_models=/models \
      --runner=DataflowRunner -- --project=P --region=R --temp_location=gs://B/tmp \
      --sdk_container_image=IMAGE --sdk_location=container

The same inputs, workspace files and report.json as everywear-batch (BUILD.md §13). The
networks run in each worker (--saved_models, or --weights_root) or on TF Serving (--server).
Arguments after "--" are Beam pipeline options, passed as they are. Rerun the same command after
an interruption: finished jobs are skipped. Failed jobs are listed in <workspace>/output/report.json
and make the exit status 1; what would fail every job is one error before the pipeline runs:
"everywear-beam: error: ...", exit status 1.
"""

import sys

from everywear_tf.cli import app as command

command.quiet_tensorflow()

from absl import app  # noqa: E402
from absl import flags  # noqa: E402

from everywear_tf import demo_weights  # noqa: E402
from everywear_tf import errors  # noqa: E402
from everywear_tf.inference import workspace  # noqa: E402

_INPUT_DIR = flags.DEFINE_string('input_dir', None, 'persons/, garments/<category>/, pairs.txt '
                                 '(a path every worker sees, or a Beam file system URL: '
                                 'gs://...)')
_WORKSPACE = flags.DEFINE_string('workspace', 'workspace', 'Where input/, stage/, output/ go '
                                 '(a path every worker sees, or a Beam file system URL: '
                                 'gs://...; a URL workspace has no lock: one run at a time).')
_JOBS = flags.DEFINE_string('jobs', None, 'Jobs file, a path or any Beam file system URL '
                            '(default: <input_dir>/pairs.txt, and without it every person '
                            'with every garment).')
_WEIGHTS_ROOT = flags.DEFINE_string('weights_root', demo_weights.DIRECTORY,
                                    'Directory of <module>_<category>/ weights directories.')
_SAVED_MODELS = flags.DEFINE_string('saved_models', None, 'Run exported SavedModels in each '
                                    'worker from this TF Serving base path (<name>/<version>/) '
                                    'instead of --weights_root.')
_SERVER = flags.DEFINE_string('server', None, 'TF Serving gRPC host:port: the networks run '
                              'there (RunInference\'s RemoteModelHandler) instead of in the '
                              'workers.')
flags.mark_flags_as_mutual_exclusive(['saved_models', 'server'])
_RUNNER = flags.DEFINE_string('runner', 'DirectRunner', 'Beam runner: DirectRunner, '
                              'DataflowRunner, FlinkRunner, SparkRunner, ...')
_DIRECT_NUM_WORKERS = flags.DEFINE_integer('direct_num_workers', 1, 'DirectRunner: workers '
                                           '(0: one per core).', lower_bound=0)
_DIRECT_RUNNING_MODE = flags.DEFINE_enum('direct_running_mode', 'multi_processing',
                                         ['in_memory', 'multi_threading', 'multi_processing'],
                                         'DirectRunner: how its workers run.')
_MIN_BATCH = flags.DEFINE_integer('min_batch_size', 1, 'RunInference: fewest frames a batch.',
                                  lower_bound=1)
_MAX_BATCH = flags.DEFINE_integer('max_batch_size', 1, 'RunInference: most frames a batch '
                                  '(one category per network call). 1 gives everywear-batch\'s '
                                  'bytes; above 1, a few pixels may round one level apart.',
                                  lower_bound=1)
_SHARE = flags.DEFINE_boolean('share_model_across_processes', False, 'RunInference: one copy '
                              'of the networks per worker machine (--model_copies of them), '
                              'called by every worker process of it, instead of one copy per '
                              'process. Not with --server.')
_COPIES = flags.DEFINE_integer('model_copies', 1, '--share_model_across_processes: copies of '
                               'the networks per worker machine.', lower_bound=1)
_RETRIES = flags.DEFINE_integer('num_retries', 3, '--server: retries of a batch when no server '
                                'answers (exponential back-off).', lower_bound=0)
command.define_model_flags()  # --model_label, --model_version, --model_config_file
command.define_photo_flags()  # --max_photo_pixels, --exif_orientation, --relight
flags.mark_flag_as_required('input_dir')


def _pipeline_options(beam_arguments):
    from apache_beam.options import pipeline_options
    arguments = [f'--runner={_RUNNER.value}']
    if _RUNNER.value in ('DirectRunner', 'direct'):
        arguments += [f'--direct_num_workers={_DIRECT_NUM_WORKERS.value}',
                      f'--direct_running_mode={_DIRECT_RUNNING_MODE.value}']
    return pipeline_options.PipelineOptions(arguments + list(beam_arguments))


def main(argv):
    """Runs the pipeline; argv after "--": Beam pipeline options."""
    from everywear_tf.beam import batch as beam_batch
    from everywear_tf.beam import handlers
    if _MIN_BATCH.value > _MAX_BATCH.value:
        raise app.UsageError('--min_batch_size must not exceed --max_batch_size')
    if _SERVER.value and _SHARE.value:
        raise app.UsageError('--share_model_across_processes is for networks in the workers, '
                             'not with --server')
    if _COPIES.value > 1 and not _SHARE.value:
        raise app.UsageError('--model_copies needs --share_model_across_processes')
    selection = command.model_selection()
    photo = command.photo_options()
    read_options = {key: photo[key] for key in ('max_pixels', 'orientation', 'relit')}
    batching = {'min_batch_size': _MIN_BATCH.value, 'max_batch_size': _MAX_BATCH.value}
    try:
        # Read here for the checks, and again by the pipeline (not carried in its graph).
        jobs = beam_batch.JobsFile(_JOBS.value, _INPUT_DIR.value)
        if _SERVER.value:
            handler = handlers.ServingModelHandler(_SERVER.value, selection,
                                                   num_retries=_RETRIES.value, **batching)
        else:
            handler = handlers.ChainModelHandler(_WEIGHTS_ROOT.value, _SAVED_MODELS.value,
                                                 selection, **batching,
                                                 share_across_processes=_SHARE.value,
                                                 model_copies=_COPIES.value)
        report = beam_batch.run(_INPUT_DIR.value, _WORKSPACE.value, jobs, handler,
                                _pipeline_options(argv[1:]), read_options)
    except errors.EverywearError as e:
        print(f'everywear-beam: error: {e}', file=sys.stderr)
        return 1
    failed = report['failed']
    print(f'{report["total"] - len(failed)} of {report["total"]} jobs done; '
          f'{len(failed)} failed (see {workspace.Workspace(_WORKSPACE.value).report()})')
    return 1 if failed else 0


def run():
    """The console script's entry point."""
    command.run(main, __name__)


if __name__ == '__main__':
    run()
