"""grid_sample against a float64 NumPy transcription of PyTorch's align_corners=True sampler."""

import numpy as np
import pytest
import tensorflow as tf

from everywear_tf.ops import sampling

from tests import graph_ops
from tests import numpy_reference


@pytest.mark.parametrize('padding_mode', ['border', 'zeros'])
@pytest.mark.parametrize('batch,height,width,out_h,out_w,channels',
                         [(2, 7, 5, 6, 9, 3), (3, 16, 12, 16, 12, 1), (4, 1, 8, 3, 3, 2)])
def test_matches_numpy_reference(padding_mode, batch, height, width, out_h, out_w, channels):
    rng = np.random.default_rng(height * 100 + width)
    image = rng.normal(size=(batch, height, width, channels)).astype(np.float32)
    grid = rng.uniform(-1.4, 1.4, (batch, out_h, out_w, 2)).astype(np.float32)
    got = sampling.grid_sample(image, grid, padding_mode).numpy()
    expected = numpy_reference.grid_sample(image, grid, padding_mode)
    np.testing.assert_allclose(got, expected, atol=2e-5)


@pytest.mark.parametrize('padding_mode', ['border', 'zeros'])
def test_identity_grid_reproduces_the_image(padding_mode):
    image = np.random.default_rng(0).normal(size=(2, 9, 6, 3)).astype(np.float32)
    grid = tf.tile(sampling.identity_grid(9, 6), [2, 1, 1, 1])
    np.testing.assert_allclose(sampling.grid_sample(image, grid, padding_mode), image, atol=1e-5)


def test_known_shift_moves_content_by_whole_pixels():
    image = np.random.default_rng(1).normal(size=(2, 8, 11, 2)).astype(np.float32)
    grid = sampling.identity_grid(8, 11).numpy()
    grid[..., 0] += 2 * 3 / (11 - 1)  # sample 3 pixels to the right
    got = sampling.grid_sample(image, np.repeat(grid, 2, 0), 'zeros').numpy()
    np.testing.assert_allclose(got[:, :, :8], image[:, :, 3:], atol=1e-5)
    np.testing.assert_allclose(got[:, :, 8:], 0.0, atol=1e-6)
    border = sampling.grid_sample(image, np.repeat(grid, 2, 0), 'border').numpy()
    np.testing.assert_allclose(border[:, :, 8:], np.repeat(image[:, :, 10:], 3, axis=2),
                               atol=1e-5)


def test_half_pixel_outside_border_vs_zeros():
    """Half a pixel beyond the left edge: border repeats the edge, zeros halves it."""
    image = np.full((1, 4, 5, 1), 2.0, np.float32)
    x = -1.0 - 0.5 * 2 / (5 - 1)
    grid = np.array([[[[x, 0.0]]]], np.float32)
    assert sampling.grid_sample(image, grid, 'border').numpy().item() == pytest.approx(2.0)
    assert sampling.grid_sample(image, grid, 'zeros').numpy().item() == pytest.approx(1.0)
    far = np.array([[[[5.0, -7.0]]]], np.float32)
    assert sampling.grid_sample(image, far, 'zeros').numpy().item() == 0.0
    assert sampling.grid_sample(image, far, 'border').numpy().item() == pytest.approx(2.0)


def test_unknown_padding_mode_is_refused():
    with pytest.raises(ValueError, match='reflection'):
        sampling.grid_sample(np.zeros((1, 2, 2, 1), np.float32),
                             np.zeros((1, 1, 1, 2), np.float32), 'reflection')


def test_dynamic_batch_and_core_ops_only():
    fn = tf.function(lambda image, grid: sampling.grid_sample(image, grid, 'zeros'))
    concrete = fn.get_concrete_function(tf.TensorSpec([None, 16, 12, 3], tf.float32),
                                        tf.TensorSpec([None, 16, 12, 2], tf.float32))
    assert graph_ops.custom_ops(concrete) == []
    for batch in (1, 3):
        out = concrete(tf.zeros([batch, 16, 12, 3]), tf.zeros([batch, 16, 12, 2]))
        assert out.shape == (batch, 16, 12, 3)


@pytest.mark.parametrize('padding_mode', ['border', 'zeros'])
@pytest.mark.parametrize('channels', [1, 3])
def test_flat_gathers_equal_the_previous_gather_nd_sampler(padding_mode, channels):
    from tests import baselines
    rng = np.random.default_rng(channels)
    image = rng.normal(size=(3, 32, 24, channels)).astype(np.float32)
    grid = rng.uniform(-1.3, 1.3, (3, 40, 20, 2)).astype(np.float32)
    grid[0, :2] = np.float32([[-1.0, 1.0]])  # the corners exactly
    got = sampling.grid_sample(image, grid, padding_mode).numpy()
    expected = baselines.grid_sample(image, grid, padding_mode).numpy()
    np.testing.assert_array_equal(got, expected)
