"""The batch of ``inference/batch.py`` as an Apache Beam pipeline, with RunInference.

The same input directory and workspace layout, the same files byte for byte. The pipeline::

    jobs not done yet
      → prepare      read the person (the front end where a pose or parse is missing) and the
                     garments, cut the frame the first garment is tried on
      → RunInference the chain of that frame (batched, one category per network call)
      → prepare      paste the result back; for a top over new pants, cut the top's frame of the
                     dressed person
      → RunInference the top's chain
      → write        paste back and write every workspace file (the final image last)
      → report.json  done and failed jobs (with their errors), as everywear-batch writes it

Every step runs ``Batch.run_job`` of ``inference/batch.py`` itself, with a stand-in backend that
answers the chain runs RunInference has made and stops the job at the first one it has not, so
preprocessing, paste-back and the files written are the local runner's own code. A failing job
(an unreadable photo, a pose that cannot be used, a batch the networks or the server refuse) is
recorded in the report with its error; the pipeline goes on. A write that fails for a reason every
job would share (a full disk, a read-only file system) fails the bundle, which Beam retries.

The input directory, the jobs file and the workspace are local paths every worker sees (local
disks for the DirectRunner; a shared mount on a cluster), read and written as everywear-batch does,
or URLs of any Beam file system (``gs://...`` and the like, through ``apache_beam.io.filesystems``):
then each job runs on a local copy of the files it reads and publishes what it wrote, each file
atomically, the final image last (``files``). A URL workspace has no lock: one run at a time on it
is the caller's to ensure.
"""

import contextlib
import dataclasses
import errno
import json
import logging
import os
import tempfile

import apache_beam as beam
from apache_beam.io import filesystems
from apache_beam.ml.inference import base

from everywear_tf import errors
from everywear_tf import fileio
from everywear_tf import spec
from everywear_tf.beam import files
from everywear_tf.beam import handlers
from everywear_tf.inference import batch as batch_lib
from everywear_tf.inference import pipeline
from everywear_tf.inference import workspace as workspace_lib

# Chain runs one job needs at most: the pants, then the top on the person wearing them.
STAGES = 2
_RESULT = 'result'


class _NeedsInference(BaseException):
    """Raised by the stand-in backend at the first chain run it has no outputs for (a
    BaseException, so no handler of ordinary errors on the way can take it for a failure)."""

    def __init__(self, category, inputs):
        super().__init__(category)
        self.category, self.inputs = category, inputs


class _Replay:
    """A backend answering a job's chain runs, in order, with the outputs RunInference made."""

    known, used = (), 0

    def start(self, known):
        """Answers with ``known`` from the next job on."""
        self.known, self.used = list(known), 0

    def __call__(self, category, inputs):
        if self.used < len(self.known):
            self.used += 1
            return self.known[self.used - 1]
        raise _NeedsInference(category, inputs)


# The same stand-in of the kind the handler runs, so that ``pipeline.front_end_for`` (which
# Batch asks for persons without a pose or parse) gives the front end everywear-batch would:
# the export's for SavedModels, the server's through TF Serving, else the one in process.
class _ReplaySavedModels(_Replay, pipeline.SavedModelBackend):
    """A stand-in whose front end is the export's (``<base_path>/frontend/``)."""


class _ReplayServer(_Replay, pipeline.ServerBackend):
    """A stand-in whose front end is the server's ``frontend`` model."""


def _replay_for(options):
    """The stand-in for a handler's ``backend_options()`` (None: the front end in process)."""
    options = dict(options or {})
    selection = {key: options.get(key) for key in ('label', 'version', 'label_fallback')
                 if key in options}
    if options.get('server'):
        return _ReplayServer(options['server'], **selection)
    if options.get('saved_models'):
        return _ReplaySavedModels(options['saved_models'],
                                  model_config=options.get('model_config'), **selection)
    return _Replay()


def read_jobs(jobs_file: str | None, input_dir: str) -> list:
    """The jobs: of ``jobs_file`` (a local path or any Beam file system's URL), else of
    ``<input_dir>/pairs.txt``, else every person with every garment (``batch.discover_jobs``)."""
    if jobs_file is None:
        pairs = workspace_lib.Workspace(None, input_dir).pairs()
        if files.is_local(input_dir):
            return (batch_lib.read_jobs(pairs) if os.path.exists(pairs)
                    else batch_lib.discover_jobs(input_dir))
        if not files.exists(pairs):
            return _discover(input_dir)
        jobs_file = pairs
    if files.is_local(jobs_file):
        return batch_lib.read_jobs(jobs_file)
    if not filesystems.FileSystems.exists(jobs_file):
        raise errors.InputNotFoundError(jobs_file, 'no such jobs file')
    data = files.read_bytes(jobs_file)
    with tempfile.TemporaryDirectory(prefix='everywear-jobs.') as directory:
        local = os.path.join(directory, os.path.basename(jobs_file.rstrip('/')) or 'jobs.txt')
        with open(local, 'wb') as f:
            f.write(data)
        try:
            jobs = batch_lib.read_jobs(local)
        except errors.EverywearError as e:
            raise errors.DatasetError(jobs_file, str(e).replace(local, 'the file')) from None
    return [batch_lib.Job(job.person, job.top, job.bottom,
                          source=job.source.replace(local, jobs_file)) for job in jobs]


