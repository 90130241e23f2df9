"""The batch on Apache Beam (DirectRunner): the demo inputs and a few bad ones give the local
runner's workspace byte for byte and the same failures, with the networks in two worker
processes (exported SavedModels) and through the dev server; a rerun skips what is done; a batch
the networks refuse fails its jobs, not the pipeline."""

import hashlib
import io
import json
import os
import shutil
import sys

import numpy as np
import pytest
from apache_beam.io import filesystem
from apache_beam.ml.inference import base
from apache_beam.options import pipeline_options

from everywear_tf import demo
from everywear_tf import demo_weights
from everywear_tf import errors
from everywear_tf import spec
from everywear_tf.beam import batch as beam_batch
from everywear_tf.beam import files
from everywear_tf.beam import handlers
from everywear_tf.data import images
from everywear_tf.data import keypoints as keypoint_files
from everywear_tf.data import parsing
from everywear_tf.inference import batch
from everywear_tf.inference import pipeline
from everywear_tf.inference import preprocess
from everywear_tf.serving import config as serving_config
from everywear_tf.serving import dev_server

from tests import early

# Subprocesses and servers: not in the fast loop (pytest -m 'not slow').
pytestmark = pytest.mark.slow

_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CATEGORIES = (spec.MEN_TSHIRTS, spec.MEN_PANTS)
GOOD = [('photo_0', 'tshirt_1', 'pants_1'), ('person_0', 'tshirt_1', '-'),
        ('person_0', '-', 'pants_1'), ('photo_0', '-', 'pants_1')]
# job: words of its error
BAD = {('corrupt_0', 'tshirt_1', '-'): 'not a decodable image',
       ('notjson_0', '-', 'pants_1'): 'notjson_0_keypoints.json',
       ('noshoulders_0', 'tshirt_1', '-'): 'both shoulders are needed',
       ('badparse_0', 'tshirt_1', '-'): 'aspect ratio',
       ('person_0', 'missing_1', '-'): "no garment 'missing_1'",
       ('person_0', 'pants_1', '-'): 'not an upper garment'}


def _name(job):
    return '_'.join(job)


def _demo_person(persons, person_id, photo=demo.PERSON, pose=demo.PERSON_POSE,
                 parse=demo.PERSON_PARSE):
    shutil.copy(photo, persons / (person_id + os.path.splitext(photo)[1]))
    shutil.copy(pose, persons / f'{person_id}_keypoints.json')
    shutil.copy(parse, persons / f'{person_id}_parse.png')


@pytest.fixture(scope='module')
def source(tmp_path_factory):
    return _write_source(tmp_path_factory.mktemp('in'))


def _write_source(root):
    """The demo inputs and the bad ones under ``root``, with pairs.txt of GOOD and BAD."""
    persons = root / 'persons'
    persons.mkdir()
    _demo_person(persons, 'photo_0', demo.PHOTO, demo.PHOTO_POSE, demo.PHOTO_PARSE)
    for person in ('person_0', 'corrupt_0', 'notjson_0', 'noshoulders_0', 'badparse_0'):
        _demo_person(persons, person)
    (persons / 'corrupt_0.png').unlink()
    (persons / 'corrupt_0.jpg').write_bytes(b'\xff\xd8\xff\xe0 not a jpeg')
    (persons / 'notjson_0_keypoints.json').write_text('{"people": [')
    keypoints = keypoint_files.read_keypoints(demo.PERSON_POSE)
    keypoints[[keypoint_files.R_SHOULDER, keypoint_files.L_SHOULDER]] = 0
    keypoint_files.write_everywear_pose(persons / 'noshoulders_0_keypoints.json', keypoints,
                                        spec.FRAME_SHAPE)
    shutil.copy(demo.PHOTO_PARSE, persons / 'badparse_0_parse.png')  # square, photo is 4:3
    for category, photo, mask, garment in ((spec.MEN_TSHIRTS, demo.TSHIRT, demo.TSHIRT_MASK,
                                            'tshirt_1'),
                                           (spec.MEN_PANTS, demo.PANTS, demo.PANTS_MASK,
                                            'pants_1')):
        (root / 'garments' / category).mkdir(parents=True)
        shutil.copy(photo, root / 'garments' / category / f'{garment}.png')
        shutil.copy(mask, root / 'garments' / category / f'{garment}_mask.png')
    (root / 'pairs.txt').write_text(''.join(f'{" ".join(job)}\n' for job in GOOD + list(BAD)))
    return root


