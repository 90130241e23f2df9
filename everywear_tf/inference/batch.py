"""Batch try-on over a directory of persons and garments, into the Everywear workspace layout.

Input directory::

    persons/<person>_0.{png,jpg}         photos, any size
    persons/<person>_0_keypoints.{json,mat,pkl}  pose (OpenPose / Everywear JSON, VITON .mat/.pkl)
    persons/<person>_0_parse.png         LIP label map at the photo's size
                                         (either may be left out: the photo front end estimates
                                         it, into input/body_pose and input/body_segment)
    garments/<category>/<garment>_1.{png,jpg}   product photos (+ optional <garment>_1_mask.png)
    pairs.txt                            "<person> <top or -> <bottom or ->" per line (ids);
                                         without it, every person gets every garment singly

Workspace written (BUILD.md §11; every name in ``workspace.py``):

- ``input/``: each person's photo (``body_images``), its body frame
  (``body_resized``, ``body_pose``, ``body_segment``, ``body_pickle``) and, for jobs with a top,
  its upper-body crop (``upper_images``, ``upper_pose``, ``upper_segment``, ``upper_pickle``),
  all cut from the person's own photo.
- ``stage/<worn>_<garment>{.png,_mask.png,_mask.mat,_gmm.png,_gmmask.png}``: EDM's coarse
  person, EDM's mask (PNG, and as float ``mask`` in [0, 1] in the .mat), GMM's warped garment,
  GMM's mask ≥ 100.
- ``output/composed_images/<worn>_<garment>{_bg,_fg,_final,_mask,_sel_mask,_tps,_tps_mask}.png``
  and the bundles ``_0_pkl.pkl`` (the frame the garment was tried on) and ``_1_pkl.pkl`` (that
  frame after the try-on: the composed pixels, the parse relabelled where the new garment is).
- ``output/final_upper_images/`` and ``output/final_lower_images/``: ``<worn>_<garment>_final.png``.
- ``output/final_images/<person>_<top>_<bottom>_final.png``, ``output/journal.jsonl`` (a line
  per finished job, appended) and ``output/report.json`` (written from the journal's state at
  the start, at the end and when the run is interrupted).

``<worn>`` is the person id, or for a top put on over new pants ``<person>_<bottom>`` (the person
already wearing them), so every file has one meaning whatever the jobs and their order.

Every file is written atomically, the final image last, then the job's line in the journal; a
job is skipped when the journal says it was done and its final image is there, so a killed run
restarted finishes the rest. A failing job is recorded with its error; the batch goes on. The
bookkeeping per finished job is constant (a journal line, fsynced in groups): jobs are streamed
into a pool of ``workers`` threads (the networks and the server calls release the GIL) with at
most ``IN_FLIGHT_PER_WORKER * workers`` submitted at a time.
"""

import concurrent.futures
import contextlib
import dataclasses
import errno
import json
import os
import queue as queue_lib
import re
import sys
import threading
import time

import numpy as np

from everywear_tf import errors
from everywear_tf import fileio
from everywear_tf import spec
from everywear_tf.data import bundle
from everywear_tf.data import frames
from everywear_tf.data import images
from everywear_tf.data import keypoints as keypoint_files
from everywear_tf.data import parsing
from everywear_tf.inference import categories
from everywear_tf.inference import pipeline
from everywear_tf.inference import workspace as workspace_lib

NONE = '-'
_ID = re.compile(r'[A-Za-z0-9_-][A-Za-z0-9_.-]*')


@dataclasses.dataclass(frozen=True)
class Job:
    """One line of a jobs file: a person and the garments (ids, or NONE) to dress them in."""
    person: str
    top: str  # garment id or NONE
    bottom: str
    # Where the job comes from, for errors ("pairs.txt, line 3"); not part of its identity.
    source: str = dataclasses.field(default='', compare=False, repr=False)

    @property
    def name(self) -> str:
        """The job's name in the workspace: ``<person>_<top>_<bottom>``."""
        return f'{self.person}_{self.top}_{self.bottom}'

    def __str__(self):
        return f'"{self.person} {self.top} {self.bottom}"'


class WorkspaceError(errors.EverywearError):
    """The batch cannot run at all in this workspace (not a directory, not writable, locked,
    names that would collide with an earlier run's): raised before any job, or when a write
    fails for a reason no other job could escape (disk full, read-only file system)."""