def _ids(directory, suffix):
    """Sorted ids of the images in the URL ``directory`` whose stem ends in ``suffix``."""
    found = set()
    for name in files.names_in(directory):
        stem, extension = os.path.splitext(name)
        if extension.lower() in workspace_lib.IMAGE_EXTENSIONS and stem.endswith(suffix):
            found.add(stem)
    return sorted(found)


def _discover(input_dir):
    """``batch.discover_jobs`` of a URL input directory: every person with every garment."""
    return batch_lib.discover_jobs(input_dir, list_ids=_ids)


def _staged(input_dir, workspace):
    """Whether jobs run on a local copy (``files.Stage``): the input or the workspace is a
    URL."""
    return not (files.is_local(input_dir) and files.is_local(workspace))


def _done(names, jobs):
    """The names of ``jobs`` whose final image is in the workspace."""
    if files.is_local(names.root):
        return {job.name for job in jobs if os.path.isfile(names.final(job.name))}
    present = files.names_in(os.path.dirname(names.final('-')))
    return {job.name for job in jobs if os.path.basename(names.final(job.name)) in present}


# Write failures that are the workspace's, not a job's (every job would meet them).
_RUNNER_FAULTS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS}


def _problem(error):
    return f'{type(error).__name__}: {error}'.strip()


class _Prepare(beam.DoFn):
    """Runs a job as far as the chain runs made so far take it: yields the next chain run it
    needs (main output), or on the 'result' output (job name, None) when it wrote everything
    or (job name, error) when it failed."""

    def __init__(self, settings, last, backend_options):
        self.settings, self.last, self.backend_options = settings, last, backend_options

    def setup(self):
        self.replay = _replay_for(self.backend_options)
        input_dir, workspace, options = self.settings
        # URLs: each job on a local copy of what it reads, its files published after it.
        self.stage = files.Stage(input_dir, workspace) if _staged(input_dir, workspace) else None
        if self.stage is not None:
            input_dir, workspace = self.stage.input_dir, self.stage.workspace
        self.batch = batch_lib.Batch(input_dir, workspace, self.replay,
                                     log=logging.getLogger(__name__).info, **options)

    def teardown(self):
        close = getattr(self.replay, 'close', None)
        if close is not None:
            close()
        if getattr(self, 'stage', None) is not None:
            self.stage.close()

    def _attempt(self, job):
        """(the chain run the job needs next or None, its error or None)."""
        try:
            self.batch.run_job(job)
        except _NeedsInference as needed:
            if self.last:
                return None, f'EverywearError: the job needs more than {STAGES} try-ons'
            return needed, None
        except OSError as e:
            if e.errno in _RUNNER_FAULTS:
                raise  # the bundle fails (Beam retries it), the job is not to blame
            return None, _problem(e)
        except Exception as e:
            return None, _problem(e)
        return None, None

    def process(self, state):
        job, known = state
        self.replay.start(known)
        if self.stage is not None:
            self.stage.fetch(job)  # a file system's failure fails the bundle (retried)
        needed, problem = self._attempt(job)
        if self.stage is not None:
            # What the job wrote, as a local run leaves it: the front end's estimates before
            # a chain run, a failed job's files so far, the final image last.
            self.stage.publish()
            problem = problem and self.stage.in_remote_terms(problem)
        if needed is not None:
            yield job.name, handlers.Request(job, known, needed.category, needed.inputs)
        else:
            yield beam.pvalue.TaggedOutput(_RESULT, (job.name, problem))


def _after(keyed):
    """(job, known) for the next step, from RunInference's (name, PredictionResult)."""
    _, prediction = keyed
    request = prediction.example
    return request.job, request.known + [prediction.inference]


def _refused(failed):
    """(job name, error) for each job of a batch RunInference could not run."""
    batch, error = failed
    if isinstance(error, tuple):  # Beam's (type, repr, traceback)
        kind, text = error[0], error[1]
        message = f'{getattr(kind, "__name__", kind)}: {text}'
    else:
        message = _problem(error)
    for name, _ in batch:
        yield name, f'the networks failed on a batch of {len(batch)}: {message}'


