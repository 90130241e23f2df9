"""Batch runs: the workspace layout, a bad-input corpus that fails item by item, and a run
killed with SIGKILL that resumes to the same bytes as an uninterrupted one."""

import fcntl
import hashlib
import json
import os
import pickle
import re
import signal
import subprocess
import sys
import time

import cv2
import numpy as np
import pytest
import scipy.io

from everywear_tf import configs
from everywear_tf import errors
from everywear_tf import spec
from everywear_tf import weights
from everywear_tf.data import bundle
from everywear_tf.data import frames
from everywear_tf.data import images
from everywear_tf.data import keypoints as keypoint_files
from everywear_tf.data import parsing
from everywear_tf.data import synthetic
from everywear_tf.export import exporter
from everywear_tf.inference import batch
from everywear_tf.inference import pipeline
from everywear_tf.inference import workspace
from everywear_tf.models import factory
from everywear_tf.serving import config as serving_config
from everywear_tf.serving import dev_server

from tests.data.frames_test import _photo
from tests.models.randomize import randomize

# Servers, subprocesses, exports or training: not in the fast loop (pytest -m 'not slow').
pytestmark = pytest.mark.slow

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope='module')
def weights_root(tmp_path_factory):
    root = tmp_path_factory.mktemp('weights')
    for category in (spec.MEN_TSHIRTS, spec.MEN_PANTS):
        for module in spec.MODULES:
            model = factory.build(configs.get(module, configs.LITE))
            randomize(model, seed=6)
            weights.save(model, root / spec.model_name(module, category))
    return root


def _person(directory, person_id, size, seed=0):
    photo, parse, keypoints = _photo(*size, seed=seed)
    images.write_png(directory / 'persons' / f'{person_id}.png', photo)
    parsing.write_parse_png(directory / 'persons' / f'{person_id}_parse.png', parse)
    keypoint_files.write_everywear_pose(directory / 'persons' / f'{person_id}_keypoints.json',
                                        keypoints, size)
    return photo, parse, keypoints


def _input_dir(root, jobs):
    rng = np.random.default_rng(0)
    top = synthetic.render_top(rng, (200, 60, 40), pattern='checks')
    pants = synthetic.render_pants(rng, (40, 40, 100))
    images.write_png(root / 'garments' / spec.MEN_TSHIRTS / 'shirt_1.png', top.image)
    images.write_png(root / 'garments' / spec.MEN_PANTS / 'jeans_1.png', pants.image)
    images.write_png(root / 'garments' / spec.MEN_PANTS / 'jeans_1_mask.png', pants.mask)
    (root / 'pairs.txt').write_text(''.join(f'{" ".join(job)}\n' for job in jobs))
    return root