_EXPORT = """
import os
import sys
from everywear_tf import demo_weights
from everywear_tf import weights
from everywear_tf.export import exporter
for name in sys.argv[2:]:
    exporter.export(weights.load(os.path.join(demo_weights.DIRECTORY, name)), sys.argv[1], name)
"""
# The demo weights exported in a subprocess started as the session starts (tests/early.py), so
# that it works while the local runner's fixture does.
_EXPORTING = early.Command(
        ('test_two_worker_processes_equal_the_local_runner_and_a_rerun_skips',
         'test_the_remote_handler_through_the_dev_server_equals_the_local_runner',
         'test_a_stacked_batch_gives_each_frame_its_outputs_up_to_rounding',
         'test_a_person_without_a_pose_gets_the_front_end_everywear_batch_would',
         'test_a_url_input_and_workspace_give_the_local_bytes_and_a_rerun_skips'),
        [sys.executable, '-c', _EXPORT, '{directory}',
         *(spec.model_name(module, category) for category in CATEGORIES
           for module in spec.MODULES)], cwd=_ROOT)


@pytest.fixture(scope='module')
def exported(local):  # after the local runner's fixture: the export runs meanwhile
    del local
    done = _EXPORTING.result(timeout=1200)
    assert done.returncode == 0, done.stderr[-3000:]
    return _EXPORTING.directory


@pytest.fixture(scope='module')
def local(source, tmp_path_factory):
    """The local runner's workspace and report over the same jobs."""
    work = tmp_path_factory.mktemp('local')
    report = batch.Batch(str(source), str(work), pipeline.LocalBackend(demo_weights.DIRECTORY),
                         log=lambda m: None).run(batch.read_jobs(source / 'pairs.txt'))
    return work, report


def _files(directory):
    """{relative path: sha256} of a workspace's results (the bookkeeping left out)."""
    found = {}
    for root, _, names in os.walk(directory):
        for name in names:
            if name in ('report.json', 'journal.jsonl') or name.startswith('.everywear'):
                continue
            path = os.path.join(root, name)
            with open(path, 'rb') as f:
                found[os.path.relpath(path, directory)] = hashlib.sha256(f.read()).hexdigest()
    return found


def _mtimes(directory):
    return {os.path.join(root, name): os.stat(os.path.join(root, name)).st_mtime_ns
            for root, _, names in os.walk(directory) for name in names
            if name not in ('report.json', 'journal.jsonl')}


def _check_same_as_local(report, work, local):
    local_work, local_report = local
    assert sorted(local_report['failed']) == sorted(_name(job) for job in BAD)
    for job, words in BAD.items():
        assert words in report['failed'][_name(job)], (job, report['failed'][_name(job)])
        # The same error; the local runner adds the inputs it found to untyped errors.
        assert local_report['failed'][_name(job)].startswith(report['failed'][_name(job)])
    assert report['done'] == local_report['done'] == [_name(job) for job in GOOD]
    assert report['total'] == local_report['total'] and report['jobs'] == local_report['jobs']
    mine, theirs = _files(work), _files(local_work)
    assert len(theirs) > 60
    assert sorted(mine) == sorted(theirs)
    assert [path for path in mine if mine[path] != theirs[path]] == []


def _options(*extra):
    return pipeline_options.PipelineOptions(['--runner=DirectRunner', *extra])


def test_two_worker_processes_equal_the_local_runner_and_a_rerun_skips(source, exported, local,
                                                                       tmp_path):
    work = tmp_path / 'ws'
    options = _options('--direct_num_workers=2', '--direct_running_mode=multi_processing')
    handler = handlers.ChainModelHandler(saved_models=str(exported))
    jobs = beam_batch.JobsFile(None, str(source))  # <input_dir>/pairs.txt, read on a worker
    report = beam_batch.run(str(source), str(work), jobs, handler, options)
    _check_same_as_local(report, work, local)
    assert json.loads((work / 'output' / 'report.json').read_text()) == report
    # A rerun writes no result again; the failed jobs are tried again and fail the same way.
    before = _mtimes(work)
    again = beam_batch.run(str(source), str(work), jobs, handler, _options())
    assert again == report
    assert _mtimes(work) == before
    # everywear-batch over the pipeline's workspace trusts its journal: nothing is redone.
    local_rerun = batch.Batch(str(source), str(work), _RefusingBackend(fail_all=True),
                              log=lambda m: None).run(jobs.read())
    assert local_rerun['done'] == report['done']
    assert sorted(local_rerun['failed']) == sorted(report['failed'])
    assert _mtimes(work) == before


