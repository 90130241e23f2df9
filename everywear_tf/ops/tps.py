"""Thin-plate-spline warps of both originals.

CP-VTON (networks.py TpsGridGen): a 5×5 lattice of control points, kernel U = r²·log r² (r² = 0
→ U = 0), theta [B,50] = x offsets of the points then y offsets, points ordered with x slow and y
fast. Everything but theta is constant, so the [H,W,N] matrix that maps control-point positions to
the dense grid is solved once in float64.

VITON (tps_transformer.py): a 10×10 lattice ordered x fast, kernel r²·log(r² + 1e-12); the
control points are the *source* positions the lattice maps to, given directly (from the
shape-context matching), and sampling clamps coordinates to [-1, 1] (border replicate).

Both produce backward maps: for each output pixel, where to sample the source, x = width axis.
"""

import functools

import numpy as np
import tensorflow as tf

from everywear_tf.ops import sampling

CPVTON_GRID_SIZE = 5
VITON_GRID_SIZE = 10


def _axis(n):
    return np.linspace(-1.0, 1.0, n, dtype=np.float64)


def _dense_points(height, width):
    """[H·W, 2] (x, y) of every pixel centre, row-major, align-corners convention."""
    gx, gy = np.meshgrid(_axis(width), _axis(height))
    return np.stack([gx.reshape(-1), gy.reshape(-1)], axis=-1)


def _squared_distances(a, b):
    return ((a[:, None, :] - b[None, :, :]) ** 2).sum(-1)


def cpvton_control_points(grid_size=CPVTON_GRID_SIZE):
    """[N, 2] (x, y) of CP-VTON's lattice, x the slow index: point i = grid_size·ix + iy."""
    p_y, p_x = np.meshgrid(_axis(grid_size), _axis(grid_size))
    return np.stack([p_x.reshape(-1), p_y.reshape(-1)], axis=-1)


def _cpvton_kernel(d2):
    d2 = np.where(d2 == 0.0, 1.0, d2)
    return d2 * np.log(d2)


@functools.lru_cache(maxsize=8)
def cpvton_tps_matrix(height, width, grid_size=CPVTON_GRID_SIZE):
    """float64 [H,W,N] with grid_x = M·(P_X + θ_x) and grid_y = M·(P_Y + θ_y).

    M = [U(p, P_1..P_N), 1, x, y] · L⁻¹[:, :N], L = [[K, P], [Pᵀ, 0]], P = [1, X, Y].
    """
    points = cpvton_control_points(grid_size)
    n = len(points)
    system = np.zeros((n + 3, n + 3))
    system[:n, :n] = _cpvton_kernel(_squared_distances(points, points))
    affine = np.concatenate([np.ones((n, 1)), points], axis=1)
    system[:n, n:] = affine
    system[n:, :n] = affine.T
    inverse = np.linalg.inv(system)
    dense = _dense_points(height, width)
    basis = np.concatenate([_cpvton_kernel(_squared_distances(dense, points)),
                            np.ones((len(dense), 1)), dense], axis=1)
    matrix = basis @ inverse[:, :n]
    matrix.setflags(write=False)
    return matrix.reshape(height, width, n)


def cpvton_tps_grid(theta, height, width, grid_size=CPVTON_GRID_SIZE):
    """theta [B, 2N] (x offsets, then y offsets) → sampling grid [B,H,W,2].

    The identity part M·P is evaluated in float64, so theta = 0 gives the regular grid to float32
    rounding.
    """
    n = grid_size * grid_size
    matrix = cpvton_tps_matrix(height, width, grid_size).reshape(height * width, n)
    points = cpvton_control_points(grid_size)
    base = (matrix @ points).reshape(1, height, width, 2)
    theta = tf.convert_to_tensor(theta, tf.float32)
    m_t = tf.constant(matrix.T, tf.float32)  # [N, H·W]
    offsets_x = tf.matmul(theta[:, :n], m_t)
    offsets_y = tf.matmul(theta[:, n:], m_t)
    offsets = tf.stack([offsets_x, offsets_y], axis=-1)
    return tf.constant(base, tf.float32) + tf.reshape(offsets, [-1, height, width, 2])


def viton_lattice(grid_size=VITON_GRID_SIZE):
    """[N, 2] (x, y) of VITON's target lattice, x the fast index: point q = 10·iy + ix."""
    gx, gy = np.meshgrid(_axis(grid_size), _axis(grid_size))
    return np.stack([gx.reshape(-1), gy.reshape(-1)], axis=-1)


def _viton_kernel(d2):
    return d2 * np.log(d2 + 1e-12)


@functools.lru_cache(maxsize=8)
def viton_tps_matrix(height, width, grid_size=VITON_GRID_SIZE):
    """float64 [H,W,N] with source_x = M·cp_x, source_y = M·cp_y.

    The system of tps_transformer.py: rows [1, x, y, U(·)] per lattice point and Pᵀ below, solved
    for [a0, a1, a2, w_1..w_N] with right-hand side [cp; 0].
    """
    lattice = viton_lattice(grid_size)
    n = len(lattice)
    affine = np.concatenate([np.ones((n, 1)), lattice], axis=1)
    system = np.zeros((n + 3, n + 3))
    system[:n, :3] = affine
    system[:n, 3:] = _viton_kernel(_squared_distances(lattice, lattice))
    system[n:, 3:] = affine.T
    inverse = np.linalg.inv(system)
    dense = _dense_points(height, width)
    basis = np.concatenate([np.ones((len(dense), 1)), dense,
                            _viton_kernel(_squared_distances(dense, lattice))], axis=1)
    matrix = basis @ inverse[:, :n]
    matrix.setflags(write=False)
    return matrix.reshape(height, width, n)


def viton_tps_grid(control_points, height, width, grid_size=VITON_GRID_SIZE):
    """control_points [B,N,2] (source x, y in [-1, 1], lattice order) → grid [B,H,W,2]."""
    n = grid_size * grid_size
    matrix = viton_tps_matrix(height, width, grid_size).reshape(height * width, n)
    control_points = tf.convert_to_tensor(control_points, tf.float32)
    m_t = tf.constant(matrix.T, tf.float32)
    grid_x = tf.matmul(control_points[..., 0], m_t)
    grid_y = tf.matmul(control_points[..., 1], m_t)
    return tf.reshape(tf.stack([grid_x, grid_y], axis=-1), [-1, height, width, 2])


def viton_tps_warp(image, control_points, grid_size=VITON_GRID_SIZE):
    """Warps image [B,H,W,C] by VITON's TPS; coordinates clamped to the frame (border mode)."""
    height, width = image.shape[1], image.shape[2]
    grid = viton_tps_grid(control_points, height, width, grid_size)
    return sampling.grid_sample(image, grid, padding_mode=sampling.BORDER)


def viton_control_points(control_points_mat):
    """VITON's ``control_points`` array [2, nx, ny] from a ``*_tps.mat`` → [nx·ny, 2] in [-1, 1].

    As model_zalando_refine_test.py reads it: C-order flatten, [2, N], transposed, then ·2 − 1.
    """
    array = np.asarray(control_points_mat, np.float64)
    if array.ndim != 3 or array.shape[0] != 2 or array.shape[1] != array.shape[2]:
        raise ValueError(f'control points must be [2, n, n], got shape {array.shape}')
    n = array.shape[1] * array.shape[2]
    return (array.reshape(-1).reshape(2, n).T * 2.0 - 1.0).astype(np.float32)
