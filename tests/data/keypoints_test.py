"""Every pose format on the committed fixtures, and each malformed file's typed error."""

import json

import numpy as np
import pytest

from everywear_tf import errors
from everywear_tf import spec
from everywear_tf.data import keypoints
from tests.data.fixtures import path

EXPECTED = np.load(path('pose_expected.npy'))


@pytest.mark.parametrize('name', ['pose_coco18.json', 'pose_legacy.json',
                                  'pose_everywear.json'])
def test_coco18_files(name):
    points = keypoints.read_keypoints(path(name))
    assert points.dtype == np.float32 and points.shape == (18, 3)
    np.testing.assert_allclose(points, EXPECTED, atol=1e-3)
    assert points[3].tolist() == [0.0, 0.0, 0.0]  # missing stays missing


def test_body25_picks_the_most_confident_person_and_maps_to_coco18():
    points = keypoints.read_keypoints(path('pose_body25_two_people.json'))
    np.testing.assert_allclose(points, EXPECTED, atol=1e-3)  # MidHip and feet dropped


def test_viton_mat_and_pickle():
    for name in ('viton_pose.mat', 'viton_pose.pkl'):
        points = keypoints.read_keypoints(path(name))
        present = EXPECTED[:, 2] > 0
        np.testing.assert_allclose(points[present, :2], EXPECTED[present, :2], atol=1e-3)
        np.testing.assert_allclose(points[present, 2], 0.9)
        assert points[3].tolist() == [0.0, 0.0, 0.0]


@pytest.mark.parametrize('name,problem', [
        ('pose_truncated.json', 'not valid JSON'),
        ('pose_wrong_count.json', 'expected 54 (COCO-18) or 75 (BODY_25) values, got 51'),
        ('pose_nan.json', 'non-finite'),
        ('pose_no_people.json', 'no person detected'),
])
def test_malformed_files_name_the_file_and_problem(name, problem):
    with pytest.raises(errors.KeypointsError) as raised:
        keypoints.read_keypoints(path(name))
    assert raised.value.path == path(name)
    assert problem in str(raised.value)
    assert str(raised.value).startswith(path(name))


def test_missing_file_and_unknown_extension(tmp_path):
    with pytest.raises(errors.InputNotFoundError, match='nope.json: no such file'):
        keypoints.read_keypoints(str(tmp_path / 'nope.json'))
    other = tmp_path / 'pose.txt'
    other.write_text('1 2 3')
    with pytest.raises(errors.KeypointsError, match='unknown pose format'):
        keypoints.read_keypoints(str(other))


def test_everywear_pose_round_trip_and_validation(tmp_path):
    target = tmp_path / 'p.json'
    keypoints.write_everywear_pose(str(target), EXPECTED, (256, 192))
    points, size = keypoints.read_everywear_pose(str(target))
    np.testing.assert_allclose(points, EXPECTED, atol=1e-3)
    assert size == (256, 192)
    document = json.loads(target.read_text())
    document['version'] = 7
    target.write_text(json.dumps(document))
    with pytest.raises(errors.KeypointsError, match='unsupported version 7'):
        keypoints.read_keypoints(str(target))


def test_to_signature_marks_missing_points():
    signature = keypoints.to_signature(EXPECTED)
    assert signature.shape == (18, 2) and signature.dtype == np.float32
    assert signature[3].tolist() == [spec.MISSING_KEYPOINT] * 2
    np.testing.assert_array_equal(signature[0], EXPECTED[0, :2])
    batched = keypoints.to_signature(np.stack([EXPECTED, EXPECTED]))
    assert batched.shape == (2, 18, 2)
