"""Bilinear sampling of an image at normalised coordinates, as PyTorch's ``F.grid_sample``.

CP-VTON ran torch 0.4, whose grid_sample had ``align_corners=True`` semantics: -1 and +1 are the
centres of the corner pixels, so x_pixel = (x + 1) / 2 * (W - 1). Two padding modes:

- ``'border'``: coordinates are clamped to the frame *before* the floor, which replicates the edge
  (the warped cloth).
- ``'zeros'``: each of the four taps that falls outside the frame contributes 0 on its own (the
  warped mask), so samples near the edge fade rather than vanish.

Only core TF ops (GatherV2, Floor, arithmetic); the batch size is dynamic.
"""

import tensorflow as tf

BORDER = 'border'
ZEROS = 'zeros'
PADDING_MODES = (BORDER, ZEROS)


def grid_sample(image, grid, padding_mode=BORDER):
    """Samples ``image`` [B,H,W,C] at ``grid`` [B,Ho,Wo,2] (x, y in [-1, 1]) → [B,Ho,Wo,C].

    grid[..., 0] is the width axis, grid[..., 1] the height axis, as in PyTorch.
    """
    if padding_mode not in PADDING_MODES:
        raise ValueError(f'padding_mode must be one of {PADDING_MODES}, got {padding_mode!r}')
    image = tf.convert_to_tensor(image)
    grid = tf.cast(grid, image.dtype)
    shape = tf.shape(image)
    batch, height, width, channels = shape[0], shape[1], shape[2], shape[3]
    max_x = tf.cast(width - 1, image.dtype)
    max_y = tf.cast(height - 1, image.dtype)
    x = (grid[..., 0] + 1.0) * 0.5 * max_x
    y = (grid[..., 1] + 1.0) * 0.5 * max_y
    if padding_mode == BORDER:
        x = tf.clip_by_value(x, 0.0, max_x)
        y = tf.clip_by_value(y, 0.0, max_y)
    else:
        # Far-away coordinates only need to stay outside; bounding them keeps the int cast safe.
        x = tf.clip_by_value(x, -2.0, max_x + 2.0)
        y = tf.clip_by_value(y, -2.0, max_y + 2.0)
    x0 = tf.floor(x)
    y0 = tf.floor(y)
    wx1 = x - x0
    wy1 = y - y0

    def axis(position, limit, weight):
        """Clamped integer index of one tap along one axis, and its weight (0 outside for
        'zeros'; a {0, 1} factor, so the products below round exactly as tap-wise masking)."""
        if padding_mode == ZEROS:
            inside = (position >= 0.0) & (position <= limit)
            weight = weight * tf.cast(inside, image.dtype)
        return tf.cast(tf.clip_by_value(position, 0.0, limit), tf.int32), weight

    xi0, wx0 = axis(x0, max_x, 1.0 - wx1)
    xi1, wx1 = axis(x0 + 1.0, max_x, wx1)
    yi0, wy0 = axis(y0, max_y, 1.0 - wy1)
    yi1, wy1 = axis(y0 + 1.0, max_y, wy1)
    # One flat gather per tap (rows of [B·H·W, C]) is about twice as fast on CPU as gather_nd
    # with batch_dims, and reads the same values.
    flat = tf.reshape(image, [-1, channels])
    first = (tf.range(batch) * (height * width))[:, tf.newaxis, tf.newaxis]
    row0 = first + yi0 * width
    row1 = first + yi1 * width

    def tap(index, weight):
        return tf.gather(flat, index) * weight[..., tf.newaxis]

    return (tap(row0 + xi0, wx0 * wy0) + tap(row0 + xi1, wx1 * wy0) +
            tap(row1 + xi0, wx0 * wy1) + tap(row1 + xi1, wx1 * wy1))


def identity_grid(height, width, dtype=tf.float32):
    """[1,H,W,2] grid that samples every pixel centre of an H×W image at itself."""
    xs = tf.linspace(tf.constant(-1.0, dtype), 1.0, width)
    ys = tf.linspace(tf.constant(-1.0, dtype), 1.0, height)
    gx, gy = tf.meshgrid(xs, ys)
    return tf.stack([gx, gy], axis=-1)[tf.newaxis]
