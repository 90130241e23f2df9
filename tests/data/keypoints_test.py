"""Every pose format on the committed fixtures, each malformed file's typed error, round trips."""

import json
import os

import numpy as np
import pytest
import scipy.io

from everywear_tf import errors
from everywear_tf import spec
from everywear_tf.data import keypoints
from everywear_tf.data import safe_pickle
from everywear_tf.data import synthetic

from tests.data.fixtures import path
from tests.testdata import make_fixtures


def _expected():
    """The fixtures' keypoints, recomputed: the drawn person's, point 3 missing, 3 decimals."""
    person = synthetic.render_person(np.random.default_rng(make_fixtures.SEED), sleeve=0.45,
                                     pattern='stripes')
    points = person.keypoints.astype(np.float64)
    points[3] = 0.0
    return np.round(points, 3).astype(np.float32)


EXPECTED = _expected()


def test_expected_values_match_the_stored_copy():
    np.testing.assert_array_equal(np.load(path('pose_expected.npy')), EXPECTED)
    assert np.all(EXPECTED[np.arange(18) != 3, 2] > 0)


@pytest.mark.parametrize('name', ['pose_coco18.json', 'pose_legacy.json',
                                  'pose_everywear.json'])
def test_coco18_files(name):
    points = keypoints.read_keypoints(path(name))
    assert points.dtype == np.float32 and points.shape == (18, 3)
    np.testing.assert_allclose(points, EXPECTED, rtol=0, atol=1e-4)
    assert points[3].tolist() == [0.0, 0.0, 0.0]  # missing stays missing


def test_openpose_reader_directly():
    np.testing.assert_allclose(keypoints.read_openpose_json(path('pose_coco18.json')), EXPECTED,
                               rtol=0, atol=1e-4)


def test_body25_picks_the_most_confident_person_and_maps_to_coco18():
    points = keypoints.read_keypoints(path('pose_body25_two_people.json'))
    np.testing.assert_allclose(points, EXPECTED, rtol=0, atol=1e-4)  # MidHip and feet dropped


def test_body25_mapping_point_by_point(tmp_path):
    body25 = [[float(k), 100.0 + k, 0.5] for k in range(25)]
    target = tmp_path / 'b25.json'
    target.write_text(json.dumps({'people': [{'pose_keypoints_2d': sum(body25, [])}]}))
    points = keypoints.read_keypoints(target)
    # COCO-18: nose, neck, RSho, RElb, RWri, LSho, LElb, LWri | RHip .. LEar = BODY_25 9..18.
    assert points[:, 0].tolist() == [0, 1, 2, 3, 4, 5, 6, 7, 9, 10, 11, 12, 13, 14, 15, 16, 17,
                                     18]
    np.testing.assert_array_equal(points[:, 1], points[:, 0] + 100)


def test_several_people_ties_and_confidences(tmp_path):
    one = np.tile([10.0, 20.0, 0.5], 18)
    two = np.tile([30.0, 40.0, 0.5], 18)
    target = tmp_path / 'p.json'
    target.write_text(json.dumps({'people': [{'pose_keypoints_2d': one.tolist()},
                                             {'pose_keypoints_2d': two.tolist()}]}))
    assert keypoints.read_keypoints(target)[0].tolist() == [10, 20, 0.5]  # a tie: the first
    two[2::3] = 0.6
    target.write_text(json.dumps({'people': [{'pose_keypoints_2d': one.tolist()},
                                             {'pose_keypoints_2d': two.tolist()}]}))
    assert keypoints.read_keypoints(target)[0].tolist() == pytest.approx([30, 40, 0.6])
    # Negative or zero confidence: missing, coordinates zeroed.
    one[2] = -0.1
    one[5] = 0.0
    target.write_text(json.dumps({'people': [{'pose_keypoints': one.tolist()}]}))
    points = keypoints.read_keypoints(target)
    assert points[0].tolist() == [0, 0, 0] and points[1].tolist() == [0, 0, 0]


def test_viton_mat_and_python2_pickle_take_the_best_person():
    present = EXPECTED[:, 2] > 0
    for name in ('viton_pose.mat', 'viton_pose.pkl'):
        points = keypoints.read_keypoints(path(name))
        assert points.dtype == np.float32 and points.shape == (18, 3)
        np.testing.assert_allclose(points[present, :2], EXPECTED[present, :2], rtol=0, atol=1e-3)
        np.testing.assert_allclose(points[present, 2], 0.9, rtol=1e-6)
        assert points[3].tolist() == [0.0, 0.0, 0.0]
    np.testing.assert_array_equal(keypoints.read_viton_pose_mat(path('viton_pose.mat')),
                                  keypoints.read_viton_pose_pickle(path('viton_pose.pkl')))


