"""Both TPS warps against float64 NumPy solutions written from the originals' formulas."""

import numpy as np
import pytest
import tensorflow as tf

from everywear_tf.ops import sampling
from everywear_tf.ops import tps

from tests import graph_ops
from tests import numpy_reference


def test_cpvton_identity_at_zero_theta():
    for height, width in ((256, 192), (64, 48)):
        grid = tps.cpvton_tps_grid(np.zeros((2, 50), np.float32), height, width).numpy()
        gx, gy = numpy_reference.pixel_grid(height, width)
        np.testing.assert_allclose(grid[..., 0], np.broadcast_to(gx, grid.shape[:3]), atol=1e-5)
        np.testing.assert_allclose(grid[..., 1], np.broadcast_to(gy, grid.shape[:3]), atol=1e-5)


@pytest.mark.parametrize('height,width', [(256, 192), (40, 30)])
def test_cpvton_matches_reference_on_random_theta(height, width):
    theta = np.random.default_rng(height).uniform(-0.3, 0.3, (3, 50)).astype(np.float32)
    got = tps.cpvton_tps_grid(theta, height, width).numpy()
    expected = numpy_reference.cpvton_tps_grid(theta, height, width)
    np.testing.assert_allclose(got, expected, atol=2e-5)


def test_cpvton_theta_layout_x_offsets_first_and_x_slow():
    """Shifting every x offset shifts the grid in x only; point 5·ix + iy sits at (ix, iy)."""
    theta = np.zeros((1, 50), np.float32)
    theta[0, :25] = 0.2
    grid = tps.cpvton_tps_grid(theta, 33, 21).numpy()
    gx, gy = numpy_reference.pixel_grid(33, 21)
    np.testing.assert_allclose(grid[0, ..., 0], gx + 0.2, atol=1e-5)
    np.testing.assert_allclose(grid[0, ..., 1], gy, atol=1e-5)
    points = tps.cpvton_control_points()
    assert points[1].tolist() == [-1.0, -0.5] and points[5].tolist() == [-0.5, -1.0]


def test_cpvton_affine_offsets_give_an_affine_grid():
    points = tps.cpvton_control_points()
    theta = np.concatenate([0.1 * points[:, 0] - 0.05 * points[:, 1] + 0.02,
                            0.07 * points[:, 0] + 0.2 * points[:, 1] - 0.1])[None]
    grid = tps.cpvton_tps_grid(theta.astype(np.float32), 32, 24).numpy()[0]
    gx, gy = numpy_reference.pixel_grid(32, 24)
    np.testing.assert_allclose(grid[..., 0], 1.1 * gx - 0.05 * gy + 0.02, atol=1e-5)
    np.testing.assert_allclose(grid[..., 1], 0.07 * gx + 1.2 * gy - 0.1, atol=1e-5)


