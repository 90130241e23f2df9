"""everywear-tryon as users run it: the bundled demo with the demo weights, and clear errors
that leave nothing behind."""

import os
import subprocess
import sys

import numpy as np
import pytest

from everywear_tf import demo
from everywear_tf.data import images
from everywear_tf.data import keypoints as keypoint_files
from everywear_tf.data import lip
from everywear_tf.data import parsing

from tests import early

# Servers, subprocesses, exports or training: not in the fast loop (pytest -m 'not slow').
pytestmark = pytest.mark.slow

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _run(*flags):
    return subprocess.run([sys.executable, '-m', 'everywear_tf.cli.tryon', *flags],
                          capture_output=True, text=True, timeout=300, cwd=ROOT)


def _early(test, *flags, key=None, prepare=None):
    """The command ``_run(*flags)`` runs, started as the session starts (tests/early.py)."""
    return early.Command(test, [sys.executable, '-m', 'everywear_tf.cli.tryon', *flags],
                         cwd=ROOT, key=key, prepare=prepare)


# The drawn truth as the pose and parse, so the untouched region is known exactly.
_DEMO = _early('test_demo_dresses_the_photo_and_leaves_the_rest', '--demo',
               f'--pose={demo.PHOTO_POSE}', f'--parse={demo.PHOTO_PARSE}',
               '--output={directory}/out/tryon.png')


def test_demo_dresses_the_photo_and_leaves_the_rest():
    done = _DEMO.result(timeout=300)
    output = _DEMO.directory / 'out' / 'tryon.png'
    assert done.returncode == 0, done.stderr
    assert f'wrote {output}' in done.stdout
    photo = images.read_image(demo.PHOTO)
    final = images.read_image(str(output))
    assert final.shape == photo.shape == (720, 720, 3)
    parse = parsing.read_parse(demo.PHOTO_PARSE)
    # Neither garment region touches the face and hair, nor the background far from the body.
    untouched = np.isin(parse, (lip.FACE, lip.HAIR))
    untouched[:, :40] = True
    np.testing.assert_array_equal(final[untouched], photo[untouched])
    for labels in ((lip.UPPER_CLOTHES,), (lip.PANTS,)):  # both garments changed
        region = np.isin(parse, labels)
        assert np.abs(final[region].astype(int) - photo[region]).mean() > 20


def _corrupt_photo(directory):
    (directory / 'photo.jpg').write_bytes(b'\xff\xd8\xff\xe0 not a jpeg')


_BAD_CASES = [
        (['--pose', '{directory}/missing.json'], 'missing.json: no such file'),
        (['--person', '{directory}/photo.jpg'], 'photo.jpg: not a decodable image'),
        (['--max_photo_pixels', '100000'], 'above the limit of 100000 pixels'),
]


def _bad_flags(overrides):
    flags = {'--person': demo.PHOTO, '--pose': demo.PHOTO_POSE, '--parse': demo.PHOTO_PARSE}
    flags.update(dict(zip(overrides[::2], overrides[1::2])))
    return [*(f'{k}={v}' for k, v in flags.items()), f'--top={demo.TSHIRT}',
            '--output={directory}/tryon.png']


# Each case in a directory of its own holding the corrupt photo, as the test's tmp_path did.
_BAD = [_early('test_bad_inputs_name_the_file_and_write_nothing', *_bad_flags(overrides),
               key=str(i), prepare=_corrupt_photo) for i, (overrides, _) in enumerate(_BAD_CASES)]
_USAGE = _early('test_bad_inputs_name_the_file_and_write_nothing', f'--person={demo.PHOTO}',
                f'--pose={demo.PHOTO_POSE}', f'--parse={demo.PHOTO_PARSE}',
                '--output={directory}/tryon.png', key='usage')
_JPEG = _early('test_bad_inputs_name_the_file_and_write_nothing', '--demo',
               '--output={directory}/tryon.jpg', key='jpeg')