def test_the_remote_handler_through_the_dev_server_equals_the_local_runner(source, exported,
                                                                           local, tmp_path):
    names = [spec.model_name(module, category) for category in CATEGORIES
             for module in spec.MODULES]
    server = dev_server.DevServer(serving_config.serving_config(str(exported), names),
                                  file_system_poll_seconds=0).start()
    try:
        handler = handlers.ServingModelHandler(f'127.0.0.1:{server.grpc_port}')
        report = beam_batch.run(str(source), str(tmp_path / 'ws'),
                                batch.read_jobs(source / 'pairs.txt'), handler, _options())
    finally:
        server.stop()
    _check_same_as_local(report, tmp_path / 'ws', local)


class _RefusingBackend:
    """GMM signature inputs → constant outputs; every men_tshirts batch is refused (every
    batch with ``fail_all``)."""

    def __init__(self, fail_all=False):
        self.fail_all = fail_all

    def __call__(self, category, inputs):
        if category == spec.MEN_TSHIRTS or self.fail_all:
            raise RuntimeError('the server said no')
        count = len(inputs[spec.PERSON])
        image = np.full((count,) + spec.FRAME_SHAPE + (3,), 90, np.uint8)
        mask = np.full((count,) + spec.FRAME_SHAPE, 255, np.uint8)
        return {spec.TRYON: image, spec.COARSE: image, spec.WARPED_CLOTH: image,
                spec.CLOTHING_MASK: mask, spec.EDM_MASK: mask, spec.WARPED_MASK: mask,
                spec.TPS_MASK: mask}


class _RefusingHandler(base.ModelHandler):
    def load_model(self):
        return _RefusingBackend()

    def run_inference(self, batch, model, inference_args=None):
        return handlers.run_requests(model, batch)


def test_a_batch_the_networks_refuse_fails_its_jobs_and_the_pipeline_goes_on(source, tmp_path):
    jobs = [batch.Job('person_0', 'tshirt_1', '-'), batch.Job('person_0', '-', 'pants_1'),
            batch.Job('photo_0', 'tshirt_1', 'pants_1')]
    report = beam_batch.run(str(source), str(tmp_path / 'ws'), jobs, _RefusingHandler(),
                            _options())
    assert report['done'] == ['person_0_-_pants_1']
    assert sorted(report['failed']) == ['person_0_tshirt_1_-', 'photo_0_tshirt_1_pants_1']
    for problem in report['failed'].values():
        assert 'the server said no' in problem and 'RuntimeError' in problem, problem
    # The outfit's pants were tried on (its stage files) but the job is not done.
    assert not (tmp_path / 'ws' / 'output' / 'final_images' /
                'photo_0_tshirt_1_pants_1_final.png').exists()


def test_names_colliding_with_an_earlier_run_are_refused(source, tmp_path):
    work = tmp_path / 'ws'
    (work / 'output').mkdir(parents=True)
    (work / 'output' / 'report.json').write_text(json.dumps(
            {'jobs': {'person_0_a_b_1_-': ['person_0', 'a_b_1', '-']}}))
    with pytest.raises(Exception, match='collide'):
        beam_batch.run(str(source), str(work), [batch.Job('person_0_a', 'b_1', '-')],
                       _RefusingHandler(), _options())