def read_jobs(path: str) -> list:
    """The jobs of a pairs file: ``<person> <top or -> <bottom or ->`` per line (UTF-8).

    DatasetError naming the file and the line for a malformed line, a line repeating another,
    or two jobs whose files would have the same names (``check_names``)."""
    path = errors.require_file(path)
    with open(path, 'rb') as f:
        data = f.read()
    try:
        text = data.decode('utf-8')
    except UnicodeDecodeError as e:
        line = data[:e.start].count(b'\n') + 1
        raise errors.DatasetError(path, f'line {line}: not UTF-8 text (byte {e.start}: '
                                        f'{data[e.start:e.start + 1]!r})') from None
    jobs, seen = [], {}
    for number, line in enumerate(text.splitlines(), start=1):
        fields = line.split()
        if not fields or fields[0].startswith('#'):
            continue
        if len(fields) != 3 or (fields[1] == NONE and fields[2] == NONE):
            raise errors.DatasetError(path, f'line {number}: expected "<person> <top or -> '
                                            f'<bottom or ->", got {line.strip()!r}')
        bad = [field for field in fields if field != NONE and not _ID.fullmatch(field)]
        if bad:  # ids become file names in the workspace: no separators, no '..'
            raise errors.DatasetError(path, f'line {number}: {bad[0]!r} is not an id (letters, '
                                            f'digits, "_", "-", "." and not starting with ".")')
        job = Job(*fields, source=f'{path}, line {number}')
        if job in seen:
            raise errors.DatasetError(path, f'line {number}: the same job as line {seen[job]} '
                                            f'({job}); list each job once')
        seen[job] = number
        jobs.append(job)
    check_names(jobs)
    return jobs


def _workspace_names(job):
    """{(folder, name): what it holds} for every file name ``job`` writes that is joined from
    several ids (the joins are where two different jobs can meet)."""
    names = {('final_images', job.name): ('job', job.person, job.top, job.bottom)}
    # input/: the frames of a person and the front end's estimate of it share two folders.
    names[('body_pose', job.person)] = ('frame pose', job.person)
    names[('body_pose', job.person + workspace_lib.KEYPOINTS_SUFFIX)] = ('estimate', job.person)
    parse_stem = job.person + workspace_lib.PARSE_SUFFIX[:-len('.png')]
    names[('body_segment', job.person)] = ('frame parse', job.person)
    names[('body_segment', parse_stem)] = ('estimate', job.person)
    if job.bottom != NONE:
        worn = workspace_lib.worn_id(job.person)
        names[('stage, composed', f'{worn}_{job.bottom}')] = ('try-on', job.person, None,
                                                               job.bottom)
    if job.top != NONE:
        under = None if job.bottom == NONE else job.bottom
        worn = workspace_lib.worn_id(job.person, under)
        names[('stage, composed', f'{worn}_{job.top}')] = ('try-on', job.person, under,
                                                            job.top)
    return names


def check_names(jobs: list, earlier: list = ()) -> None:
    """DatasetError if two different jobs (of ``jobs``, or one of them and one of ``earlier``,
    the jobs an earlier run wrote into the same workspace) would write a file of the same name:
    ids may contain "_" and names join ids with "_", so ``p_0 a_b_1 -`` and ``p_0_a b_1 -``
    would overwrite each other. Such ids are refused, naming both jobs and their lines."""
    owners = {}
    for job in list(earlier) + list(jobs):
        for key, meaning in _workspace_names(job).items():
            other = owners.setdefault(key, (meaning, job))
            if other[0] != meaning:
                first = other[1]
                first_where = first.source or 'an earlier run in this workspace'
                where = job.source or 'the jobs found in the input directory'
                raise errors.DatasetError(
                        where, f'job {job} and job {first} ({first_where}) would both write '
                               f'{key[0]}/{key[1]}*: ids are joined with "_", so these two '
                               f'ids collide; rename one')


def _local_ids(directory, suffix_pattern):
    """Sorted ids of ``directory``'s images whose stem ends in ``suffix_pattern`` (e.g. '_0')."""
    if not os.path.isdir(directory):
        return []
    found = set()
    for name in os.listdir(directory):
        stem, extension = os.path.splitext(name)
        if extension.lower() in workspace_lib.IMAGE_EXTENSIONS and stem.endswith(suffix_pattern):
            found.add(stem)
    return sorted(found)


