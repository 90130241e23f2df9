"""The whole-photo person mask and the rotated body box that confines it."""

import numpy as np
import pytest
import tensorflow as tf

from everywear_tf.convert import tflite
from everywear_tf.inference.frontend import segmentation

from tests.graph_ops import custom_ops


def _inside_reference(roi, height, width):
    """Pixel by pixel in float64: the pixel centre rotated into the box's frame."""
    cx, cy, w, h, angle = (float(v) for v in roi)
    out = np.zeros((height, width), bool)
    for row in range(height):
        for col in range(width):
            dx, dy = col - cx, row - cy
            across = dx * np.cos(angle) + dy * np.sin(angle)
            along = -dx * np.sin(angle) + dy * np.cos(angle)
            out[row, col] = abs(across) <= w / 2 and abs(along) <= h / 2
    return out


@pytest.mark.parametrize('seed', range(4))
def test_inside_box_equals_a_pixel_by_pixel_reference(seed):
    rng = np.random.default_rng(seed)
    roi = np.array([rng.uniform(5, 35), rng.uniform(5, 25), rng.uniform(4, 30),
                    rng.uniform(4, 30), rng.uniform(-np.pi, np.pi)], np.float32)
    got = segmentation.inside_box(tf.constant(roi), 30, 40).numpy()
    expected = _inside_reference(roi, 30, 40)
    # Pixels within float32 rounding of the box's edge may go either way.
    assert np.mean(got == expected) >= 0.995 and abs(int(got.sum()) - int(expected.sum())) <= 3


def test_an_axis_aligned_box_is_exact():
    roi = tf.constant([10.0, 5.0, 8.0, 4.0, 0.0])
    got = segmentation.inside_box(roi, 12, 20).numpy()
    expected = np.zeros((12, 20), bool)
    expected[3:8, 6:15] = True  # |x - 10| <= 4, |y - 5| <= 2
    np.testing.assert_array_equal(got, expected)


@pytest.mark.slow
def test_the_selfie_model_gives_a_photo_sized_probability_with_core_ops():
    try:
        model = segmentation.SelfieModel.from_mediapipe()
    except tflite.MediapipeNotInstalledError as e:  # pragma: no cover - the test extra has it
        pytest.skip(str(e))
    data = pytest.importorskip('skimage.data')
    photo = data.astronaut()
    probability = model(tf.constant(photo)).numpy()
    assert probability.shape == photo.shape[:2]
    assert probability.min() >= 0 and probability.max() <= 1
    assert probability[200:260, 180:260].mean() > 0.9  # her face
    assert probability[20:80, 420:500].mean() < 0.2  # the backdrop, top right
    assert not custom_ops(model.__call__.get_concrete_function())