def test_a_stacked_batch_gives_each_frame_its_outputs_up_to_rounding(source, exported):
    backend = pipeline.SavedModelBackend(str(exported), log=lambda m: None)
    garments = {spec.MEN_TSHIRTS: (demo.TSHIRT, demo.TSHIRT_MASK),
                spec.MEN_PANTS: (demo.PANTS, demo.PANTS_MASK)}
    photo = images.read_image(demo.PHOTO)
    parse = parsing.read_parse(demo.PHOTO_PARSE)
    keypoints = keypoint_files.read_keypoints(demo.PHOTO_POSE, image_size=photo.shape[:2])
    requests = []
    for shift, category in enumerate((spec.MEN_TSHIRTS, spec.MEN_PANTS, spec.MEN_TSHIRTS,
                                      spec.MEN_TSHIRTS, spec.MEN_PANTS)):
        frame = preprocess.frame_for(category, np.roll(photo, 9 * shift, axis=1), parse,
                                     keypoints)
        garment, mask = images.read_garment(*garments[category])
        requests.append(handlers.Request(None, [], category,
                                         preprocess.signature_inputs(frame, garment, mask)))
    together = handlers.run_requests(backend, requests)
    assert [result.example for result in together] == requests
    for request, result in zip(requests, together):
        alone = backend(request.category, request.inputs)
        assert sorted(alone) == sorted(result.inference)
        for key, value in alone.items():
            got = result.inference[key]
            assert value.shape == got.shape and value.shape[0] == 1
            # oneDNN's kernels may round a few pixels of a stacked batch one level apart from
            # the frame alone (measured: EDM's outputs, 1 pixel in 49152); hence the default
            # batch of 1, which gives the local runner's bytes. Float outputs (theta, grid)
            # differ in their last bits on most entries on an AVX2-only CPU: bounded, not counted.
            difference = np.abs(got.astype(np.float64) - value)
            assert difference.max() <= (1 if value.dtype == np.uint8 else 1e-4), key
            if value.dtype == np.uint8:  # float outputs differ in the last bits on some CPUs
                assert np.mean(difference > 0) < 1e-3, key


def _command_inputs(directory):
    (directory / 'in').mkdir()
    _write_source(directory / 'in')
    (directory / 'jobs.txt').write_text('person_0 tshirt_1 -\ncorrupt_0 tshirt_1 -\n')


# Over its own copy of the inputs, started as the session starts (tests/early.py).
_COMMAND = early.Command('test_the_command_reports_its_jobs', [
        sys.executable, '-m', 'everywear_tf.beam.command', '--input_dir={directory}/in',
        '--workspace={directory}/ws', '--jobs={directory}/jobs.txt',
        '--direct_running_mode=in_memory', '--', '--direct_num_workers=1'],
        prepare=_command_inputs)


def test_the_command_reports_its_jobs():
    done = _COMMAND.result(timeout=300)
    assert done.returncode == 1, done.stderr
    assert '1 of 2 jobs done; 1 failed' in done.stdout
    report = json.loads((_COMMAND.directory / 'ws' / 'output' / 'report.json').read_text())
    assert report['done'] == ['person_0_tshirt_1_-']
    assert 'not a decodable image' in report['failed']['corrupt_0_tshirt_1_-']


def test_missing_networks_stop_the_run_before_the_pipeline(source, tmp_path):
    jobs = [batch.Job('person_0', 'tshirt_1', '-'), batch.Job('person_0', '-', 'pants_1')]
    for handler in (handlers.ChainModelHandler(weights_root=str(tmp_path / 'nowhere')),
                    handlers.ChainModelHandler(saved_models=str(tmp_path / 'nowhere')),
                    handlers.ServingModelHandler('127.0.0.1:1')):
        with pytest.raises(pipeline.SetupError) as caught:
            beam_batch.run(str(source), str(tmp_path / 'ws'), jobs, handler, _options())
        assert 'nowhere' in str(caught.value) or 'no model server answers' in str(caught.value)
    assert not (tmp_path / 'ws' / 'output' / 'report.json').exists()


def test_a_local_run_after_the_pipeline_trusts_what_it_finished(source, tmp_path):
    work = tmp_path / 'ws'
    first, second = batch.Job('person_0', '-', 'pants_1'), batch.Job('photo_0', '-', 'pants_1')
    # everywear-batch starts the workspace (and its journal), the pipeline adds a job.
    batch.Batch(str(source), str(work), _RefusingBackend(), log=lambda m: None).run([first])
    report = beam_batch.run(str(source), str(work), [first, second], _RefusingHandler(),
                            _options())
    assert report['done'] == [first.name, second.name] and report['failed'] == {}
    before = _mtimes(work)
    again = batch.Batch(str(source), str(work), _RefusingBackend(fail_all=True),
                        log=lambda m: None).run([first, second])
    assert again['done'] == [first.name, second.name] and again['failed'] == {}
    assert _mtimes(work) == before