def discover_jobs(input_dir: str, list_ids=None) -> list:
    """Jobs when no pairs file is given: every person with every garment, one garment a job.

    ``list_ids(directory, suffix)``: the sorted ids of a directory's images whose stem ends in
    ``suffix`` (default: a local directory's; the Beam pipeline lists URLs)."""
    _ids = list_ids or _local_ids
    names = workspace_lib.Workspace(None, input_dir)
    persons = _ids(names.persons_dir(), workspace_lib.PERSON_ID_SUFFIX)
    if not persons:
        raise errors.InputNotFoundError(names.persons_dir(),
                                        'no person photos (<id>_0.png or .jpg)')
    jobs = []
    for person in persons:
        for category in spec.CATEGORIES:
            for garment in _ids(names.garments_dir(category), workspace_lib.GARMENT_ID_SUFFIX):
                upper = spec.frame_of(category) == spec.UPPER_FRAME
                jobs.append(Job(person, garment if upper else NONE, NONE if upper else garment,
                                source=names.persons_dir()))
    jobs = list(dict.fromkeys(jobs))  # a garment id in two categories: one job (it fails)
    check_names(jobs)
    return jobs


def _find(directory, stem):
    found = [os.path.join(directory, stem + extension)
             for extension in workspace_lib.IMAGE_EXTENSIONS
             if os.path.isfile(os.path.join(directory, stem + extension))]
    if len(found) > 1:
        raise errors.DatasetError(found[0], f'{stem!r} has several photos ({", ".join(found)}): '
                                            f'keep one')
    if not found:
        raise errors.InputNotFoundError(os.path.join(directory, stem + '.png'),
                                        'no such image (.png or .jpg)')
    return found[0]