def test_workspace_layout(weights_root, tmp_path):
    source = _input_dir(tmp_path / 'in', [('anna_0', 'shirt_1', 'jeans_1'),
                                         ('anna_0', 'shirt_1', '-')])
    photo, parse, _ = _person(source, 'anna_0', (600, 400))
    keypoints = keypoint_files.read_keypoints(str(source / 'persons' / 'anna_0_keypoints.json'))
    work = tmp_path / 'ws'
    report = batch.Batch(str(source), str(work), pipeline.LocalBackend(str(weights_root)),
                         log=lambda m: None).run(batch.read_jobs(source / 'pairs.txt'))
    assert report['failed'] == {} and report['total'] == 2
    assert report['done'] == ['anna_0_shirt_1_jeans_1', 'anna_0_shirt_1_-']
    out = work / 'output'
    assert sorted(os.listdir(out / 'final_images')) == ['anna_0_shirt_1_-_final.png',
                                                        'anna_0_shirt_1_jeans_1_final.png']
    # The top alone on anna, and the top on anna already wearing the jeans: two stems.
    assert sorted(os.listdir(out / 'final_upper_images')) == [
            'anna_0_jeans_1_shirt_1_final.png', 'anna_0_shirt_1_final.png']
    assert os.listdir(out / 'final_lower_images') == ['anna_0_jeans_1_final.png']
    for stem in ('anna_0_shirt_1', 'anna_0_jeans_1_shirt_1', 'anna_0_jeans_1'):
        for suffix in ('_bg', '_fg', '_final', '_mask', '_sel_mask', '_tps', '_tps_mask'):
            assert (out / 'composed_images' / f'{stem}{suffix}.png').exists(), stem + suffix
        for suffix in ('.png', '_mask.png', '_mask.mat', '_gmm.png', '_gmmask.png'):
            assert (work / 'stage' / f'{stem}{suffix}').exists(), stem + suffix
        before = bundle.read_bundle(out / 'composed_images' / f'{stem}_0_pkl.pkl')
        after = bundle.read_bundle(out / 'composed_images' / f'{stem}_1_pkl.pkl')
        np.testing.assert_array_equal(before['transform'], after['transform'])
        assert before['frame'] == after['frame'] == ('body' if stem == 'anna_0_jeans_1'
                                                     else 'upper')
        selection = images.read_mask(str(out / 'composed_images' / f'{stem}_sel_mask.png')) > 0
        np.testing.assert_array_equal(after['image'][~selection], before['image'][~selection])
        tryon = images.read_image(str(out / 'composed_images' / f'{stem}_fg.png'))
        np.testing.assert_array_equal(after['image'][selection], tryon[selection])
        edm_mask = images.read_mask(str(work / 'stage' / f'{stem}_mask.png'))
        mat = scipy.io.loadmat(str(work / 'stage' / f'{stem}_mask.mat'))['mask']
        assert mat.dtype == np.float32 and mat.shape == spec.FRAME_SHAPE
        np.testing.assert_allclose(mat * 255, edm_mask, atol=1e-3)
    # input/ holds frames of the person's own photo, whichever job wrote them.
    assert sorted(os.listdir(work / 'input' / 'body_images')) == ['anna_0.png']
    np.testing.assert_array_equal(images.read_image(str(work / 'input' / 'body_images' /
                                                        'anna_0.png')), photo)
    upper = frames.upper_frame(photo, parse, keypoints)
    np.testing.assert_array_equal(images.read_image(str(work / 'input' / 'upper_images' /
                                                        'anna_0.png')), upper.image)
    stored = bundle.read_bundle(work / 'input' / 'upper_pickle' / 'anna_0.pkl')
    np.testing.assert_array_equal(stored['transform'], upper.transform)
    for directory in ('body_resized', 'body_pose', 'body_segment', 'body_pickle',
                      'upper_pose', 'upper_segment'):
        assert len(os.listdir(work / 'input' / directory)) == 1, directory
    final = images.read_image(str(out / 'final_images' / 'anna_0_shirt_1_jeans_1_final.png'))
    assert final.shape == (600, 400, 3)


def test_parallel_jobs_through_the_dev_server_equal_a_local_run(weights_root, tmp_path):
    jobs = [(f'p{i}_0', 'shirt_1' if i != 1 else '-', 'jeans_1' if i % 2 else '-')
            for i in range(4)]
    source = _input_dir(tmp_path / 'in', jobs)
    for i in range(4):
        _person(source, f'p{i}_0', (380 + 40 * i, 300 + 30 * i), seed=10 + i)
    local = batch.Batch(str(source), str(tmp_path / 'local'),
                        pipeline.LocalBackend(str(weights_root)), log=lambda m: None)
    assert local.run(batch.read_jobs(source / 'pairs.txt'))['failed'] == {}
    base = tmp_path / 'exported'
    names = [spec.model_name(module, category) for category in (spec.MEN_TSHIRTS, spec.MEN_PANTS)
             for module in spec.MODULES]
    for name in names:
        exporter.export(weights.load(weights_root / name), base, name)
    server = dev_server.DevServer(serving_config.serving_config(str(base), names),
                                  file_system_poll_seconds=0).start()
    lines = []
    try:
        remote = batch.Batch(str(source), str(tmp_path / 'remote'),
                             pipeline.ServerBackend(f'127.0.0.1:{server.grpc_port}'),
                             log=lines.append, workers=4)
        report = remote.run(batch.read_jobs(source / 'pairs.txt'))
    finally:
        server.stop()
    assert report['failed'] == {} and len(report['done']) == 4
    # Not a line per job: every Progress.EVERY_JOBS jobs or EVERY_SECONDS, and the last.
    assert 1 <= len(lines) <= 4 and lines[-1].startswith('[' + '#' * batch.Progress.WIDTH +
                                                          '] 4/4 | ')
    assert _digest(tmp_path / 'remote') == _digest(tmp_path / 'local')


