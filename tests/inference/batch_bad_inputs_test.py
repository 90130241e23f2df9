"""Batch runs against bad input: every bad item fails alone with an error naming it, memory stays
bounded, nothing is left half-written, the rest of the batch completes; what would make every
job fail (the workspace, the lock, the names, the backend) stops the run once, before any work.

The runner tests use a stand-in backend (no networks); the corpus runs the lite networks in a
subprocess that measures its own memory.
"""

import errno
import json
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest

from everywear_tf import errors
from everywear_tf import fileio
from everywear_tf import spec
from everywear_tf.data import images
from everywear_tf.data import keypoints as keypoint_files
from everywear_tf.data import parsing
from everywear_tf.inference import batch
from everywear_tf.inference import pipeline
from everywear_tf.inference import workspace

from tests.data.frames_test import _long
from tests.data.frames_test import _photo
from tests.inference.batch_test import _input_dir
from tests.inference.batch_test import _person
from tests.inference.batch_test import weights_root  # noqa: F401 (a fixture)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class FakeBackend:
    """The networks' outputs as constant frames; ``fail`` maps a category to an exception the
    call raises; ``check`` records the categories it is asked about (or raises ``setup``)."""

    def __init__(self, fail=None, setup=None):
        self.fail, self.setup = fail or {}, setup
        self.calls, self.checked = [], []

    def check(self, categories):
        self.checked.append(list(categories))
        if self.setup is not None:
            raise self.setup

    def __call__(self, category, inputs):
        self.calls.append(category)
        if category in self.fail:
            raise self.fail[category]
        image = np.full((1,) + spec.FRAME_SHAPE + (3,), 90, np.uint8)
        mask = np.full((1,) + spec.FRAME_SHAPE, 255, np.uint8)
        return {spec.TRYON: image, spec.COARSE: image, spec.WARPED_CLOTH: image,
                spec.CLOTHING_MASK: mask, spec.EDM_MASK: mask, spec.WARPED_MASK: mask,
                spec.TPS_MASK: mask}


def _source(tmp_path, jobs, persons=('p_0',)):
    source = _input_dir(tmp_path / 'in', jobs)
    for person in persons:
        _person(source, person, (320, 240))
    return source


def _no_temporaries(root):
    return [os.path.join(d, f) for d, _, files in os.walk(root) for f in files
            if f.endswith(fileio.TEMPORARY_SUFFIX)]


# --- per-item failures of any kind are the item's ------------------------------------------

@pytest.mark.parametrize('error', [MemoryError('Unable to allocate 4.77 GiB'),
                                   cv2.error('(-215:Assertion failed) src.cols < SHRT_MAX'),
                                   RuntimeError('anything else')])
def test_any_failure_of_one_job_is_that_jobs_and_the_batch_goes_on(tmp_path, error):
    source = _source(tmp_path, [('p_0', 'shirt_1', '-'), ('p_0', '-', 'jeans_1')])
    backend = FakeBackend(fail={spec.MEN_TSHIRTS: error})
    report = batch.Batch(str(source), str(tmp_path / 'ws'), backend, log=lambda m: None).run(
            batch.read_jobs(source / 'pairs.txt'))
    assert report['done'] == ['p_0_-_jeans_1']
    problem = report['failed']['p_0_shirt_1_-']
    assert problem.startswith(type(error).__name__) and str(error) in problem
    # The inputs are named: the person's photo and the garment.
    assert str(source / 'persons' / 'p_0.png') in problem
    assert str(source / 'garments' / spec.MEN_TSHIRTS / 'shirt_1.png') in problem
    assert not (tmp_path / 'ws' / 'output' / 'final_images' / 'p_0_shirt_1_-_final.png').exists()
    assert not _no_temporaries(tmp_path / 'ws')
    saved = json.loads((tmp_path / 'ws' / 'output' / 'report.json').read_text())
    assert saved['failed'] == report['failed']


def test_a_full_disk_stops_the_run_with_the_report_saved(tmp_path, monkeypatch):
    source = _source(tmp_path, [('p_0', '-', 'jeans_1'), ('p_0', 'shirt_1', '-')])
    real = images.write_png

    def full(path, array):
        if 'final_images' in os.fspath(path):
            raise OSError(errno.ENOSPC, 'No space left on device', os.fspath(path))
        return real(path, array)

    monkeypatch.setattr(images, 'write_png', full)
    run = batch.Batch(str(source), str(tmp_path / 'ws'), FakeBackend(), log=lambda m: None)
    with pytest.raises(batch.WorkspaceError, match='No space left on device.*the run stops'):
        run.run(batch.read_jobs(source / 'pairs.txt'))
    saved = json.loads((tmp_path / 'ws' / 'output' / 'report.json').read_text())
    assert saved['done'] == [] and saved['failed'] == {}  # not recorded as the job's fault


