"""Float network outputs to the uint8 of the signatures (ARCHITECTURE.md §3), rounding half up."""

import tensorflow as tf


def signed_to_uint8(x):
    """[-1, 1] image → uint8 round((x + 1) / 2 · 255), clipped."""
    return tf.cast(tf.floor(tf.clip_by_value((x + 1.0) * 127.5, 0.0, 255.0) + 0.5), tf.uint8)


def unit_to_uint8(x):
    """[0, 1] mask → uint8 round(clip(x, 0, 1) · 255)."""
    return tf.cast(tf.floor(tf.clip_by_value(x, 0.0, 1.0) * 255.0 + 0.5), tf.uint8)


def uint8_to_unit(x):
    """uint8 mask → float32 x / 255 in [0, 1]."""
    return tf.cast(x, tf.float32) / 255.0