def test_a_person_without_a_pose_gets_the_front_end_everywear_batch_would(source, exported,
                                                                          tmp_path):
    # The export has no front end (no --frontend): everywear-batch --saved_models fails the job
    # saying so, and so must the pipeline (not fall back to the front end in process).
    persons = tmp_path / 'in' / 'persons'
    shutil.copytree(source, tmp_path / 'in')
    (persons / 'person_0_keypoints.json').unlink()
    jobs = [batch.Job('person_0', 'tshirt_1', '-')]
    local = batch.Batch(str(tmp_path / 'in'), str(tmp_path / 'local'),
                        pipeline.SavedModelBackend(str(exported), log=lambda m: None),
                        log=lambda m: None).run(jobs)
    report = beam_batch.run(str(tmp_path / 'in'), str(tmp_path / 'ws'), jobs,
                            handlers.ChainModelHandler(saved_models=str(exported)), _options())
    problem = report['failed']['person_0_tshirt_1_-']
    assert 'no SavedModel versions of the front end' in problem
    assert local['failed']['person_0_tshirt_1_-'].startswith(problem)


# evmem://...: a Beam file system of this process's memory, an object store's semantics (no
# folders, an object appears when its writer closes, rename = copy + delete).
_MEMORY = {}
_WRITES = []  # every path written, in order


class _MemoryFile(io.BytesIO):
    def __init__(self, path):
        super().__init__()
        self.path = path

    def close(self):
        if not self.closed:
            _MEMORY[self.path] = self.getvalue()
            _WRITES.append(self.path)
        super().close()


class MemoryFileSystem(filesystem.FileSystem):
    """Registered with Beam as the scheme ``evmem`` by being defined."""

    @classmethod
    def scheme(cls):
        return 'evmem'

    def join(self, basepath, *paths):
        return '/'.join([basepath.rstrip('/'), *paths])

    def split(self, path):
        head, _, tail = path.rpartition('/')
        return head, tail

    def mkdirs(self, path):
        pass

    def has_dirs(self):
        return False

    def _list(self, dir_or_prefix):
        for path in sorted(_MEMORY):
            if path.startswith(dir_or_prefix):
                yield self.metadata(path)

    def create(self, path, mime_type=None, compression_type=None):
        return _MemoryFile(path)

    def open(self, path, mime_type=None, compression_type=None):
        if path not in _MEMORY:
            raise filesystem.BeamIOError('no such object', {path: FileNotFoundError(path)})
        return io.BytesIO(_MEMORY[path])

    def copy(self, source_file_names, destination_file_names):
        for source, destination in zip(source_file_names, destination_file_names):
            _MEMORY[destination] = _MEMORY[source]
            _WRITES.append(destination)

    def rename(self, source_file_names, destination_file_names):
        self.copy(source_file_names, destination_file_names)
        self.delete(source_file_names)

    def exists(self, path):
        return path in _MEMORY

    def size(self, path):
        return len(_MEMORY[path])

    def last_updated(self, path):
        return 0.0

    def metadata(self, path):
        return filesystem.FileMetadata(path, len(_MEMORY[path]), 0.0)

    def delete(self, paths):
        for path in paths:
            del _MEMORY[path]


