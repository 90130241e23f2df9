"""EDM against a float64 NumPy forward pass written from create_generator, on random weights."""

import numpy as np
import pytest
import tensorflow as tf

from everywear_tf import configs
from everywear_tf import spec
from everywear_tf.models import edm
from everywear_tf.models import factory

from tests import graph_ops
from tests import numpy_reference as ref
from tests.models.randomize import randomize


def _bn(w, name, x, training):
    if training:  # batch moments over (B, H, W), biased variance
        mean, variance = x.mean(axis=(0, 1, 2)), x.var(axis=(0, 1, 2))
    else:
        mean, variance = w[f'{name}/moving_mean'], w[f'{name}/moving_variance']
    return ref.batch_norm(x, w[f'{name}/gamma'], w[f'{name}/beta'], mean, variance, 1e-5)


def _forward(w, x, training=False):
    """Dropout must be off (rate 0) for a training-mode comparison."""
    x = ref.conv2d(x, w['encoder_1_conv/kernel'], 2, 1)
    skips = [x]
    for level in range(2, 7):
        x = ref.conv2d(ref.leaky_relu(x), w[f'encoder_{level}_conv/kernel'], 2, 1)
        x = _bn(w, f'encoder_{level}_batchnorm', x, training)
        skips.append(x)
    for level in range(6, 0, -1):
        if level < 6:
            x = np.concatenate([x, skips[level - 1]], axis=-1)
        x = ref.conv2d_transpose_same(ref.relu(x), w[f'decoder_{level}_deconv/kernel'])
        if level > 1:
            x = _bn(w, f'decoder_{level}_batchnorm', x, training)
    x = np.tanh(x)
    return {'mask': x[..., :1], 'image': x[..., 1:]}


@pytest.mark.parametrize('height,width', [(128, 64), (256, 192)])
def test_matches_numpy_forward(height, width):
    model = factory.build(configs.get(spec.EDM, configs.LITE))
    weights = randomize(model, seed=height)
    x = np.random.default_rng(0).uniform(-1, 1, (2, height, width, 25)).astype(np.float32)
    got = model(x, training=False)
    expected = _forward(weights, x)
    for key in ('mask', 'image'):
        assert got[key].shape == expected[key].shape
        np.testing.assert_allclose(got[key].numpy(), expected[key], atol=1e-4, err_msg=key)


def test_training_mode_uses_biased_batch_moments():
    model = factory.build(configs.get(spec.EDM, configs.LITE, dropout=0.0))
    weights = randomize(model, seed=5)
    x = np.random.default_rng(1).uniform(-1, 1, (3, 128, 64, 25)).astype(np.float32)
    got = model(x, training=True)
    np.testing.assert_allclose(got['image'].numpy(), _forward(weights, x, True)['image'],
                               atol=1e-4)


def test_dropout_on_decoder_6_in_training_only():
    model = factory.build(configs.get(spec.EDM, configs.LITE))
    randomize(model, seed=6)
    x = np.random.default_rng(2).uniform(-1, 1, (2, 128, 64, 25)).astype(np.float32)
    inference = [model(x, training=False)['image'].numpy() for _ in range(2)]
    np.testing.assert_array_equal(inference[0], inference[1])
    training = [model(x, training=True)['image'].numpy() for _ in range(2)]
    assert np.abs(training[0] - training[1]).max() > 1e-3
    assert [layer.name for layer in model.layers if isinstance(layer, tf.keras.layers.Dropout)
            ] == ['decoder_6_dropout']


def test_full_parameter_counts_equal_the_original():
    model = factory.build(configs.get(spec.EDM, configs.FULL))
    assert sum(int(np.prod(v.shape)) for v in model.trainable_weights) == 29_269_632
    assert model.count_params() == 29_276_416  # plus the BN population statistics


def test_config_and_keras_round_trip(tmp_path):
    config = configs.get(spec.EDM, configs.LITE)
    model = factory.build(config)
    randomize(model, seed=7)
    assert edm.Edm.from_config(model.get_config()).config == config
    path = str(tmp_path / 'edm.keras')
    model.save(path)
    loaded = tf.keras.models.load_model(path)
    x = np.random.default_rng(3).uniform(-1, 1, (2, 128, 64, 25)).astype(np.float32)
    np.testing.assert_allclose(loaded(x, training=False)['image'],
                               model(x, training=False)['image'], atol=1e-6)


def test_dynamic_batch_and_core_ops_only():
    model = factory.build(configs.get(spec.EDM, configs.LITE))
    fn = tf.function(lambda x: model(x, training=False))
    concrete = fn.get_concrete_function(tf.TensorSpec([None, 256, 192, 25], tf.float32))
    assert graph_ops.custom_ops(concrete) == []
    assert concrete(tf.zeros([3, 256, 192, 25]))['mask'].shape == (3, 256, 192, 1)