# --- errors before the work ----------------------------------------------------------------

def _refused(tmp_path, source, work, match, backend=None):
    backend = backend or FakeBackend()
    with pytest.raises(errors.EverywearError, match=match):
        batch.Batch(str(source), str(work), backend, log=lambda m: None).run(
                batch.read_jobs(source / 'pairs.txt'))
    assert backend.calls == []  # no job ran
    return backend


def test_a_workspace_that_is_a_file_or_under_one(tmp_path):
    source = _source(tmp_path, [('p_0', '-', 'jeans_1')])
    (tmp_path / 'file').write_text('x')
    _refused(tmp_path, source, tmp_path / 'file', 'file: the workspace exists and is not a '
                                                  'directory')
    _refused(tmp_path, source, tmp_path / 'file' / 'ws', 'cannot write the workspace there')


def test_output_folders_or_the_report_that_cannot_be_written(tmp_path):
    source = _source(tmp_path, [('p_0', '-', 'jeans_1')])
    (tmp_path / 'ws' / 'output').mkdir(parents=True)
    (tmp_path / 'ws' / 'output' / 'final_images').write_text('a file where a folder goes')
    _refused(tmp_path, source, tmp_path / 'ws', 'final_images: cannot write the workspace')
    (tmp_path / 'ws' / 'output' / 'final_images').unlink()
    (tmp_path / 'ws' / 'output' / 'report.json').mkdir()
    _refused(tmp_path, source, tmp_path / 'ws', 'report.json: exists and is not a regular file')


def test_a_lock_file_behind_a_symlink_is_not_followed(tmp_path):
    source = _source(tmp_path, [('p_0', '-', 'jeans_1')])
    work = tmp_path / 'ws'
    work.mkdir()
    target = tmp_path / 'elsewhere' / 'created-by-the-lock'
    target.parent.mkdir()
    os.symlink(target, work / workspace.LOCK)
    _refused(tmp_path, source, work, 'the lock file is a symbolic link')
    assert not target.exists()
    (work / workspace.LOCK).unlink()
    os.mkfifo(work / workspace.LOCK)
    _refused(tmp_path, source, work, 'the lock file is not a regular file')


def test_a_missing_input_directory(tmp_path):
    source = _source(tmp_path, [('p_0', '-', 'jeans_1')])
    with pytest.raises(batch.WorkspaceError, match='the input directory does not exist'):
        batch.Batch(str(tmp_path / 'nowhere'), str(tmp_path / 'ws'), FakeBackend(),
                    log=lambda m: None).run(batch.read_jobs(source / 'pairs.txt'))


def test_setup_errors_stop_the_run_once_before_any_job(tmp_path):
    source = _source(tmp_path, [('p_0', '-', 'jeans_1'), ('p_0', 'shirt_1', '-'),
                                ('p_0', 'nothing_1', '-')])
    backend = _refused(tmp_path, source, tmp_path / 'ws', 'no model server answers',
                       FakeBackend(setup=pipeline.SetupError('no model server answers')))
    # Asked once, for the categories the jobs need (an unknown garment fails its own job).
    assert backend.checked == [[spec.MEN_TSHIRTS, spec.MEN_PANTS]]
    assert not (tmp_path / 'ws' / 'output' / 'report.json').exists()
    # A real backend whose weights root is missing: the same, with the directory named.
    with pytest.raises(pipeline.SetupError, match='nowhere'):
        batch.Batch(str(source), str(tmp_path / 'ws'),
                    pipeline.LocalBackend(str(tmp_path / 'nowhere')), log=lambda m: None).run(
                batch.read_jobs(source / 'pairs.txt'))


def test_a_pairs_file_that_is_not_utf8(tmp_path):
    pairs = tmp_path / 'pairs.txt'
    pairs.write_bytes(b'anna_0 shirt_1 -\nbo\xe9_0 - jeans_1\n')
    with pytest.raises(errors.DatasetError, match='line 2: not UTF-8 text') as caught:
        batch.read_jobs(pairs)
    assert str(pairs) in str(caught.value)