@dataclasses.dataclass(frozen=True)
class JobsFile:
    """Jobs read where the pipeline runs (``read_jobs(path, input_dir)``), so that a million
    of them never sit in the pipeline's graph (Dataflow limits its size)."""
    path: str | None
    input_dir: str

    def read(self) -> list:
        """The jobs, in the file's order."""
        return read_jobs(self.path, self.input_dir)


def _listed(jobs):
    return jobs.read() if isinstance(jobs, JobsFile) else list(jobs)


class _WriteReport(beam.DoFn):
    """report.json (as ``Batch.run`` writes it) from every result of the run, after the
    journal (``batch.Journal``) the local runner trusts: this run's jobs merged into it, so an
    everywear-batch run over the workspace skips what the pipeline finished."""

    def __init__(self, workspace, jobs):
        self.workspace, self.jobs = workspace, jobs

    def process(self, results):
        names = workspace_lib.Workspace(self.workspace)
        jobs = _listed(self.jobs)
        # What earlier runs recorded: report.json is the launcher's to write, never during a run.
        earlier, failed_before = _earlier(names.report())
        failed = dict(failed_before)
        for name, problem in sorted(results):
            if problem is None:
                failed.pop(name, None)
            else:
                failed[name] = problem
        recorded = {job.name: [job.person, job.top, job.bottom] for job in earlier + jobs}
        finished = _done(names, jobs)
        done = [job.name for job in jobs if job.name in finished]
        report = {'total': len(jobs), 'done': done,
                  'failed': {k: failed[k] for k in sorted(failed) if k not in finished},
                  'jobs': {k: recorded[k] for k in sorted(recorded)}}
        if files.is_local(self.workspace):
            _merge_journal(names.journal(), done, report['failed'])
        else:  # the same, on a local copy of the journal
            with tempfile.TemporaryDirectory(prefix='everywear-journal.') as directory:
                local = os.path.join(directory, workspace_lib.JOURNAL)
                if files.exists(names.journal()):
                    files.download(names.journal(), local)
                _merge_journal(local, done, report['failed'])
                files.upload(local, names.journal(), self.workspace)
        files.write_bytes(names.report(), json.dumps(report, indent=1).encode(), self.workspace)
        yield report


def _merge_journal(path, done, failed):
    """Rewrites the journal ``path`` with the run's ``done`` and ``failed`` jobs merged in."""
    state = batch_lib.Journal.read(path) if os.path.isfile(path) else {}
    state.update(dict.fromkeys(done))
    state.update(failed)
    journal = batch_lib.Journal(path)
    try:
        journal.rewrite(state)
    finally:
        journal.close()


def _earlier(report_path):
    """(jobs, failed) an earlier run recorded in report.json (none if missing or unreadable)."""
    with contextlib.suppress(Exception):
        report = json.loads(files.read_bytes(report_path).decode('utf-8'))
        jobs = [batch_lib.Job(*fields) for fields in report.get('jobs', {}).values()
                if isinstance(fields, list) and len(fields) == 3
                and all(isinstance(v, str) for v in fields)]
        failed = {k: v for k, v in dict(report.get('failed', {})).items()
                  if isinstance(k, str) and isinstance(v, str)}
        return jobs, failed
    return [], {}


def _categories(names, jobs):
    """The categories whose garment folders hold a garment of ``jobs`` (an unknown garment
    fails its own job)."""
    wanted = {garment for job in jobs for garment in (job.top, job.bottom)
              if garment != batch_lib.NONE}
    needed = []
    for category in spec.CATEGORIES:
        present = {os.path.splitext(name)[0] for name in files.names_in(
                names.garments_dir(category))}
        if present & wanted:
            needed.append(category)
    return needed


class _NotDone(beam.DoFn):
    """(job, no chain outputs yet) for each job whose final image is not there."""

    def __init__(self, settings):
        self.settings = settings

    def process(self, jobs):
        input_dir, workspace, _ = self.settings
        listed = _listed(jobs)
        done = _done(workspace_lib.Workspace(workspace, input_dir), listed)
        for job in listed:
            if job.name not in done:
                yield job, []


