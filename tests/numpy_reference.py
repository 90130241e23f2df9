"""Independent NumPy float64 implementations of every numeric piece, written from the originals'
definitions (not from our TF code), for tests to compare against."""

import numpy as np

# --- sampling and TPS ---------------------------------------------------------------------------

def pixel_grid(height, width):
    return np.meshgrid(np.linspace(-1, 1, width), np.linspace(-1, 1, height))


def grid_sample(image, grid, padding_mode):
    """torch's bilinear grid_sample with align_corners=True, tap by tap."""
    image = image.astype(np.float64)
    batch, height, width, _ = image.shape
    x = (grid[..., 0].astype(np.float64) + 1) / 2 * (width - 1)
    y = (grid[..., 1].astype(np.float64) + 1) / 2 * (height - 1)
    if padding_mode == 'border':
        x = np.clip(x, 0, width - 1)
        y = np.clip(y, 0, height - 1)
    x0, y0 = np.floor(x), np.floor(y)
    out = np.zeros(grid.shape[:3] + image.shape[3:])
    b = np.arange(batch)[:, None, None]
    for dx in (0, 1):
        for dy in (0, 1):
            xs, ys = x0 + dx, y0 + dy
            weight = (1 - np.abs(x - xs)) * (1 - np.abs(y - ys))
            inside = (xs >= 0) & (xs <= width - 1) & (ys >= 0) & (ys <= height - 1)
            xi = np.clip(xs, 0, width - 1).astype(int)
            yi = np.clip(ys, 0, height - 1).astype(int)
            out += np.where(inside, weight, 0.0)[..., None] * image[b, yi, xi]
    return out


def cpvton_tps_grid(theta, height, width, grid_size=5):
    """TpsGridGen, solving the (N+3)² system for each item (no precomputed matrix)."""
    axis = np.linspace(-1, 1, grid_size)
    p_y, p_x = np.meshgrid(axis, axis)
    p_x, p_y = p_x.ravel(), p_y.ravel()
    n = grid_size ** 2

    def kernel(d2):
        d2 = np.where(d2 == 0, 1.0, d2)
        return d2 * np.log(d2)

    k = kernel((p_x[:, None] - p_x[None]) ** 2 + (p_y[:, None] - p_y[None]) ** 2)
    p = np.stack([np.ones(n), p_x, p_y], 1)
    system = np.block([[k, p], [p.T, np.zeros((3, 3))]])
    gx, gy = pixel_grid(height, width)
    u = kernel((gx[..., None] - p_x) ** 2 + (gy[..., None] - p_y) ** 2)
    out = []
    for item in np.asarray(theta, np.float64):
        coords = []
        for offsets, base in ((item[:n], p_x), (item[n:], p_y)):
            solution = np.linalg.solve(system, np.concatenate([offsets + base, np.zeros(3)]))
            w, a = solution[:n], solution[n:]
            coords.append(a[0] + a[1] * gx + a[2] * gy + u @ w)
        out.append(np.stack(coords, -1))
    return np.stack(out)


# --- layers -------------------------------------------------------------------------------------

def conv2d(x, kernel, stride=1, padding=0, bias=None):
    """Cross-correlation, NHWC × HWIO, symmetric zero padding."""
    x = np.pad(x.astype(np.float64), ((0, 0), (padding, padding), (padding, padding), (0, 0)))
    kh, kw = kernel.shape[:2]
    out_h = (x.shape[1] - kh) // stride + 1
    out_w = (x.shape[2] - kw) // stride + 1
    out = np.zeros((x.shape[0], out_h, out_w, kernel.shape[3]))
    for i in range(kh):
        for j in range(kw):
            patch = x[:, i:i + stride * (out_h - 1) + 1:stride,
                      j:j + stride * (out_w - 1) + 1:stride]
            out += patch @ kernel[i, j].astype(np.float64)
    return out if bias is None else out + bias


def conv2d_transpose_same(x, kernel, stride=2):
    """TF conv2d_transpose with 'SAME' padding and output size in·stride; kernel [h,w,out,in].

    The gradient of a SAME conv: input pixel i lands on output rows i·stride + k − pad_before.
    """
    batch, height, width, _ = x.shape
    kh, kw = kernel.shape[:2]
    out_h, out_w = height * stride, width * stride
    pad_h = max((height - 1) * stride + kh - out_h, 0) // 2
    pad_w = max((width - 1) * stride + kw - out_w, 0) // 2
    out = np.zeros((batch, out_h + 2 * kh, out_w + 2 * kw, kernel.shape[2]))
    for i in range(kh):
        for j in range(kw):
            contribution = x.astype(np.float64) @ kernel[i, j].astype(np.float64).T
            rows = kh + i - pad_h + stride * np.arange(height)
            cols = kw + j - pad_w + stride * np.arange(width)
            out[:, rows[:, None], cols[None, :]] += contribution
    return out[:, kh:kh + out_h, kw:kw + out_w]


def batch_norm(x, gamma, beta, mean, variance, epsilon):
    return (x - mean) / np.sqrt(variance + epsilon) * gamma + beta


def layer_norm(x, gamma, beta, epsilon=1e-12):
    """slim.layer_norm: moments per sample over (H, W, C), per-channel affine."""
    mean = x.mean(axis=(1, 2, 3), keepdims=True)
    variance = ((x - mean) ** 2).mean(axis=(1, 2, 3), keepdims=True)
    return (x - mean) / np.sqrt(variance + epsilon) * gamma + beta


def leaky_relu(x, alpha=0.2):
    return np.where(x > 0, x, alpha * x)


def relu(x):
    return np.maximum(x, 0.0)


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))