def test_a_url_input_and_workspace_give_the_local_bytes_and_a_rerun_skips(source, exported,
                                                                          local):
    _MEMORY.clear()
    for root, _, names in os.walk(source):
        for name in names:
            path = os.path.join(root, name)
            with open(path, 'rb') as f:
                _MEMORY['evmem://in/' + os.path.relpath(path, source)] = f.read()
    # Two jobs to do (the outfit: the pants, then the top over them), two that fail.
    subset = [GOOD[0], GOOD[2], ('notjson_0', '-', 'pants_1'), ('person_0', 'missing_1', '-')]
    _MEMORY['evmem://in/pairs.txt'] = ''.join(f'{" ".join(job)}\n' for job in subset).encode()
    handler = handlers.ChainModelHandler(saved_models=str(exported))
    jobs = beam_batch.JobsFile(None, 'evmem://in')
    report = beam_batch.run('evmem://in', 'evmem://ws', jobs, handler, _options())
    assert report['done'] == [_name(GOOD[0]), _name(GOOD[2])]
    local_work, local_report = local
    for job in subset[2:]:
        assert report['failed'][_name(job)] == local_report['failed'][_name(job)].replace(
                str(source), 'evmem://in').split(' (inputs: ')[0]
    assert 'evmem://in/persons/notjson_0_keypoints.json' in report['failed'][_name(subset[2])]
    assert json.loads(_MEMORY['evmem://ws/output/report.json']) == report
    theirs = _files(local_work)
    mine = {path[len('evmem://ws/'):]: hashlib.sha256(data).hexdigest()
            for path, data in _MEMORY.items() if path.startswith('evmem://ws/')
            and not path.endswith(('report.json', 'journal.jsonl'))}
    for expected in ('output/final_images/photo_0_tshirt_1_pants_1_final.png',
                     'output/composed_images/photo_0_pants_1_tshirt_1_1_pkl.pkl',
                     'stage/person_0_pants_1_mask.mat', 'input/upper_pickle/photo_0.pkl'):
        assert expected in mine
    assert len(mine) > 40 and [path for path in mine if mine[path] != theirs.get(path)] == []
    # Every file was written to a temporary and renamed; none is left; final images last.
    assert not [path for path in _MEMORY if files.TEMPORARIES in path]
    written = [path for path in _WRITES if path.startswith('evmem://ws/')
               and files.TEMPORARIES not in path]
    outfit = written.index('evmem://ws/output/final_images/photo_0_tshirt_1_pants_1_final.png')
    assert all('photo_0_pants_1_tshirt_1' not in path for path in written[outfit:])
    # The journal everywear-batch trusts: this run's jobs merged in.
    assert _MEMORY['evmem://ws/output/journal.jsonl'].count(b'"done": true') == 2
    # A rerun writes nothing but the bookkeeping: the failed jobs fail again, the rest skip.
    del _WRITES[:]
    _MEMORY['evmem://ws/.everywear-tmp/0-left-by-a-killed-run.png'] = b'half'
    again = beam_batch.run('evmem://in', 'evmem://ws', jobs, handler, _options())
    assert again == report
    assert not [path for path in _MEMORY if files.TEMPORARIES in path]
    assert sorted({path for path in _WRITES if files.TEMPORARIES not in path}) == [
            'evmem://ws/output/journal.jsonl', 'evmem://ws/output/report.json']


_MODELS_SEEN = []  # the type of the model each batch ran on (in_memory: this process)


class _SharedConstantHandler(handlers.ChainModelHandler):
    """ChainModelHandler's own batching, sharing and inference over _RefusingBackend."""

    def load_model(self):
        return _RefusingBackend()

    def run_inference(self, batch, model, inference_args=None):
        _MODELS_SEEN.append(type(model).__name__)
        return super().run_inference(batch, model, inference_args)


def test_networks_shared_across_processes_give_the_same_bytes(source, tmp_path):
    jobs = [batch.Job('person_0', '-', 'pants_1'), batch.Job('photo_0', '-', 'pants_1')]
    batch.Batch(str(source), str(tmp_path / 'local'), _RefusingBackend(),
                log=lambda m: None).run(jobs)
    with pytest.raises(ValueError, match='model_copies'):
        handlers.ChainModelHandler(weights_root='w', model_copies=2)
    handler = _SharedConstantHandler(weights_root=demo_weights.DIRECTORY,
                                     share_across_processes=True)
    assert handler.share_model_across_processes() and handler.model_copies() == 1
    assert not handlers.ChainModelHandler(weights_root='w').share_model_across_processes()
    del _MODELS_SEEN[:]
    report = beam_batch.run(str(source), str(tmp_path / 'ws'), jobs, handler, _options())
    assert report['done'] == [job.name for job in jobs]
    # Every batch ran on Beam's multi_process_shared proxy of the one copy.
    assert _MODELS_SEEN and set(_MODELS_SEEN) == {'_AutoProxyWrapper'}
    assert _files(tmp_path / 'ws') == _files(tmp_path / 'local')


def test_urls_that_cannot_be_used_are_errors_before_the_pipeline():
    job = batch.Job('person_0', '-', 'pants_1')
    with pytest.raises(beam_batch.WorkspaceError, match='nosuch://ws'):
        beam_batch.run('evmem://in', 'nosuch://ws', [job], _RefusingHandler(), _options())
    _MEMORY.clear()
    with pytest.raises(errors.InputNotFoundError, match='evmem://nowhere/persons'):
        beam_batch.run('evmem://nowhere', 'evmem://ws', beam_batch.JobsFile(None, 'evmem://nowhere'),
                       _RefusingHandler(), _options())
    with pytest.raises(errors.InputNotFoundError, match='evmem://jobs.txt'):
        beam_batch.read_jobs('evmem://jobs.txt', 'evmem://nowhere')
    assert _MEMORY == {}