def test_bad_inputs_name_the_file_and_write_nothing():
    for command, (_, problem) in zip(_BAD, _BAD_CASES):
        done = command.result(timeout=300)
        output = command.directory / 'tryon.png'
        assert done.returncode == 1, done.stderr
        assert 'everywear-tryon: error: ' in done.stderr and problem in done.stderr, done.stderr
        assert not os.listdir(command.directory) or not output.exists()
        assert not output.exists()
    usage = _USAGE.result(timeout=300)
    assert usage.returncode == 1 and 'pass --top and/or --bottom' in usage.stderr
    jpeg = _JPEG.result(timeout=300)
    assert jpeg.returncode == 1 and '--output must name a .png file' in jpeg.stderr
    assert not (_USAGE.directory / 'tryon.png').exists()
    assert not (_JPEG.directory / 'tryon.png').exists()
    assert not (_JPEG.directory / 'tryon.jpg').exists()


_FROM_PHOTO = _early('test_the_demo_from_the_photo_alone_saves_what_it_estimated', '--demo',
                     '--output={directory}/tryon.png', '--save_pose={directory}/me.json',
                     '--save_parse={directory}/me.png')


def test_the_demo_from_the_photo_alone_saves_what_it_estimated(tmp_path):
    done = _FROM_PHOTO.result(timeout=300)
    directory = _FROM_PHOTO.directory
    output, pose, parse = directory / 'tryon.png', directory / 'me.json', directory / 'me.png'
    assert done.returncode == 0, done.stderr
    photo = images.read_image(demo.PHOTO)
    assert images.read_image(str(output)).shape == photo.shape
    estimated = keypoint_files.read_keypoints(str(pose))
    truth = keypoint_files.read_keypoints(demo.PHOTO_POSE)
    seen = truth[:, 2] > 0
    assert np.median(np.linalg.norm(estimated[seen, :2] - truth[seen, :2], axis=1)) < 15
    labels = parsing.read_parse(str(parse), image_size=photo.shape[:2])
    true_labels = parsing.read_parse(demo.PHOTO_PARSE)
    person, true_person = labels > 0, true_labels > 0
    assert (person & true_person).sum() / (person | true_person).sum() > 0.95
    # The saved files are what a user corrects and passes back: the same try-on again, but for
    # the few pixels the pose's rounding to 1/1000 px moves in the crop's resampling.
    again = _run('--demo', f'--output={tmp_path / "again.png"}', f'--pose={pose}',
                 f'--parse={parse}')
    assert again.returncode == 0, again.stderr
    difference = np.abs(images.read_image(str(tmp_path / 'again.png')).astype(int)
                        - images.read_image(str(output)))
    assert (difference > 0).mean() < 1e-3 and difference.max() <= 8


def test_output_weights_and_server_problems_stop_it_before_any_work(tmp_path):
    """Issue 15 (items 8, 11): each a clear error naming the path or the server, checked before
    a model is loaded (the unreachable server of the first cases is never reached), nothing
    written. The other kinds of bad output path: tests/cli/app_test.py."""
    regular = tmp_path / 'notes.txt'
    regular.write_text('x')
    common = [f'--person={demo.PHOTO}', f'--pose={demo.PHOTO_POSE}',
              f'--parse={demo.PHOTO_PARSE}', f'--top={demo.TSHIRT}']
    output = tmp_path / 'tryon.png'
    error = 'everywear-tryon: error: '
    cases = [
            ([f'--output={regular}/tryon.png', '--server=127.0.0.1:1'],
             f'{error}{regular}/tryon.png: {regular} is a file, not a directory'),
            ([f'--output={output}', f'--save_pose={regular}/me.json', '--server=127.0.0.1:1'],
             f'{error}{regular}/me.json: '),
            ([f'--output={output}', '--server=127.0.0.1:1'],
             f'{error}127.0.0.1:1: no model server answers there (UNAVAILABLE'),
            ([f'--output={output}', f'--weights_root={tmp_path / "nowhere"}'],
             f'{error}{tmp_path / "nowhere"}: no such directory (the weights root'),
            ([f'--output={output}', '--model_label=canary'], 'pass --server or --saved_models'),
    ]
    # The runs are independent: started together, they share the start-up time.
    running = [subprocess.Popen([sys.executable, '-m', 'everywear_tf.cli.tryon', *common, *flags],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                cwd=ROOT) for flags, _ in cases]
    for process, (_, problem) in zip(running, cases):
        _, stderr = process.communicate(timeout=300)
        assert process.returncode == 1, stderr
        assert problem in stderr and 'Traceback' not in stderr, stderr
    assert os.listdir(tmp_path) == ['notes.txt']
