"""GMM against a float64 NumPy forward pass written from networks.py, on random weights."""

import numpy as np
import pytest
import tensorflow as tf

from everywear_tf import configs
from everywear_tf import spec
from everywear_tf.models import factory
from everywear_tf.models import gmm

from tests import graph_ops
from tests import numpy_reference as ref
from tests.models.randomize import randomize


def _bn(w, name, x):
    return ref.batch_norm(x, w[f'{name}/gamma'], w[f'{name}/beta'], w[f'{name}/moving_mean'],
                          w[f'{name}/moving_variance'], 1e-5)


def _extract(w, prefix, x):
    for i in range(6):
        stride = 2 if i < 4 else 1
        x = ref.relu(ref.conv2d(x, w[f'{prefix}_conv{i}/kernel'], stride, 1,
                                w[f'{prefix}_conv{i}/bias']))
        if i < 5:
            x = _bn(w, f'{prefix}_bn{i}', x)
    return x / np.sqrt((x ** 2).sum(-1, keepdims=True) + 1e-6)


def _forward(w, agnostic, cloth_input, cloth, mask, height, width):
    fa = _extract(w, 'extraction_a', agnostic)
    fb = _extract(w, 'extraction_b', cloth_input)
    _, h, wd, _ = fa.shape
    x = np.zeros(fb.shape[:3] + (h * wd,))
    for ya in range(h):
        for xa in range(wd):
            x[..., xa * h + ya] = np.einsum('bhwc,bc->bhw', fb, fa[:, ya, xa])
    for i in range(4):
        stride = 2 if i < 2 else 1
        x = ref.conv2d(x, w[f'regression_conv{i}/kernel'], stride, 1,
                       w[f'regression_conv{i}/bias'])
        x = ref.relu(_bn(w, f'regression_bn{i}', x))
    flat = x.transpose(0, 3, 1, 2).reshape(x.shape[0], -1)  # torch's view(B, -1) on NCHW
    theta = np.tanh(flat @ w['regression_linear/kernel'] + w['regression_linear/bias'])
    grid = ref.cpvton_tps_grid(theta, height, width)
    return {'theta': theta, 'grid': grid, 'warped_cloth': ref.grid_sample(cloth, grid, 'border'),
            'warped_mask': ref.grid_sample(mask, grid, 'zeros')}


def _inputs(config, batch, seed):
    rng = np.random.default_rng(seed)
    frame = (batch, config.height, config.width)
    return (rng.uniform(-1, 1, frame + (22,)).astype(np.float32),
            rng.uniform(-1, 1, frame + (config.cloth_channels,)).astype(np.float32),
            rng.uniform(-1, 1, frame + (3,)).astype(np.float32),
            (rng.uniform(size=frame + (1,)) > 0.5).astype(np.float32))


@pytest.mark.parametrize('variant,height,width', [(configs.CPVTON, 256, 192),
                                                  (configs.CPVTON_PLUS, 128, 64)])
def test_matches_numpy_forward(variant, height, width):
    config = configs.get(spec.GMM, configs.LITE, variant=variant, height=height, width=width)
    model = factory.build(config)
    weights = randomize(model, seed=height)
    inputs = _inputs(config, batch=2, seed=1)
    got = model(inputs, training=False)
    expected = _forward(weights, *inputs, height, width)
    assert np.abs(expected['theta']).max() < 0.99  # not saturated: the comparison means something
    for key in ('theta', 'grid', 'warped_cloth', 'warped_mask'):
        np.testing.assert_allclose(got[key].numpy(), expected[key], atol=1e-4, err_msg=key)


def test_full_parameter_counts_equal_the_originals():
    for variant, count in ((configs.CPVTON, 19_057_650), (configs.CPVTON_PLUS, 19_055_602)):
        model = factory.build(configs.get(spec.GMM, configs.FULL, variant=variant))
        assert model.count_params() - _non_trainable(model) == count
        assert sum(int(np.prod(v.shape)) for v in model.trainable_weights) == count


def _non_trainable(model):
    return sum(int(np.prod(v.shape)) for v in model.non_trainable_weights)


def test_config_and_keras_round_trip(tmp_path):
    config = configs.get(spec.GMM, configs.LITE, variant=configs.CPVTON_PLUS, height=128,
                         width=64)
    model = factory.build(config)
    randomize(model, seed=3)
    clone = gmm.Gmm.from_config(model.get_config())
    assert clone.config == config
    assert configs.from_dict(spec.GMM, configs.to_dict(config)) == config
    inputs = _inputs(config, batch=2, seed=4)
    path = str(tmp_path / 'gmm.keras')
    model.save(path)
    loaded = tf.keras.models.load_model(path)
    np.testing.assert_allclose(loaded(inputs, training=False)['theta'],
                               model(inputs, training=False)['theta'], atol=1e-6)


def test_unknown_variant_and_bad_frame_are_refused():
    with pytest.raises(ValueError, match='variant'):
        configs.get(spec.GMM, configs.LITE, variant='viton')
    with pytest.raises(ValueError, match='multiples of 16'):
        configs.get(spec.GMM, configs.LITE, height=100)


def test_dynamic_batch_and_core_ops_only():
    config = configs.get(spec.GMM, configs.LITE, height=128, width=64)
    model = factory.build(config)
    frame = [None, config.height, config.width]
    fn = tf.function(lambda *x: model(x, training=False))
    concrete = fn.get_concrete_function(*[tf.TensorSpec(frame + [c], tf.float32)
                                          for c in (22, 3, 3, 1)])
    assert graph_ops.custom_ops(concrete) == []
    for batch in (1, 3):
        out = concrete(*_inputs(config, batch, seed=batch))
        assert out['grid'].shape == (batch, 128, 64, 2)