class Batch:
    """One input directory processed into one workspace with one backend."""

    def __init__(self, input_dir: str, workspace: str, backend, log=None, workers: int = 1,
                 max_pixels: int | None = images.MAX_PHOTO_PIXELS, orientation: bool = True,
                 relit: bool = True):
        """``max_pixels``, ``orientation``: how photos, garments and parses are read
        (images.read_image); ``relit``: pipeline.try_on's."""
        if workers < 1:
            raise ValueError(f'workers must be at least 1, got {workers}')
        self.input_dir, self.workspace, self.backend = input_dir, workspace, backend
        self.names = workspace_lib.Workspace(workspace, input_dir)
        self._front_end_instance = None  # made on first use: converting it takes seconds
        self._front_end_lock = threading.Lock()
        self.workers = workers
        self.read_options = {'max_pixels': max_pixels, 'orientation': orientation}
        self.relit = relit
        self._default_log = log is None  # then progress is one line redrawn on a terminal
        self.log = log or (lambda message: print(message, file=sys.stderr, flush=True))

    def _garment_path(self, garment_id):
        """(category, photo path) of a garment id; an id in several categories is refused."""
        found = []
        for category in spec.CATEGORIES:
            directory = self.names.garments_dir(category)
            if any(os.path.isfile(os.path.join(directory, garment_id + extension))
                   for extension in workspace_lib.IMAGE_EXTENSIONS):
                found.append((category, _find(directory, garment_id)))
        if len(found) > 1:
            raise errors.DatasetError(found[0][1], f'garment {garment_id!r} is in several '
                                                   f'categories ({", ".join(p for _, p in found)})'
                                                   f': ids must be unique')
        if not found:
            raise errors.InputNotFoundError(
                    os.path.join(self.names.garments_dir('<category>'), garment_id + '.png'),
                    f'no garment {garment_id!r} in any category directory {spec.CATEGORIES}')
        return found[0]

    def _garment(self, garment_id):
        category, path = self._garment_path(garment_id)
        mask_path = os.path.join(os.path.dirname(path),
                                 garment_id + workspace_lib.GARMENT_MASK_SUFFIX)
        # Refused here, naming the file: a mask of the wrong size or marking nothing, a photo
        # with no garment on its white.
        image, mask = images.read_garment(path, mask_path if os.path.isfile(mask_path) else None,
                                          **self.read_options)
        return category, image, mask

    def _person(self, person_id):
        photo_path = _find(self.names.persons_dir(), person_id)
        photo = images.read_image(photo_path, **self.read_options)
        candidates = self.names.keypoints_candidates(person_id)
        pose_path = next((p for p in candidates if os.path.isfile(p)), None)
        parse_path = self.names.parse_of(person_id)
        if pose_path is None or not os.path.isfile(parse_path):
            return (photo, *self._estimated(person_id, photo, photo_path, pose_path,
                                            parse_path if os.path.isfile(parse_path) else None))
        keypoints = keypoint_files.read_keypoints(pose_path, image_size=photo.shape[:2])
        parse = parsing.read_parse(parse_path, image_size=photo.shape[:2],
                                   max_pixels=self.read_options['max_pixels'])
        return photo, parse, keypoints, pose_path

    def _estimated(self, person_id, photo, photo_path, pose_path, parse_path):
        """(parse, keypoints, the path errors name) for a person without a pose or a parse: the
        given one, the front end's estimate for the other (kept in input/body_pose and
        input/body_segment, and reused by later jobs and reruns)."""
        pose_out = self.names.estimated_pose(person_id)
        parse_out = self.names.estimated_parse(person_id)
        if not (os.path.isfile(pose_out) and os.path.isfile(parse_out)):
            estimate = self._front_end()(photo, photo_path)
            keypoint_files.write_openpose_json(pose_out, estimate.keypoints)
            parsing.write_parse_png(parse_out, estimate.parse)
        # Read back what was written (the pose rounded to 1/1000 px), so a fresh run and a
        # resumed one work on the same numbers and write the same bytes.
        pose_path = pose_path or pose_out
        keypoints = keypoint_files.read_keypoints(pose_path, image_size=photo.shape[:2])
        parse = parsing.read_parse(parse_path or parse_out, image_size=photo.shape[:2],
                                   max_pixels=self.read_options['max_pixels'])
        return parse, keypoints, pose_path

    def _front_end(self):
        with self._front_end_lock:
            if self._front_end_instance is None:
                self._front_end_instance = pipeline.front_end_for(self.backend)
            return self._front_end_instance

    def _write_inputs(self, person_id, photo, parse, keypoints, pose_path, with_top):
        """input/: the person's photo and the frames cut from it (the same bytes whichever job
        writes them)."""
        names = self.names
        images.write_png(names.body_image(person_id), photo)
        cut = [(spec.BODY_FRAME, frames.body_frame(photo, parse, keypoints, pose_path))]
        if with_top:
            cut.append((spec.UPPER_FRAME,
                        frames.upper_frame(photo, parse, keypoints, pose_path)))
        for name, frame in cut:
            images.write_png(names.frame_image(name, person_id), frame.image)
            keypoint_files.write_everywear_pose(names.frame_pose(name, person_id),
                                                frame.keypoints, frame.image.shape[:2])
            parsing.write_parse_png(names.frame_segment(name, person_id), frame.parse)
            bundle.write_bundle(names.frame_pickle(name, person_id),
                                _bundle(frame, frame.image, frame.parse, name))

    def _write_result(self, worn, garment_id, result):
        names = self.names
        stem = f'{worn}_{garment_id}'
        outputs = result.outputs
        stage = {workspace_lib.STAGE_COARSE: outputs[spec.COARSE],
                 workspace_lib.STAGE_MASK: outputs[spec.EDM_MASK],
                 workspace_lib.STAGE_WARPED: outputs[spec.WARPED_CLOTH],
                 workspace_lib.STAGE_GMM_MASK: categories.gmm_mask(outputs[spec.WARPED_MASK])}
        for suffix, image in stage.items():
            images.write_png(names.stage(stem, suffix), image)
        fileio.atomic_write_mat(names.stage(stem, workspace_lib.STAGE_MASK_MAT), {
                workspace_lib.MAT_KEY: outputs[spec.EDM_MASK].astype(np.float32) / 255.0})
        for suffix, image in result.images().items():
            images.write_png(names.composed(stem, suffix), image)
        frame = result.frame
        frame_name = spec.frame_of(result.category)
        bundle.write_bundle(names.composed(stem, workspace_lib.BEFORE_BUNDLE),
                            _bundle(frame, frame.image, frame.parse, frame_name))
        bundle.write_bundle(names.composed(stem, workspace_lib.AFTER_BUNDLE),
                            _bundle(frame, result.composed(), result.dressed_parse(),
                                    frame_name))
        images.write_png(names.final_single(frame_name, stem), result.final)

    def run_job(self, job: Job) -> None:
        """Runs one job and writes every file it makes (the final image last)."""
        photo, parse, keypoints, pose_path = self._person(job.person)
        top = self._garment(job.top) if job.top != NONE else None
        bottom = self._garment(job.bottom) if job.bottom != NONE else None
        final, results = pipeline.outfit(self.backend, photo, parse, keypoints, top, bottom,
                                         pose_path, self.relit)
        self._write_inputs(job.person, photo, parse, keypoints, pose_path, top is not None)
        if bottom is not None:
            self._write_result(workspace_lib.worn_id(job.person), job.bottom,
                               results[pipeline.BOTTOM])
        if top is not None:
            worn = workspace_lib.worn_id(job.person, None if bottom is None else job.bottom)
            self._write_result(worn, job.top, results[pipeline.TOP])
        # The outfit's final image is written last: its presence marks the job done.
        images.write_png(self.final_path(job), final)

    def final_path(self, job: Job) -> str:
        """The job's final image (its presence marks the job done)."""
        return self.names.final(job.name)

    def _inputs_of(self, job):
        """The input files a job reads, as far as they can be found (for error messages)."""
        paths = []
        with contextlib.suppress(Exception):
            paths.append(_find(self.names.persons_dir(), job.person))
        for garment in (job.top, job.bottom):
            if garment != NONE:
                with contextlib.suppress(Exception):
                    paths.append(self._garment_path(garment)[1])
        return paths

    def _attempt(self, job):
        """None when the job ran, else the error text for the report. Any failure of the job is
        the job's (a photo OpenCV or NumPy cannot handle, memory running out...); only a write
        that fails for a reason every job would share (_RunnerFaultError) stops the run."""
        try:
            self.run_job(job)
            return None
        except OSError as e:
            if _is_runner_fault(e, self.workspace):
                raise _RunnerFaultError(e) from e
            return self._problem(job, e)
        except Exception as e:
            return self._problem(job, e)

    def _problem(self, job, error):
        text = f'{type(error).__name__}: {error}'.strip()
        if not isinstance(error, errors.InputError):  # typed input errors name their file
            inputs = self._inputs_of(job)
            if inputs:
                text += f' (inputs: {", ".join(inputs)})'
        return text

    def check_workspace(self) -> None:
        """WorkspaceError unless the workspace is (or can be made) a directory holding every
        folder of the layout, each writable, and report.json (if any) a regular file."""
        root = self.workspace
        if os.path.lexists(root) and not os.path.isdir(root):
            raise WorkspaceError(f'{root}: the workspace exists and is not a directory')
        for directory in self.names.directories():
            try:
                os.makedirs(directory, exist_ok=True)
                if not os.path.isdir(directory):
                    raise NotADirectoryError(errno.ENOTDIR, 'not a directory', directory)
                fileio.check_writable(directory)
            except OSError as e:
                raise WorkspaceError(f'{directory}: cannot write the workspace there '
                                     f'({e.strerror or e})') from None
        for path in (self.names.report(), self.names.journal()):
            if os.path.lexists(path) and not os.path.isfile(path):
                raise WorkspaceError(f'{path}: exists and is not a regular file')

    def run(self, jobs: list) -> dict:
        """Runs every job not done yet; returns the report (also written as report.json).

        Before any job: the workspace is checked (``check_workspace``), locked (one run per
        workspace at a time), the temporary files a killed run left behind are removed, the
        jobs' names are checked against those of earlier runs (``check_names``), and the
        backend is checked once for the categories the jobs need (``pipeline.SetupError``)."""
        if not os.path.isdir(self.input_dir):
            raise WorkspaceError(f'{self.input_dir}: the input directory does not exist')
        self.check_workspace()
        try:
            lock = fileio.exclusive_lock(self.names.lock())
            with lock:
                return self._locked_run(jobs)
        except fileio.LockBusyError:
            raise WorkspaceError(f'{self.workspace}: another batch run is using this '
                                 f'workspace') from None
        except fileio.LockFileError as e:
            raise WorkspaceError(str(e)) from None

    def _locked_run(self, jobs):
        removed = fileio.remove_stale_temporaries(self.workspace)
        if removed:
            self.log(f'removed {removed} temporary files of an interrupted run')
        earlier = self._earlier_jobs()
        check_names(jobs, earlier)
        state = self._recorded_state()
        todo = []
        for job in jobs:
            # Done only if the journal says so and the final image is there: a final image
            # without its record (killed between the two) and a record without its image
            # (the image removed since) are both redone.
            if job.name in state and state[job.name] is None:
                if os.path.isfile(self.final_path(job)):
                    continue
                del state[job.name]
            todo.append(job)
        self._check_backend(todo)
        return self._run(jobs, todo, earlier, state)

    def _recorded_state(self):
        """{job name: None if done, else its error} of earlier runs: from the journal, or for a
        workspace an earlier version wrote (report.json and no journal), from its report."""
        path = self.names.journal()
        if os.path.lexists(path):
            return Journal.read(path, self.log)
        with contextlib.suppress(Exception):
            with open(self.names.report(), encoding='utf-8') as f:
                report = json.load(f)
            state = {name: str(error) for name, error in dict(report.get('failed', {})).items()}
            state.update((name, None) for name in report.get('done', []) if isinstance(name, str))
            return state
        return {}

    def _earlier_jobs(self):
        """The jobs earlier runs recorded in report.json (none if it is missing or unreadable)."""
        with contextlib.suppress(Exception):
            with open(self.names.report(), encoding='utf-8') as f:
                recorded = json.load(f).get('jobs', {})
            return [Job(*fields) for fields in recorded.values()
                    if isinstance(fields, list) and len(fields) == 3
                    and all(isinstance(v, str) for v in fields)]
        return []

    def _check_backend(self, todo):
        """The backend's own check (pipeline.SetupError: weights root missing, server
        unreachable...) for the categories the jobs to do need, once, before any of them."""
        check = getattr(self.backend, 'check', None)
        if check is None or not todo:
            return
        needed = set()
        for job in todo:
            for garment in (job.top, job.bottom):
                if garment != NONE:
                    with contextlib.suppress(Exception):  # an unknown garment fails its own job
                        needed.add(self._garment_path(garment)[0])
        if needed:
            check([category for category in spec.CATEGORIES if category in needed])

    def _report(self, jobs, state, recorded):
        """Writes report.json from the journal's state (one pass over the jobs); returns it."""
        report = {'total': len(jobs),
                  'done': [job.name for job in jobs
                           if job.name in state and state[job.name] is None],
                  'failed': {name: state[name] for name in sorted(state)
                             if state[name] is not None},
                  'jobs': {name: recorded[name] for name in sorted(recorded)}}
        with fileio.atomic_writer(self.names.report(), 'w') as f:
            json.dump(report, f, indent=1)
        return report

    def _run(self, jobs, todo, earlier, state):
        recorded = {job.name: [job.person, job.top, job.bottom]
                    for job in list(earlier) + list(jobs)}
        skipped = len(jobs) - len(todo)
        if skipped:
            self.log(f'{skipped} of {len(jobs)} jobs already done; {len(todo)} to go')
        journal = Journal(self.names.journal())
        journal.rewrite(state)  # compacted: one line per job, unreadable lines dropped
        # Written now too, so this run's jobs are known to the next (check_names) even if this
        # one is killed before it ends.
        self._report(jobs, state, recorded)
        terminal = sys.stderr if self._default_log and sys.stderr.isatty() else None
        progress = Progress(len(todo), self.log, terminal=terminal)
        pool = concurrent.futures.ThreadPoolExecutor(self.workers)
        in_flight = {}  # future -> job; at most IN_FLIGHT_PER_WORKER * workers at a time
        ended = queue_lib.SimpleQueue()  # the futures of in_flight that are done, as they end
        queue = iter(todo)
        finished = interrupted = False

        def record(job, problem):
            state[job.name] = problem
            journal.record(job.name, problem)
            progress.step(problem is None)

        try:
            while True:
                while len(in_flight) < IN_FLIGHT_PER_WORKER * self.workers:
                    job = next(queue, None)
                    if job is None:
                        break
                    future = pool.submit(self._attempt, job)
                    in_flight[future] = job
                    future.add_done_callback(ended.put)
                if not in_flight:
                    break
                ready = [ended.get()]  # the first job to end, and any others that have
                with contextlib.suppress(queue_lib.Empty):
                    while True:
                        ready.append(ended.get_nowait())
                for future in ready:
                    job = in_flight.pop(future)
                    try:
                        problem = future.result()
                    except _RunnerFaultError as fault:
                        cause = fault.__cause__
                        raise WorkspaceError(
                                f'{getattr(cause, "filename", None) or self.workspace}: '
                                f'{cause.strerror or cause}: the run stops (job {job.name}; '
                                f'rerun to go on)') from cause
                    record(job, problem)
            finished = True
        except KeyboardInterrupt:
            interrupted = True
            raise
        finally:
            for future in in_flight:
                future.cancel()
            pool.shutdown(wait=True, cancel_futures=True)
            # The jobs that ended while the run stopped are recorded too.
            for future, job in in_flight.items():
                if future.done() and not future.cancelled() and future.exception() is None:
                    record(job, future.result())
            progress.finish()
            try:
                journal.close()
                report = self._report(jobs, state, recorded)
            except OSError as e:
                if finished:
                    raise
                # The run is already stopping for another reason (a full disk...): that one
                # is raised; the journal keeps what was recorded.
                self.log(f'{self.names.report()}: not written ({e.strerror or e})')
            else:
                if interrupted:
                    self.log(f'interrupted after {progress.count} of {len(todo)} jobs: the '
                             f'report is written; rerun to go on')
        return report


