"""Feature L2 norm and correlation against float64 NumPy loops over the original's indices."""

import numpy as np
import pytest
import tensorflow as tf

from everywear_tf.ops import correlation

from tests import graph_ops


def test_l2norm_puts_epsilon_inside_the_sqrt():
    rng = np.random.default_rng(0)
    features = rng.normal(size=(3, 4, 5, 7)).astype(np.float32)
    features[0, 0, 0] = 0.0
    features[1, 2, 3] = 1e-4
    f64 = features.astype(np.float64)
    expected = f64 / np.sqrt((f64 ** 2).sum(-1, keepdims=True) + 1e-6)
    np.testing.assert_allclose(correlation.feature_l2norm(features), expected, rtol=1e-5,
                               atol=1e-6)
    # A tiny vector is divided by ~1e-3, not normalised to unit length.
    norm = np.linalg.norm(correlation.feature_l2norm(features)[1, 2, 3])
    assert norm == pytest.approx(np.sqrt(7e-8 / (7e-8 + 1e-6)), rel=1e-4)


def test_correlation_index_order():
    rng = np.random.default_rng(1)
    for batch, height, width, channels in ((2, 4, 3, 5), (3, 16, 12, 8)):
        person = rng.normal(size=(batch, height, width, channels)).astype(np.float32)
        cloth = rng.normal(size=(batch, height, width, channels)).astype(np.float32)
        got = correlation.feature_correlation(person, cloth).numpy()
        assert got.shape == (batch, height, width, height * width)
        expected = np.zeros(got.shape)
        for ya in range(height):
            for xa in range(width):
                k = xa * height + ya
                expected[..., k] = np.einsum('bhwc,bc->bhw', cloth.astype(np.float64),
                                             person[:, ya, xa].astype(np.float64))
        np.testing.assert_allclose(got, expected, atol=1e-4)


def test_dynamic_batch_keeps_static_spatial_shape():
    fn = tf.function(lambda a, b: correlation.feature_correlation(
        correlation.feature_l2norm(a), correlation.feature_l2norm(b)))
    concrete = fn.get_concrete_function(tf.TensorSpec([None, 16, 12, 4], tf.float32),
                                        tf.TensorSpec([None, 16, 12, 4], tf.float32))
    assert concrete.structured_outputs.shape.as_list() == [None, 16, 12, 192]
    assert graph_ops.custom_ops(concrete) == []
    assert concrete(tf.ones([2, 16, 12, 4]), tf.ones([2, 16, 12, 4])).shape[0] == 2