@pytest.mark.parametrize('lines, where', [
        # The job names meet: p_0 + a_b_1 and p_0_a + b_1.
        (['p_0 a_b_1 -', 'p_0_a b_1 -'], 'final_images/p_0_a_b_1_-'),
        # A top over pants and a person whose id is the worn one: stage/p_0_j_1_s_1.
        (['p_0 s_1 j_1', 'p_0_j_1 s_1 -'], 'stage, composed/p_0_j_1_s_1'),
        # A person's estimated pose and another person's frame pose in input/body_pose/.
        (['x_0 - j_1', 'x_0_keypoints - j_1'], 'body_pose/x_0_keypoints')])
def test_ids_whose_joined_names_collide_are_refused(tmp_path, lines, where):
    pairs = tmp_path / 'pairs.txt'
    pairs.write_text('# jobs\n' + '\n'.join(lines) + '\n')
    with pytest.raises(errors.DatasetError) as caught:
        batch.read_jobs(pairs)
    message = str(caught.value)
    assert where in message and 'line 2' in message and 'line 3' in message, message
    assert str(pairs) in message


def test_a_name_an_earlier_run_used_for_another_job_is_refused(tmp_path):
    source = _source(tmp_path, [('p_0', 'a_b_1', '-')], persons=('p_0', 'p_0_a'))
    work = tmp_path / 'ws'
    batch.Batch(str(source), str(work), FakeBackend(), log=lambda m: None).run(
            batch.read_jobs(source / 'pairs.txt'))
    (source / 'pairs.txt').write_text('p_0_a b_1 -\n')
    _refused(tmp_path, source, work, r'job "p_0_a b_1 -" and job "p_0 a_b_1 -" \(an earlier run')


def test_ambiguous_inputs_fail_their_jobs(tmp_path):
    source = _source(tmp_path, [('p_0', 'shirt_1', '-'), ('two_0', '-', 'jeans_1')],
                     persons=('p_0', 'two_0'))
    garments = source / 'garments'
    images.write_png(garments / spec.MEN_LONG / 'shirt_1.png',
                     images.read_image(str(garments / spec.MEN_TSHIRTS / 'shirt_1.png')))
    photo = images.read_image(str(source / 'persons' / 'two_0.png'))
    cv2.imwrite(str(source / 'persons' / 'two_0.jpg'), photo)
    report = batch.Batch(str(source), str(tmp_path / 'ws'), FakeBackend(),
                         log=lambda m: None).run(batch.read_jobs(source / 'pairs.txt'))
    assert "garment 'shirt_1' is in several categories" in report['failed']['p_0_shirt_1_-']
    assert "'two_0' has several photos" in report['failed']['two_0_-_jeans_1']
    # Without a pairs file, the garment found twice is one job (which fails), not two.
    (source / 'pairs.txt').unlink()
    names = [job.name for job in batch.discover_jobs(str(source))]
    assert names.count('p_0_shirt_1_-') == 1


# --- the corpus through the lite networks, memory measured ---------------------------------

_CHILD = r'''
import json, os, sys, threading, time
import numpy as np
from everywear_tf import spec
from everywear_tf.inference import batch, pipeline
source, work, weights = sys.argv[1:4]


def anonymous():
    """Resident anonymous memory (heap, arrays), bytes: not the pages of the libraries'
    files, which the kernel maps in and drops as it likes whatever the batch allocates."""
    with open('/proc/self/status') as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith('RssAnon:'))


backend = pipeline.LocalBackend(weights)
backend.check([spec.MEN_TSHIRTS, spec.MEN_PANTS])  # the networks loaded before the baseline
# ... and run once, so their traced graphs and kernels' caches are in the baseline too.
warm = {key: np.zeros((1,) + tuple(spec.INPUT_SPECS[key][1][1:]), spec.INPUT_SPECS[key][0])
        for key in spec.MODULE_INPUTS[spec.GMM]}
for category in (spec.MEN_TSHIRTS, spec.MEN_PANTS):
    backend(category, warm)
baseline = anonymous()
peak = [baseline]
done = threading.Event()


def sample():
    while not done.is_set():
        peak[0] = max(peak[0], anonymous())
        time.sleep(0.005)


sampler = threading.Thread(target=sample, daemon=True)
sampler.start()
report = batch.Batch(source, work, backend, log=lambda m: None).run(
        batch.read_jobs(os.path.join(source, 'pairs.txt')))
done.set()
sampler.join()
print(json.dumps({'report': report, 'baseline': baseline, 'peak': max(peak[0], anonymous())}))
'''


