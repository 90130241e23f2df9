"""RM against a float64 NumPy forward pass written from create_refine_generator."""

import numpy as np
import tensorflow as tf

from everywear_tf import configs
from everywear_tf import spec
from everywear_tf.models import factory
from everywear_tf.models import rm

from tests import graph_ops
from tests import numpy_reference as ref
from tests.models.randomize import randomize


def _forward(w, warped, coarse, mask):
    x = np.concatenate([warped, coarse], axis=-1).astype(np.float64)
    for i in range(1, 4):
        x = ref.conv2d(x, w[f'g_256_conv{i}/kernel'], 1, 1)
        x = ref.layer_norm(x, w[f'g_256_conv{i}_layernorm/gamma'],
                           w[f'g_256_conv{i}_layernorm/beta'])
        x = ref.leaky_relu(x)
    alpha = ref.sigmoid(ref.conv2d(x, w['g_1024_final/kernel'], 1, 0, w['g_1024_final/bias']))
    alpha = alpha * mask
    return {'alpha': alpha, 'tryon': alpha * warped + (1 - alpha) * coarse,
            # In float32, as the original compares a float32 sum with float32(3 * 0.95).
            'tps_mask': (warped.sum(-1, dtype=np.float32) < np.float32(3 * 0.95)).astype(float)}


def _inputs(batch, height, width, seed):
    rng = np.random.default_rng(seed)
    warped = rng.uniform(-1, 1, (batch, height, width, 3)).astype(np.float32)
    warped[0, :4] = 1.0  # white rows: tps_mask 0 there
    warped[1, 4:6] = 0.95  # sum 2.85 exactly: not less, so 0
    coarse = rng.uniform(-1, 1, (batch, height, width, 3)).astype(np.float32)
    mask = rng.uniform(0, 1, (batch, height, width, 1)).astype(np.float32)
    return warped, coarse, mask


def test_matches_numpy_forward():
    for config_name, height, width in ((configs.LITE, 32, 24), (configs.FULL, 64, 48)):
        model = factory.build(configs.get(spec.RM, config_name))
        weights = randomize(model, seed=height)
        inputs = _inputs(2, height, width, seed=0)
        got = model(inputs)
        expected = _forward(weights, *inputs)
        for key in ('alpha', 'tryon', 'tps_mask'):
            np.testing.assert_allclose(got[key].numpy(), expected[key], atol=1e-4, err_msg=key)


def test_tps_mask_thresholds_in_signed_space():
    warped = np.array([[[[1.0, 1.0, 1.0], [0.95, 0.95, 0.9499], [-1.0, -1.0, -1.0]]]], np.float32)
    np.testing.assert_array_equal(rm.tps_mask(warped).numpy(), [[[0.0, 1.0, 1.0]]])


def test_alpha_is_zero_outside_the_clothing_mask():
    model = factory.build(configs.get(spec.RM, configs.LITE))
    randomize(model, seed=1)
    warped, coarse, mask = _inputs(2, 16, 12, seed=1)
    mask[:, :8] = 0.0
    out = model((warped, coarse, mask))
    np.testing.assert_array_equal(out['alpha'].numpy()[:, :8], 0.0)
    np.testing.assert_allclose(out['tryon'].numpy()[:, :8], coarse[:, :8], atol=1e-7)


def test_full_parameter_count_equals_the_original():
    assert factory.build(configs.get(spec.RM, configs.FULL)).count_params() == 77_633


def test_config_and_keras_round_trip(tmp_path):
    config = configs.get(spec.RM, configs.LITE)
    model = factory.build(config)
    randomize(model, seed=2)
    assert rm.Rm.from_config(model.get_config()).config == config
    path = str(tmp_path / 'rm.keras')
    model.save(path)
    loaded = tf.keras.models.load_model(path)
    inputs = _inputs(2, 16, 12, seed=2)
    np.testing.assert_allclose(loaded(inputs)['alpha'], model(inputs)['alpha'], atol=1e-6)


def test_dynamic_batch_and_core_ops_only():
    model = factory.build(configs.get(spec.RM, configs.LITE))
    frame = [None, 256, 192]
    concrete = tf.function(lambda *x: model(x)).get_concrete_function(
        tf.TensorSpec(frame + [3]), tf.TensorSpec(frame + [3]), tf.TensorSpec(frame + [1]))
    assert graph_ops.custom_ops(concrete) == []
    assert concrete(*_inputs(3, 256, 192, seed=3))['tryon'].shape == (3, 256, 192, 3)
