"""CP-VTON's feature L2 norm and correlation (networks.py FeatureL2Norm, FeatureCorrelation)."""

import tensorflow as tf

L2_EPSILON = 1e-6


def feature_l2norm(features):
    """features / sqrt(sum_c features² + 1e-6): ε inside the sqrt, unlike tf.math.l2_normalize."""
    return features / tf.sqrt(tf.reduce_sum(tf.square(features), axis=-1, keepdims=True)
                              + L2_EPSILON)


def feature_correlation(person, cloth):
    """[B,h,w,c] x [B,h,w,c] → [B,h,w,w·h] in the original's index order.

    out[b, y, x, k] = <cloth[b, y, x], person[b, yA, xA]> with k = xA·h + yA: the channels walk
    the *person* positions column by column, the spatial axes are the *cloth* positions. Converted
    regression weights depend on this order.
    """
    shape = tf.shape(person)
    batch, height, width, channels = shape[0], shape[1], shape[2], shape[3]
    person_cols = tf.reshape(tf.transpose(person, [0, 2, 1, 3]), [batch, width * height, channels])
    cloth_rows = tf.reshape(cloth, [batch, height * width, channels])
    corr = tf.matmul(cloth_rows, person_cols, transpose_b=True)
    out = tf.reshape(corr, [batch, height, width, width * height])
    static = person.shape
    if static[1] is not None and static[2] is not None:
        out.set_shape([static[0], static[1], static[2], static[1] * static[2]])
    return out