def test_bad_inputs_fail_one_by_one(weights_root, tmp_path):
    jobs = [('good_0', 'shirt_1', '-'), ('corrupt_0', 'shirt_1', '-'),
            ('alpha_0', 'shirt_1', '-'), ('grey_0', '-', 'jeans_1'),
            ('huge_0', '-', 'jeans_1'), ('nopose_0', 'shirt_1', '-'),
            ('outside_0', '-', 'jeans_1'), ('noshoulders_0', 'shirt_1', '-'),
            ('badparse_0', 'shirt_1', '-'), ('good_0', 'dress_1', '-'),
            ('pickled_0', 'shirt_1', '-')]
    source = _input_dir(tmp_path / 'in', jobs)
    persons = source / 'persons'
    _person(source, 'good_0', (512, 384))
    _person(source, 'corrupt_0', (512, 384))
    data = (persons / 'corrupt_0.png').read_bytes()
    (persons / 'corrupt_0.png').unlink()
    (persons / 'corrupt_0.jpg').write_bytes(b'\xff\xd8\xff\xe0' + data[100:400])
    photo, _, _ = _person(source, 'alpha_0', (512, 384))
    rgba = cv2.cvtColor(photo, cv2.COLOR_RGB2BGRA)
    cv2.imwrite(str(persons / 'alpha_0.png'), rgba)
    photo, _, _ = _person(source, 'grey_0', (512, 384))
    cv2.imwrite(str(persons / 'grey_0.png'), cv2.cvtColor(photo, cv2.COLOR_RGB2GRAY))
    # A 7000×7000 photo (49 MP, under the 50 MP default limit): the drawn person scaled up
    # (flat colours compress well).
    small, small_parse, small_keypoints = _photo(1000, 1000, seed=2)
    images.write_png(persons / 'huge_0.png', cv2.resize(small, (7000, 7000),
                                                        interpolation=cv2.INTER_NEAREST))
    parsing.write_parse_png(persons / 'huge_0_parse.png', cv2.resize(
            small_parse, (7000, 7000), interpolation=cv2.INTER_NEAREST))
    scaled = small_keypoints.copy()
    scaled[:, :2] *= 7
    keypoint_files.write_everywear_pose(persons / 'huge_0_keypoints.json', scaled, (7000, 7000))
    _person(source, 'nopose_0', (512, 384))
    (persons / 'nopose_0_keypoints.json').unlink()
    photo, parse, keypoints = _person(source, 'outside_0', (512, 384))
    keypoints[0, :2] = (-50, 700)  # a nose outside the photo (within half its height)
    keypoint_files.write_everywear_pose(persons / 'outside_0_keypoints.json', keypoints,
                                        (512, 384))
    photo, parse, keypoints = _person(source, 'noshoulders_0', (512, 384))
    keypoints[[2, 5]] = 0
    keypoint_files.write_everywear_pose(persons / 'noshoulders_0_keypoints.json', keypoints,
                                        (512, 384))
    _person(source, 'badparse_0', (512, 384))
    parsing.write_parse_png(persons / 'badparse_0_parse.png', np.zeros((100, 100), np.uint8))
    images.write_png(source / 'garments' / 'women_dresses' / 'dress_1.png',
                     np.full((256, 192, 3), 200, np.uint8))
    _person(source, 'pickled_0', (512, 384))
    (persons / 'pickled_0_keypoints.json').unlink()

    class Payload:
        def __reduce__(self):
            return os.mkdir, (str(tmp_path / 'pwned'),)

    with open(persons / 'pickled_0_keypoints.pkl', 'wb') as f:
        pickle.dump({'candidate': Payload(), 'subset': np.zeros((1, 20))}, f)

    report = batch.Batch(str(source), str(tmp_path / 'ws'),
                         pipeline.LocalBackend(str(weights_root)),
                         log=lambda m: None).run(batch.read_jobs(source / 'pairs.txt'))
    failed = report['failed']
    expected = {'corrupt_0_shirt_1_-': 'not a decodable image',
                'noshoulders_0_shirt_1_-': 'both shoulders are needed',
                'badparse_0_shirt_1_-': 'different aspect ratio',
                'good_0_dress_1_-': "no garment 'dress_1'",
                'pickled_0_shirt_1_-': 'refuses to load'}
    assert set(failed) == set(expected), failed
    for name, problem in expected.items():
        assert problem in failed[name], (name, failed[name])
    assert not (tmp_path / 'pwned').exists()
    for name in ('good_0_shirt_1_-', 'alpha_0_shirt_1_-', 'grey_0_-_jeans_1',
                 'huge_0_-_jeans_1', 'outside_0_-_jeans_1', 'nopose_0_shirt_1_-'):
        assert name in report['done']
    # A person without a pose file gets the front end's, kept in the workspace as OpenPose JSON.
    estimated = tmp_path / 'ws' / 'input' / 'body_pose' / 'nopose_0_keypoints.json'
    truth = keypoint_files.read_keypoints(str(source / 'persons' / 'good_0_keypoints.json'))
    found = keypoint_files.read_keypoints(str(estimated))
    seen = truth[:, 2] > 0
    assert np.median(np.linalg.norm(found[seen, :2] - truth[seen, :2], axis=1)) < 15
    assert (tmp_path / 'ws' / 'input' / 'body_segment' / 'nopose_0_parse.png').exists()
    saved = json.loads((tmp_path / 'ws' / 'output' / 'report.json').read_text())
    assert saved['failed'] == failed