IN_FLIGHT_PER_WORKER = 2  # jobs submitted but not finished, per worker: memory flat in the jobs


class Journal:
    """``output/journal.jsonl``: one JSON line per finished job, ``{"job": name, "done": true}``
    or ``{"job": name, "failed": error}``; the last line of a job wins.

    Each record is one ``write`` to the file (so a killed process loses at most the job that
    was ending); the file is fsynced every ``GROUP_RECORDS`` records or ``GROUP_SECONDS``, and
    when closed. A run starts by rewriting it compacted (``rewrite``), atomically."""

    GROUP_RECORDS = 256
    GROUP_SECONDS = 1.0

    def __init__(self, path: str):
        self.path = path
        self._fd = None
        self._unsynced = 0
        self._synced_at = time.monotonic()

    @staticmethod
    def read(path: str, log=None) -> dict:
        """{job name: None if done, else its error}. A line that is not a whole record (a
        process killed mid-write, a hand edit) is ignored, with a note through ``log``: its
        job is redone. WorkspaceError if the file cannot be read at all."""
        state, bad = {}, []
        try:
            with open(path, 'rb') as f:
                for number, line in enumerate(f, start=1):
                    if not line.strip():
                        continue
                    entry = _journal_entry(line)
                    if entry is None:
                        bad.append(number)
                    else:
                        state[entry[0]] = entry[1]
        except OSError as e:
            raise WorkspaceError(f'{path}: cannot read the journal ({e.strerror or e})') from None
        if bad and log is not None:
            log(f'{path}: ignored {len(bad)} unreadable line{"s" * (len(bad) > 1)} (line '
                f'{", ".join(map(str, bad[:5]))}{", ..." * (len(bad) > 5)}); their jobs are '
                f'redone')
        return state

    def rewrite(self, state: dict) -> None:
        """Replaces the file with one record per job of ``state``, then opens it to append."""
        with fileio.atomic_writer(self.path, 'wb') as f:
            for name, problem in state.items():
                f.write(_journal_line(name, problem))
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC)
        self._synced_at = time.monotonic()

    def record(self, name: str, problem: str | None) -> None:
        """Appends a job's record (``problem`` None: done); fsyncs when a group is full."""
        data = _journal_line(name, problem)
        while data:
            data = data[os.write(self._fd, data):]
        self._unsynced += 1
        if (self._unsynced >= self.GROUP_RECORDS
                or time.monotonic() - self._synced_at >= self.GROUP_SECONDS):
            self.sync()

    def sync(self) -> None:
        """fsyncs the records appended so far."""
        if self._fd is not None and self._unsynced:
            os.fsync(self._fd)
        self._unsynced = 0
        self._synced_at = time.monotonic()

    def close(self) -> None:
        """fsyncs and closes."""
        if self._fd is not None:
            try:
                self.sync()
            finally:
                os.close(self._fd)
                self._fd = None