def test_viton_first_person_is_vitons_own_rule():
    """VITON's extract_pose_keypoints reads subset[0]: here the weak spurious detection."""
    points = keypoints.read_viton_pose_mat(path('viton_pose.mat'), person=keypoints.FIRST)
    np.testing.assert_allclose(points[:4], [[10, 20, 0.5], [12, 30, 0.5], [8, 30, 0.5],
                                            [16, 30, 0.5]])
    assert not points[4:].any()


def _write_mat(tmp_path, **arrays):
    target = tmp_path / 'pose.mat'
    scipy.io.savemat(target, arrays)
    return target


@pytest.mark.parametrize('arrays,problem', [
        ({'candidate': np.zeros((2, 4))}, 'needs "candidate" and "subset"'),
        ({'candidate': np.zeros((0, 4)), 'subset': np.zeros((0, 20))}, 'no person detected'),
        ({'candidate': np.zeros((2, 4)), 'subset': np.zeros((1, 7))}, 'must be [people, 20]'),
        ({'candidate': np.zeros((2, 4)), 'subset': np.full((1, 20), 5.0)},
         'subset[0, 0] = 5 is not an index into the 2 candidates'),
        ({'candidate': np.full((2, 4), np.nan), 'subset': np.zeros((1, 20))}, 'non-finite'),
        ({'candidate': np.array(['ab', 'cd']), 'subset': np.zeros((1, 20))}, 'numeric array'),
])
def test_bad_viton_poses(tmp_path, arrays, problem):
    target = _write_mat(tmp_path, **arrays)
    with pytest.raises(errors.KeypointsError) as raised:
        keypoints.read_keypoints(target)
    assert str(raised.value).startswith(str(target) + ': ')
    assert problem in str(raised.value)


def test_viton_pose_table_pickles(tmp_path):
    pose = safe_pickle.load(path('viton_pose.pkl'), encoding='latin1')
    target = tmp_path / 'pose.pkl'
    safe_pickle.dump(target, {'000001_0': pose, '000002_0': pose})
    points = keypoints.read_viton_pose_pickle(target, key='000002_0')
    np.testing.assert_array_equal(points, keypoints.read_keypoints(path('viton_pose.pkl')))
    with pytest.raises(errors.KeypointsError, match='pass key=<image id>'):
        keypoints.read_viton_pose_pickle(target)
    with pytest.raises(errors.KeypointsError, match="no entry '000003_0'"):
        keypoints.read_viton_pose_pickle(target, key='000003_0')


def test_a_pickle_with_code_is_refused_as_a_pose():
    with pytest.raises(errors.UnsafePickleError, match='refuses to load'):
        keypoints.read_keypoints(path('malicious.pkl'))


@pytest.mark.parametrize('name,problem', [
        ('pose_truncated.json', 'not valid JSON'),
        ('pose_wrong_count.json', 'expected 54 (COCO-18) or 75 (BODY_25) values, got 51'),
        ('pose_nan.json', 'people[0].pose_keypoints_2d[0] is nan, a non-finite value'),
        ('pose_no_people.json', 'no person detected ("people" is empty)'),
        ('pose_non_numeric.json', "people[0].pose_keypoints_2d[5] is '12.5', not a number"),
])
def test_malformed_fixtures_name_the_file_and_problem(name, problem):
    with pytest.raises(errors.KeypointsError) as raised:
        keypoints.read_keypoints(path(name))
    assert raised.value.path == path(name)
    assert str(raised.value).startswith(path(name) + ': ')
    assert problem in str(raised.value)


@pytest.mark.parametrize('content,problem', [
        (b'{"version": 1.3}', 'no "people" list'),
        (b'[1, 2, 3]', 'no "people" list'),
        (b'{"people": {"a": 1}}', '"people" must be a list'),
        (b'{"people": [7]}', 'people[0] is not an object'),
        (b'{"people": [{"face_keypoints_2d": []}]}', 'neither "pose_keypoints_2d" nor'),
        (b'{"people": [{"pose_keypoints_2d": 5}]}', 'must be a list of numbers'),
        (b'{"people": [{"pose_keypoints_2d": []}]}', 'got 0'),
        (b'{"people": [{"pose_keypoints_2d": [' + b'1, ' * 53 + b'Infinity]}]}', 'inf'),
        (b'{"people": [{"pose_keypoints_2d": [' + b'1, ' * 53 + b'true]}]}', 'not a number'),
        (b'{"people": [{"pose_keypoints_2d": [' + b'1, ' * 53 + b'1e999]}]}', 'non-finite'),
        (b'{"people": [{"pose_keypoints_2d": [' + b'1, ' * 53 + b'1e300]}]}', 'float32'),
        (b'\xff\xfe{}', 'not UTF-8'),
        (b'', 'not valid JSON'),
])
def test_malformed_openpose_json(tmp_path, content, problem):
    target = tmp_path / 'bad.json'
    target.write_bytes(content)
    with pytest.raises(errors.KeypointsError) as raised:
        keypoints.read_keypoints(target)
    assert str(raised.value).startswith(str(target) + ': ')
    assert problem in str(raised.value)


