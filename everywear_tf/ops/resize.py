"""Resamplers whose exact arithmetic the originals' inputs depend on.

- ``legacy_resize_bilinear``: TF1 ``resize_images(BILINEAR)``, no half-pixel centres
  (src = dst·in/out); VITON's body-shape upsample. TF2's ``tf.image.resize`` differs by up to 0.6.
- ``resize_area``: TF's area resampling; VITON's 256×192 → 16×12 body down-sample (block means).
- ``pil_resize_bilinear_uint8``: Pillow's 8-bit bilinear ``Image.resize``, integer for integer, as
  CP-VTON blurs its body shape (separable passes, 22-bit fixed-point weights, rounding to uint8
  after each pass).
"""

import functools

import numpy as np
import tensorflow as tf

_PIL_PRECISION_BITS = 22  # 32 - 8 - 2 in Pillow's Resample.c


def legacy_resize_bilinear(images, size):
    """[B,H,W,C] → [B,h,w,C] float32, TF1 bilinear with align_corners=False, no half pixels."""
    return tf.raw_ops.ResizeBilinear(images=images, size=tf.constant(size, tf.int32),
                                     align_corners=False, half_pixel_centers=False)


def resize_area(images, size):
    """[B,H,W,C] → [B,h,w,C] float32 by area averaging (TF1 and TF2 agree).

    When both factors are whole numbers (VITON's 256×192 → 16×12) the area average is the block
    mean, computed with a reshape and a reduction: the same values to float32 rounding, and
    unlike ``ResizeArea`` it compiles under XLA.
    """
    height, width, channels = images.shape[1], images.shape[2], images.shape[3]
    out_height, out_width = size
    if (None not in (height, width, channels) and height % out_height == 0
            and width % out_width == 0):
        blocks = tf.reshape(tf.cast(images, tf.float32),
                            [-1, out_height, height // out_height, out_width,
                             width // out_width, channels])
        return tf.reduce_mean(blocks, axis=[2, 4])
    return tf.raw_ops.ResizeArea(images=images, size=tf.constant(size, tf.int32),
                                 align_corners=False)


@functools.lru_cache(maxsize=32)
def pil_bilinear_coefficients(in_size, out_size):
    """[in, out] integer weights (as float64) of one Pillow bilinear pass, in units of 2⁻²²."""
    scale = in_size / out_size
    filterscale = max(scale, 1.0)
    support = 1.0 * filterscale
    coefficients = np.zeros((in_size, out_size), np.float64)
    for out in range(out_size):
        center = (out + 0.5) * scale
        xmin = max(int(center - support + 0.5), 0)
        xmax = min(int(center + support + 0.5), in_size)
        taps = np.arange(xmin, xmax)
        weights = np.maximum(1.0 - np.abs((taps - center + 0.5) / filterscale), 0.0)
        total = weights.sum()
        if total != 0.0:
            weights = weights / total
        # Pillow rounds half away from zero; bilinear weights are never negative.
        coefficients[xmin:xmax, out] = np.floor(0.5 + weights * (1 << _PIL_PRECISION_BITS))
    coefficients.setflags(write=False)
    return coefficients


def _pil_pass(images, coefficients):
    """One pass along the last axis of float64 integer-valued ``images``."""
    weighted = tf.matmul(images, tf.constant(coefficients, tf.float64))
    rounded = tf.floor((weighted + float(1 << (_PIL_PRECISION_BITS - 1)))
                       / float(1 << _PIL_PRECISION_BITS))
    return tf.clip_by_value(rounded, 0.0, 255.0)


def pil_resize_bilinear_uint8(images, size):
    """[B,H,W,C] with integer values in [0, 255] → [B,h,w,C] float32, equal to Pillow's output.

    Two separable passes, each rounding to uint8; a pass whose size is unchanged is skipped.
    Pillow 13 runs first the pass that leaves the smaller intermediate image (horizontal on a tie);
    older versions always went horizontal first. CP-VTON scales both axes by the same factor, where
    every version agrees. The fixed-point sums exceed float32's mantissa, so the passes run in
    float64.
    """
    height, width = images.shape[1], images.shape[2]
    if height is None or width is None:
        raise ValueError(f'pil_resize_bilinear_uint8 needs static sizes, got {images.shape}')
    out_height, out_width = size
    x = tf.transpose(tf.cast(images, tf.float64), [0, 3, 1, 2])  # [B,C,H,W]

    def horizontal(x):
        if out_width == width:
            return x
        return _pil_pass(x, pil_bilinear_coefficients(width, out_width))

    def vertical(x):
        if out_height == height:
            return x
        x = _pil_pass(tf.transpose(x, [0, 1, 3, 2]),
                      pil_bilinear_coefficients(height, out_height))
        return tf.transpose(x, [0, 1, 3, 2])

    if out_height * width < out_width * height:
        x = horizontal(vertical(x))
    else:
        x = vertical(horizontal(x))
    return tf.cast(tf.transpose(x, [0, 2, 3, 1]), tf.float32)