def _journal_line(name, problem):
    entry = {'job': name, 'done': True} if problem is None else {'job': name, 'failed': problem}
    return (json.dumps(entry) + '\n').encode('ascii')


def _journal_entry(line):
    """(name, None or error) of one journal line, or None for a line that is not a record."""
    try:
        entry = json.loads(line)
    except ValueError:  # also UnicodeDecodeError
        return None
    if not isinstance(entry, dict) or not isinstance(entry.get('job'), str):
        return None
    if entry.get('done') is True and 'failed' not in entry:
        return entry['job'], None
    if isinstance(entry.get('failed'), str) and 'done' not in entry:
        return entry['job'], entry['failed']
    return None


class _RunnerFaultError(Exception):
    """A write failed in a way no job could escape (its ``__cause__`` says how)."""


# Write failures that are the workspace's, not a job's: every later job would meet them too
# (a full disk, a read-only file system anywhere; permissions taken away inside the workspace).
_FULL_OR_READ_ONLY = {errno.ENOSPC, errno.EDQUOT, errno.EROFS}
_NOT_PERMITTED = {errno.EACCES, errno.EPERM}


def _is_runner_fault(error, workspace):
    if error.errno in _FULL_OR_READ_ONLY:
        return True
    filename = getattr(error, 'filename', None)
    if error.errno not in _NOT_PERMITTED or not filename:
        return False
    root = os.path.abspath(workspace)
    return os.path.abspath(os.fspath(filename)).startswith(root + os.sep)