def _viton_reference(image, cp, grid_size=10):
    """tps_transformer.py in float64: W⁻¹·[cp; 0], [1, x, y, r] rows, clipped bilinear gather."""
    lattice = []
    for iy in range(grid_size):
        for ix in range(grid_size):
            lattice.append((-1 + 2 * ix / (grid_size - 1), -1 + 2 * iy / (grid_size - 1)))
    lattice = np.array(lattice)
    n = len(lattice)
    p = np.concatenate([np.ones((n, 1)), lattice], 1)
    d2 = ((lattice[:, None] - lattice[None]) ** 2).sum(-1)
    system = np.zeros((n + 3, n + 3))
    system[:n, :3] = p
    system[:n, 3:] = d2 * np.log(d2 + 1e-12)
    system[n:, 3:] = p.T
    batch, height, width, _ = image.shape
    gx, gy = numpy_reference.pixel_grid(height, width)
    gx, gy = gx.ravel(), gy.ravel()
    r2 = (gx[:, None] - lattice[:, 0]) ** 2 + (gy[:, None] - lattice[:, 1]) ** 2
    rows = np.concatenate([np.ones((len(gx), 1)), gx[:, None], gy[:, None],
                           r2 * np.log(r2 + 1e-12)], 1)
    out = []
    for item, points in zip(image.astype(np.float64), cp.astype(np.float64)):
        transform = np.linalg.inv(system) @ np.concatenate([points, np.zeros((3, 2))])
        xs, ys = (rows @ transform).T
        x = (np.clip(xs, -1, 1) + 1) / 2 * (width - 1)
        y = (np.clip(ys, -1, 1) + 1) / 2 * (height - 1)
        x0, y0 = np.floor(x), np.floor(y)
        x1f, y1f = x0 + 1, y0 + 1
        x0i, y0i = x0.astype(int), y0.astype(int)
        x1i = np.minimum(x1f, width - 1).astype(int)
        y1i = np.minimum(y1f, height - 1).astype(int)
        value = (((x1f - x) * (y1f - y))[:, None] * item[y0i, x0i]
                 + ((x1f - x) * (y - y0))[:, None] * item[y1i, x0i]
                 + ((x - x0) * (y1f - y))[:, None] * item[y0i, x1i]
                 + ((x - x0) * (y - y0))[:, None] * item[y1i, x1i])
        out.append(value.reshape(height, width, -1))
    return np.stack(out)


def test_viton_warp_matches_reference():
    rng = np.random.default_rng(3)
    image = rng.uniform(-1, 1, (2, 64, 48, 3)).astype(np.float32)
    cp = (tps.viton_lattice()[None] + rng.uniform(-0.15, 0.15, (2, 100, 2))).astype(np.float32)
    cp[1, :10, 0] -= 0.4  # pushes part of the grid outside the frame: clamped sampling
    got = tps.viton_tps_warp(image, cp).numpy()
    np.testing.assert_allclose(got, _viton_reference(image, cp), atol=2e-4)


def test_viton_identity_and_known_shift():
    image = np.random.default_rng(4).uniform(-1, 1, (2, 256, 192, 3)).astype(np.float32)
    lattice = np.repeat(tps.viton_lattice()[None], 2, 0).astype(np.float32)
    np.testing.assert_allclose(tps.viton_tps_warp(image, lattice), image, atol=1e-3)
    shifted = lattice.copy()
    shifted[..., 0] += 0.5  # 0.5 / 2 · 191 = 47.75 pixels along the width
    grid = tps.viton_tps_grid(shifted, 256, 192).numpy()
    gx, _ = numpy_reference.pixel_grid(256, 192)
    np.testing.assert_allclose((grid[0, ..., 0] - gx) * 191 / 2, 47.75, atol=1e-3)


def test_viton_control_points_from_mat_layout():
    """MATLAB's [2,10,10] array: C-order flatten gives lattice order (x fast) after ·2 − 1."""
    lattice = tps.viton_lattice()
    mat = ((lattice.T.reshape(2, 10, 10)) + 1) / 2
    np.testing.assert_allclose(tps.viton_control_points(mat), lattice, atol=1e-7)
    with pytest.raises(ValueError, match='shape'):
        tps.viton_control_points(np.zeros((3, 10, 10)))


def test_dynamic_batch_and_core_ops_only():
    def warp(theta, cloth, cp):
        grid = tps.cpvton_tps_grid(theta, 64, 48)
        return (sampling.grid_sample(cloth, grid, 'border'), tps.viton_tps_warp(cloth, cp))

    concrete = tf.function(warp).get_concrete_function(
        tf.TensorSpec([None, 50], tf.float32), tf.TensorSpec([None, 64, 48, 3], tf.float32),
        tf.TensorSpec([None, 100, 2], tf.float32))
    assert graph_ops.custom_ops(concrete) == []
    out = concrete(tf.zeros([3, 50]), tf.zeros([3, 64, 48, 3]), tf.zeros([3, 100, 2]))
    assert out[0].shape == out[1].shape == (3, 64, 48, 3)