def build(root: beam.Pipeline, input_dir: str, workspace: str, jobs, handler,
          read_options: dict | None = None):
    """Adds the batch to the pipeline ``root``: the ``jobs`` (a list, or a ``JobsFile``) not
    done yet, through ``handler`` (``handlers.ChainModelHandler`` or
    ``handlers.ServingModelHandler``), into ``workspace``. Returns the PCollection of the one
    report written."""
    settings = (input_dir, workspace, dict(read_options or {}))
    keyed = base.KeyedModelHandler(handler)
    backend_options = getattr(handler, 'backend_options', dict)()
    # One tag for both chain steps: one copy of the networks (Beam's shared / multi_process_shared)
    identifier = getattr(handler, 'model_identifier', lambda: None)()
    results = []
    # One element that lists the jobs where it runs; then spread over the workers.
    state = (root | 'jobs' >> beam.Create([jobs]) | 'not done' >> beam.ParDo(_NotDone(settings))
             | 'spread' >> beam.Reshuffle())
    for stage in range(STAGES + 1):
        last = stage == STAGES
        prepare = _Prepare(settings, last, backend_options)
        stepped = (state | f'prepare {stage}' >> beam.ParDo(prepare)
                   .with_outputs(_RESULT, main='needs'))
        results.append(stepped[_RESULT])
        if last:
            break
        # Both steps share the networks loaded in a process (handlers._shared_backend).
        inferred, dead = (stepped.needs | f'chain {stage}' >> base.RunInference(
                keyed, model_identifier=identifier).with_exception_handling())
        results.append(dead.failed_inferences | f'refused {stage}' >> beam.FlatMap(_refused))
        state = inferred | f'next {stage}' >> beam.Map(_after)
    return (results | 'results' >> beam.Flatten()
            | 'all' >> beam.combiners.ToList()
            | 'report' >> beam.ParDo(_WriteReport(workspace, jobs)))


class WorkspaceError(errors.EverywearError):
    """The batch cannot run in this workspace (locked by another run, not writable)."""


def run(input_dir: str, workspace: str, jobs, handler, options=None,
        read_options: dict | None = None, log=None) -> dict:
    """Runs the batch on Beam (``options``: ``PipelineOptions``; the DirectRunner by default)
    and returns the report (also written as report.json). ``jobs``: a list of ``batch.Job``, or
    a ``JobsFile`` (read here for the checks, and again where the pipeline runs).

    Before the pipeline, as ``everywear-batch`` does: the workspace locked for the run (one
    run per workspace), temporaries of an interrupted run removed, the jobs' names checked
    against those of earlier runs (``batch.check_names``), the networks checked for the
    categories the jobs need (``handler.check``, if it has one: pipeline.SetupError). Jobs whose
    final image exists are skipped."""
    log = log or logging.getLogger(__name__).info
    names = workspace_lib.Workspace(workspace, input_dir)
    if files.is_local(input_dir) and not os.path.isdir(input_dir):
        raise WorkspaceError(f'{input_dir}: the input directory does not exist')
    if not files.is_local(workspace):
        # No lock on a URL (object stores have none): one run at a time is the caller's.
        try:
            removed = files.remove_temporaries(workspace)
        except Exception as e:  # noqa: BLE001 (BeamIOError, ValueError for an unknown scheme)
            raise WorkspaceError(f'{workspace}: cannot use the workspace there ({e})') from None
        if removed:
            log(f'removed {removed} temporary files of an interrupted run')
        _start(names, jobs, handler, options, read_options)
        return json.loads(files.read_bytes(names.report()).decode('utf-8'))
    if os.path.lexists(workspace) and not os.path.isdir(workspace):
        raise WorkspaceError(f'{workspace}: the workspace exists and is not a directory')
    try:
        os.makedirs(os.path.dirname(names.report()), exist_ok=True)
        fileio.check_writable(os.path.dirname(names.report()))
    except OSError as e:
        raise WorkspaceError(f'{workspace}: cannot write the workspace there '
                             f'({e.strerror or e})') from None
    try:
        with fileio.exclusive_lock(names.lock()):
            removed = fileio.remove_stale_temporaries(workspace)
            if removed:
                log(f'removed {removed} temporary files of an interrupted run')
            _start(names, jobs, handler, options, read_options)
    except fileio.LockBusyError:
        raise WorkspaceError(f'{workspace}: another batch run is using this workspace') from None
    except fileio.LockFileError as e:
        raise WorkspaceError(str(e)) from None
    with open(names.report(), encoding='utf-8') as f:
        return json.load(f)


def _start(names, jobs, handler, options, read_options):
    """The checks before the pipeline (names, networks), then the pipeline."""
    listed = _listed(jobs)
    batch_lib.check_names(listed, _earlier(names.report())[0])
    check = getattr(handler, 'check', None)
    if check is not None:
        done = _done(names, listed)
        needed = _categories(names, [job for job in listed if job.name not in done])
        if needed:
            check(needed)
    del listed
    with beam.Pipeline(options=options) as root:
        build(root, names.input_dir, names.root, jobs, handler, read_options)