def test_missing_file_unknown_extension_and_bad_mat(tmp_path):
    for reader in (keypoints.read_keypoints, keypoints.read_openpose_json,
                   keypoints.read_viton_pose_mat, keypoints.read_viton_pose_pickle,
                   keypoints.read_everywear_pose):
        with pytest.raises(errors.InputNotFoundError) as raised:
            reader(tmp_path / 'nope.json')
        assert str(raised.value) == f'{tmp_path / "nope.json"}: no such file'
    other = tmp_path / 'pose.txt'
    other.write_text('1 2 3')
    with pytest.raises(errors.KeypointsError, match='unknown pose format'):
        keypoints.read_keypoints(other)
    garbage = tmp_path / 'garbage.mat'
    garbage.write_bytes(b'MATLAB 5.0 MAT-file' + b'\x00' * 30)
    with pytest.raises(errors.KeypointsError, match='not a readable .mat file') as raised:
        keypoints.read_keypoints(garbage)
    assert raised.value.path == str(garbage)


def test_everywear_pose_round_trip(tmp_path):
    target = tmp_path / 'deep' / 'p.json'
    noisy = EXPECTED.copy()
    noisy[5] = (12.3456, 7.0001, 0.5)
    noisy[6] = (40.0, 50.0, -1.0)  # missing: written as zeros
    keypoints.write_everywear_pose(target, noisy, (256, 192))
    document = json.loads(target.read_text())
    assert (document['format'], document['version'], document['order'],
            document['image_size']) == ('everywear-pose', 1, 'coco18', [256, 192])
    assert document['keypoints'][5] == [12.346, 7.0, 0.5]
    assert document['keypoints'][6] == [0, 0, 0]
    points, size = keypoints.read_everywear_pose(target)
    assert size == (256, 192) and points.dtype == np.float32
    np.testing.assert_allclose(points[5], [12.346, 7.0, 0.5], rtol=1e-6)
    assert points[6].tolist() == [0, 0, 0]
    np.testing.assert_array_equal(keypoints.read_keypoints(target), points)
    assert os.listdir(target.parent) == ['p.json']


@pytest.mark.parametrize('change,problem', [
        (lambda d: d.update(version=7), 'unsupported version 7'),
        (lambda d: d.update(format='other'), '"format" is \'other\''),
        (lambda d: d.update(order='body25'), '"order" is \'body25\''),
        (lambda d: d.update(image_size=[256]), '"image_size" must be [height, width]'),
        (lambda d: d.update(image_size=[256, 0]), '"image_size" must be [height, width]'),
        (lambda d: d['keypoints'].pop(), '"keypoints" must be 18'),
        (lambda d: d['keypoints'][2].__setitem__(0, None), 'keypoints[6] is None'),
])
def test_everywear_pose_validation(tmp_path, change, problem):
    document = json.loads(open(path('pose_everywear.json')).read())
    change(document)
    target = tmp_path / 'p.json'
    target.write_text(json.dumps(document))
    for reader in (keypoints.read_keypoints, keypoints.read_everywear_pose):
        with pytest.raises(errors.KeypointsError) as raised:
            reader(target)
        assert str(raised.value).startswith(str(target) + ': ')
        assert problem in str(raised.value)


@pytest.mark.parametrize('points,size,problem', [
        (np.zeros((17, 3)), (256, 192), 'expected numbers [18,3]'),
        (np.full((18, 3), np.nan), (256, 192), 'non-finite'),
        (np.zeros((18, 3)), (256,), 'image_size'),
        (np.zeros((18, 3)), (256.5, 192), 'image_size'),
])
def test_everywear_pose_writer_checks_first(tmp_path, points, size, problem):
    target = tmp_path / 'p.json'
    target.write_text('old')
    with pytest.raises(errors.KeypointsError) as raised:
        keypoints.write_everywear_pose(target, points, size)
    assert problem in str(raised.value) and str(target) in str(raised.value)
    assert target.read_text() == 'old' and os.listdir(tmp_path) == ['p.json']