def _png_bomb(path, height, width):
    """A valid grey PNG of ``height``×``width`` black pixels (a few hundred KB on disk, one
    byte a pixel decoded), written without ever holding the pixels."""
    import struct
    import zlib

    def chunk(kind, data):
        return (struct.pack('>I', len(data)) + kind + data
                + struct.pack('>I', zlib.crc32(kind + data)))

    packer = zlib.compressobj(9)
    row = b'\x00' * (width + 1)  # filter byte + pixels
    compressed = b''.join(packer.compress(row) for _ in range(height)) + packer.flush()
    path.write_bytes(b'\x89PNG\r\n\x1a\n'
                     + chunk(b'IHDR', struct.pack('>IIBBBBB', width, height, 8, 0, 0, 0, 0))
                     + chunk(b'IDAT', compressed) + chunk(b'IEND', b''))


@pytest.mark.slow
def test_a_corpus_of_bad_inputs_fails_item_by_item_in_bounded_memory(weights_root, tmp_path):  # noqa: F811
    good = [('good_0', 'shirt_1', '-'), ('good_0', '-', 'jeans_1'), ('big_0', '-', 'jeans_1'),
            ('long_0', 'shirt_1', '-'), ('wide_0', '-', 'jeans_1')]
    bad = {  # job: (the file its error names, words of the error)
            ('truncated_0', 'shirt_1', '-'): ('persons/truncated_0.jpg', 'not a decodable'),
            ('empty_0', '-', 'jeans_1'): ('persons/empty_0.png', ''),
            ('bomb_0', '-', 'jeans_1'): ('persons/bomb_0.png', 'pixels'),
            ('farpose_0', 'shirt_1', '-'): ('persons/farpose_0_keypoints.json', ''),
            ('negpose_0', '-', 'jeans_1'): ('persons/negpose_0_keypoints.json',
                                            'no present keypoint lies inside'),
            ('notjson_0', '-', 'jeans_1'): ('persons/notjson_0_keypoints.json', ''),
            ('hugejson_0', '-', 'jeans_1'): ('persons/hugejson_0_keypoints.json', ''),
            ('pickled_0', 'shirt_1', '-'): ('persons/pickled_0_keypoints.pkl', 'refuses'),
            ('badparse_0', 'shirt_1', '-'): ('persons/badparse_0_parse.png', 'aspect ratio'),
            ('noshoulders_0', 'shirt_1', '-'): ('persons/noshoulders_0_keypoints.json',
                                                'both shoulders are needed'),
            ('good_0', 'blank_1', '-'): ('men_tshirts/blank_1.png', ''),
            ('good_0', '-', 'nomask_1'): ('men_pants/nomask_1_mask.png', ''),
            ('good_0', '-', 'smallmask_1'): ('men_pants/smallmask_1_mask.png', ''),
            ('good_0', 'twice_1', '-'): ('men_tshirts/twice_1.png', 'several categories'),
            ('good_0', 'missing_1', '-'): ('missing_1.png', "no garment 'missing_1'"),
            ('good_0', 'jeans_1', '-'): ('', 'not an upper garment'),
    }
    source = _input_dir(tmp_path / 'in', good + list(bad))
    persons, garments = source / 'persons', source / 'garments'
    for person in ('good_0', 'farpose_0', 'negpose_0', 'notjson_0', 'hugejson_0', 'badparse_0',
                   'noshoulders_0', 'pickled_0'):
        _person(source, person, (400, 300))
    photo, parse, keypoints = _photo(4000, 3000, seed=1)  # 12 MP: paste-back in pieces
    images.write_png(persons / 'big_0.png', photo)
    parsing.write_parse_png(persons / 'big_0_parse.png', parse)
    keypoint_files.write_everywear_pose(persons / 'big_0_keypoints.json', keypoints, (4000, 3000))
    small = _photo(400, 300, seed=2)
    for name, axis in (('long_0', 0), ('wide_0', 1)):  # sides over OpenCV's warp limit
        photo, parse, keypoints, _ = _long(*small, 36000, axis)
        images.write_png(persons / f'{name}.png', photo)
        parsing.write_parse_png(persons / f'{name}_parse.png', parse)
        keypoint_files.write_everywear_pose(persons / f'{name}_keypoints.json', keypoints,
                                            photo.shape[:2])
    _person(source, 'truncated_0', (400, 300))
    ok, jpeg = cv2.imencode('.jpg', small[0])
    (persons / 'truncated_0.png').unlink()
    (persons / 'truncated_0.jpg').write_bytes(jpeg.tobytes()[:len(jpeg) // 2])
    _person(source, 'empty_0', (400, 300))
    (persons / 'empty_0.png').write_bytes(b'')
    _person(source, 'bomb_0', (400, 300))
    _png_bomb(persons / 'bomb_0.png', 9000, 9000)  # 81 MP, over the 50 MP default
    far = keypoint_files.read_keypoints(str(persons / 'farpose_0_keypoints.json'))
    far[3, 0] = 1e30
    (persons / 'farpose_0_keypoints.json').write_text(json.dumps(
            {'people': [{'pose_keypoints_2d': far.astype(float).reshape(-1).tolist()}]}))
    negative = far.copy()
    negative[:, :2] = -5.0
    keypoint_files.write_everywear_pose(persons / 'negpose_0_keypoints.json', negative,
                                        (400, 300))
    (persons / 'notjson_0_keypoints.json').write_text('{"people": [')
    (persons / 'hugejson_0_keypoints.json').write_text(
            '{"people": [' + ' ' * (keypoint_files.MAX_JSON_BYTES + 10) + ']}')
    (persons / 'pickled_0_keypoints.json').unlink()
    (persons / 'pickled_0_keypoints.pkl').write_bytes(
            b'cos\nsystem\n(S"touch ' + str(tmp_path / 'pwned').encode() + b'"\ntR.')
    parsing.write_parse_png(persons / 'badparse_0_parse.png', np.zeros((100, 100), np.uint8))
    shoulders = keypoint_files.read_keypoints(str(persons / 'noshoulders_0_keypoints.json'))
    shoulders[[keypoint_files.R_SHOULDER, keypoint_files.L_SHOULDER]] = 0
    keypoint_files.write_everywear_pose(persons / 'noshoulders_0_keypoints.json', shoulders,
                                        (400, 300))
    images.write_png(garments / spec.MEN_TSHIRTS / 'blank_1.png',
                     np.full((300, 220, 3), 255, np.uint8))
    jeans = images.read_image(str(garments / spec.MEN_PANTS / 'jeans_1.png'))
    images.write_png(garments / spec.MEN_PANTS / 'nomask_1.png', jeans)
    images.write_png(garments / spec.MEN_PANTS / 'nomask_1_mask.png',
                     np.zeros(jeans.shape[:2], np.uint8))
    images.write_png(garments / spec.MEN_PANTS / 'smallmask_1.png', jeans)
    images.write_png(garments / spec.MEN_PANTS / 'smallmask_1_mask.png',
                     np.full((10, 10), 255, np.uint8))
    shirt = images.read_image(str(garments / spec.MEN_TSHIRTS / 'shirt_1.png'))
    for category in (spec.MEN_TSHIRTS, spec.MEN_LONG):
        images.write_png(garments / category / 'twice_1.png', shirt)

    work = tmp_path / 'ws'
    child = subprocess.run([sys.executable, '-c', _CHILD, str(source), str(work),
                            str(weights_root)], capture_output=True, text=True, timeout=900,
                           cwd=ROOT)
    assert child.returncode == 0, child.stderr[-3000:]
    result = json.loads(child.stdout.strip().splitlines()[-1])
    report = result['report']
    names = {batch.Job(*job).name: job for job in bad}
    assert sorted(report['done']) == sorted(batch.Job(*job).name for job in good), report
    assert set(report['failed']) == set(names), report['failed']
    for name, job in names.items():
        path, words = bad[job]
        problem = report['failed'][name]
        assert path in problem and words in problem, (name, problem)
        assert 'Traceback' not in problem
        assert not (work / 'output' / 'final_images' / f'{name}_final.png').exists()
    assert not (tmp_path / 'pwned').exists()
    assert not _no_temporaries(work)
    final = images.read_image(str(work / 'output' / 'final_images' / 'big_0_-_jeans_1_final.png'))
    assert final.shape == (4000, 3000, 3)
    # Bounded: above the loaded networks, the 12 MP photo's own arrays (36 MB each), not the
    # 800 MB of photo-sized float arrays a whole-photo paste-back took.
    grown = (result['peak'] - result['baseline']) / 2 ** 20
    print(f'peak anonymous RSS {result["peak"] / 2 ** 20:.0f} MB, {grown:.0f} MB above the '
          f'loaded networks')
    assert grown < 600, grown