def _digest(directory):
    h = hashlib.sha256()
    for root, _, files in sorted(os.walk(directory)):
        for name in sorted(files):
            if name in ('report.json', workspace.JOURNAL):  # bookkeeping, in the jobs' order
                continue
            path = os.path.join(root, name)
            h.update(os.path.relpath(path, directory).encode())
            with open(path, 'rb') as f:
                h.update(f.read())
    return h.hexdigest()


def _finished(directory):
    return [name for name in os.listdir(directory) if name.endswith('_final.png')]


def test_a_killed_run_resumes_to_the_same_bytes(weights_root, tmp_path):
    jobs = [(f'p{i}_0', 'shirt_1', 'jeans_1' if i % 2 else '-') for i in range(5)]
    source = _input_dir(tmp_path / 'in', jobs)
    for i in range(5):
        _person(source, f'p{i}_0', (420 + 20 * i, 320), seed=i)
    command = [sys.executable, '-m', 'everywear_tf.cli.batch', f'--input_dir={source}',
               f'--weights_root={weights_root}']
    # The uninterrupted run and the one to kill are independent: started together.
    straight = subprocess.Popen(command + [f'--workspace={tmp_path / "straight"}'], cwd=ROOT,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    killed = subprocess.Popen(command + [f'--workspace={tmp_path / "killed"}'], cwd=ROOT,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    finals = tmp_path / 'killed' / 'output' / 'final_images'
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if finals.exists() and len(_finished(finals)) >= 2:
            break
        time.sleep(0.05)
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    _, straight_stderr = straight.communicate(timeout=600)
    assert straight.returncode == 0, straight_stderr
    # Done: a final image with its journal record (temporaries of the killed write do not count;
    # an image whose record the kill cut off is redone).
    journal = tmp_path / 'killed' / 'output' / workspace.JOURNAL
    recorded = {name for name, problem in batch.Journal.read(str(journal)).items()
                if problem is None}
    done_before = len(recorded & {name[:-len('_final.png')] for name in _finished(finals)})
    assert 1 <= done_before < 5
    resumed = subprocess.run(command + [f'--workspace={tmp_path / "killed"}'],
                             capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert resumed.returncode == 0, resumed.stderr
    assert f'{done_before} of 5 jobs already done' in resumed.stderr
    assert _digest(tmp_path / 'killed') == _digest(tmp_path / 'straight')  # temporaries included


def test_sigterm_stops_the_run_with_the_report_written(weights_root, tmp_path):
    jobs = [(f'p{i}_0', '-', 'jeans_1') for i in range(6)]
    source = _input_dir(tmp_path / 'in', jobs)
    for i in range(6):
        _person(source, f'p{i}_0', (400, 300), seed=i)
    work = tmp_path / 'ws'
    child = subprocess.Popen([sys.executable, '-m', 'everywear_tf.cli.batch',
                              f'--input_dir={source}', f'--weights_root={weights_root}',
                              f'--workspace={work}'], cwd=ROOT, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    journal = work / 'output' / workspace.JOURNAL
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and not (journal.exists() and journal.read_bytes()):
        time.sleep(0.05)
    child.send_signal(signal.SIGTERM)
    _, stderr = child.communicate(timeout=300)
    assert child.returncode == 128 + signal.SIGTERM, stderr
    assert 'everywear-batch: terminated (SIGTERM); rerun to go on' in stderr
    report = json.loads((work / 'output' / 'report.json').read_text())
    done = [name for name, problem in batch.Journal.read(str(journal)).items() if problem is None]
    assert 1 <= len(report['done']) < 6 and sorted(report['done']) == sorted(done)
    assert sorted(_finished(work / 'output' / 'final_images')) == sorted(
            f'{name}_final.png' for name in done)


def test_one_run_per_workspace_and_stale_temporaries_go(weights_root, tmp_path):
    source = _input_dir(tmp_path / 'in', [('p_0', '-', 'jeans_1')])
    _person(source, 'p_0', (400, 300))
    work = tmp_path / 'ws'
    stale = work / 'stage' / '.p_0_jeans_1.png.abc123.tmp'
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b'half')
    run = batch.Batch(str(source), str(work), pipeline.LocalBackend(str(weights_root)),
                      log=lambda m: None)
    with open(work / workspace.LOCK, 'a') as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        with pytest.raises(errors.EverywearError, match='another batch run is using'):
            run.run(batch.read_jobs(source / 'pairs.txt'))
    assert stale.exists()
    assert run.run(batch.read_jobs(source / 'pairs.txt'))['failed'] == {}
    assert not stale.exists()


def test_without_a_pairs_file_every_person_gets_every_garment(tmp_path):
    source = _input_dir(tmp_path / 'in', [])
    (source / 'pairs.txt').unlink()
    for person in ('bo_0', 'al_0'):
        (source / 'persons').mkdir(parents=True, exist_ok=True)
        (source / 'persons' / f'{person}.jpg').write_bytes(b'')
    (source / 'persons' / 'al_0_parse.png').write_bytes(b'')  # not a person
    assert batch.discover_jobs(str(source)) == [
            batch.Job('al_0', 'shirt_1', '-'), batch.Job('al_0', '-', 'jeans_1'),
            batch.Job('bo_0', 'shirt_1', '-'), batch.Job('bo_0', '-', 'jeans_1')]
    with pytest.raises(errors.InputNotFoundError, match='no person photos'):
        batch.discover_jobs(str(tmp_path / 'empty'))


def test_jobs_files_are_checked_line_by_line(tmp_path):
    pairs = tmp_path / 'pairs.txt'
    pairs.write_text('# person top bottom\nanna_0 shirt_1 -\n\nbo_0 - jeans_1\n')
    jobs = batch.read_jobs(pairs)
    assert jobs == [batch.Job('anna_0', 'shirt_1', '-'), batch.Job('bo_0', '-', 'jeans_1')]
    assert jobs[1].source == f'{pairs}, line 4'
    for line, problem in (('anna_0 shirt_1', 'line 1: expected'), ('anna_0 - -', 'expected'),
                          ('anna_0 shirt_1 -\nanna_0  shirt_1  -',
                           'line 2: the same job as line 1'),
                          ('../../evil_0 shirt_1 -', "'../../evil_0' is not an id"),
                          ('anna_0 a/b_1 -', "'a/b_1' is not an id"),
                          ('.hidden_0 - jeans_1', 'is not an id')):
        pairs.write_text(line + '\n')
        with pytest.raises(errors.DatasetError, match=re.escape(problem)) as caught:
            batch.read_jobs(pairs)
        assert str(pairs) in str(caught.value)
    with pytest.raises(errors.InputNotFoundError, match='no such file'):
        batch.read_jobs(tmp_path / 'missing.txt')