def test_to_signature_marks_missing_points():
    signature = keypoints.to_signature(EXPECTED)
    assert signature.shape == (18, 2) and signature.dtype == np.float32
    assert signature[3].tolist() == [spec.MISSING_KEYPOINT] * 2
    present = np.arange(18) != 3
    np.testing.assert_array_equal(signature[present], EXPECTED[present, :2])
    batch = np.stack([EXPECTED, np.zeros((18, 3), np.float32)])
    batch[1, 0] = (5.0, 6.0, -0.5)
    signature = keypoints.to_signature(batch)
    assert signature.shape == (2, 18, 2)
    np.testing.assert_array_equal(signature[0], keypoints.to_signature(EXPECTED))
    assert np.all(signature[1] == spec.MISSING_KEYPOINT)
    with pytest.raises(errors.KeypointsError, match=r'\[..., 18, 3\]'):
        keypoints.to_signature(np.zeros((18, 2)))


def test_reading_changes_nothing():
    names = ['pose_coco18.json', 'viton_pose.mat', 'viton_pose.pkl', 'pose_everywear.json']
    before = [open(path(name), 'rb').read() for name in names]
    for name in names:
        keypoints.read_keypoints(path(name))
    assert [open(path(name), 'rb').read() for name in names] == before


def test_openpose_json_round_trip(tmp_path):
    rng = np.random.default_rng(4)
    points = np.concatenate([rng.uniform(0, 700, (18, 2)), rng.uniform(0.1, 1, (18, 1))], 1)
    points[[3, 9]] = 0  # missing
    path = tmp_path / 'estimated_keypoints.json'
    keypoints.write_openpose_json(path, points.astype(np.float32))
    back = keypoints.read_keypoints(str(path))
    np.testing.assert_allclose(back, np.round(points, 3), atol=1e-3)
    assert not list(tmp_path.glob('.*'))  # written through a temporary name
    with pytest.raises(errors.KeypointsError, match='non-finite'):
        keypoints.write_openpose_json(tmp_path / 'bad.json', np.full((18, 3), np.nan))


def _pose_file(tmp_path, points):
    target = tmp_path / 'pose_keypoints.json'
    flat = [v for p in points for v in p]
    target.write_text(json.dumps({'people': [{'pose_keypoints_2d': flat}]}))
    return target


def _upright_pose():
    points = np.zeros((18, 3))
    points[:, 0] = np.linspace(40, 150, 18)
    points[:, 1] = np.linspace(20, 240, 18)
    points[:, 2] = 0.9
    return points


@pytest.mark.parametrize('case', ['x = 1e30', 'all negative', 'far below', 'all missing'])
def test_a_pose_that_cannot_be_the_photos_is_refused_naming_the_file(tmp_path, case):
    points = _upright_pose()
    if case == 'x = 1e30':
        points[5, 0] = 1e30
    elif case == 'all negative':
        points[:, :2] = -np.abs(points[:, :2]) - 1
    elif case == 'far below':
        points[10, 1] = 256 * 3
    else:
        points[:, 2] = 0
    target = _pose_file(tmp_path, points)
    keypoints.read_keypoints(target)  # alone it is a pose file like any other
    with pytest.raises(errors.KeypointsError) as raised:
        keypoints.read_keypoints(target, image_size=(256, 192))
    assert raised.value.path == str(target)
    assert 'photo' in str(raised.value) or 'present' in str(raised.value)


def test_a_pose_a_little_outside_a_cropped_photo_is_kept(tmp_path):
    points = _upright_pose()
    points[10, 1] = 256 + 60  # an ankle below the edge of a cropped photo
    points[3, 0] = -30
    target = _pose_file(tmp_path, points)
    out = keypoints.read_keypoints(target, image_size=(256, 192))
    np.testing.assert_allclose(out, points.astype(np.float32), atol=1e-3)


def test_nan_and_infinite_keypoints_are_refused(tmp_path):
    for bad in ('NaN', 'Infinity', '-Infinity', '1e400'):
        target = tmp_path / 'pose.json'
        target.write_text('{"people": [{"pose_keypoints_2d": [' + ', '.join(
                [bad] + ['1'] * 53) + ']}]}')
        with pytest.raises(errors.KeypointsError, match='non-finite') as raised:
            keypoints.read_keypoints(target, image_size=(256, 192))
        assert raised.value.path == str(target)