def _bundle(frame, image, parse, frame_name):
    return {'image': image, 'parse': parse, 'keypoints': frame.keypoints,
            'transform': frame.transform, 'source_size': np.asarray(frame.source_size, np.int64),
            'frame': frame_name}


class Progress:
    """The batch's progress: count, jobs/s, ETA and failures. On a terminal (``terminal``, a
    stream) one line redrawn in place (``\\r``) at most every ``REDRAW_SECONDS``; otherwise a
    line through ``log`` every ``EVERY_JOBS`` jobs or ``EVERY_SECONDS``, and the last."""

    WIDTH = 24
    EVERY_JOBS = 100
    EVERY_SECONDS = 30.0
    REDRAW_SECONDS = 0.2

    def __init__(self, total, log, terminal=None):
        self.total, self.log, self.terminal = total, log, terminal
        self.count = self.failures = 0
        self.started = self._shown_at = time.monotonic()
        self._shown = 0  # the count last shown
        self._drawn = 0  # the length of the line on the terminal

    def step(self, ok: bool) -> None:
        """Counts one finished job; shows the line when it is due."""
        self.count += 1
        self.failures += not ok
        now = time.monotonic()
        if self.terminal is not None:
            due = now - self._shown_at >= self.REDRAW_SECONDS
        else:
            due = (self.count % self.EVERY_JOBS == 0
                   or now - self._shown_at >= self.EVERY_SECONDS)
        if due or self.count == self.total:
            self._show(now)

    def finish(self) -> None:
        """The last count shown (if it was not), and the terminal's line ended."""
        if self.count != self._shown:
            self._show(time.monotonic())
        if self._drawn:
            self.terminal.write('\n')
            self.terminal.flush()
            self._drawn = 0

    def line(self, now: float | None = None) -> str:
        """The progress line."""
        elapsed = (time.monotonic() if now is None else now) - self.started
        rate = self.count / elapsed if elapsed > 0 else 0.0
        eta = _duration((self.total - self.count) / rate) if rate else '?'
        filled = round(self.WIDTH * self.count / max(self.total, 1))
        return (f'[{"#" * filled}{"." * (self.WIDTH - filled)}] {self.count}/{self.total} | '
                f'{rate:.2f} jobs/s, ETA {eta}, {self.failures} failed')

    def _show(self, now):
        self._shown, self._shown_at = self.count, now
        line = self.line(now)
        if self.terminal is None:
            self.log(line)
            return
        self.terminal.write('\r' + line.ljust(self._drawn))
        self.terminal.flush()
        self._drawn = len(line)


def _duration(seconds):
    if seconds < 100:
        return f'{seconds:.0f} s'
    if seconds < 6000:
        return f'{seconds / 60:.0f} min'
    return f'{seconds / 3600:.1f} h'
