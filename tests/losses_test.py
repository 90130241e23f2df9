"""Losses against values worked out by hand on tiny tensors, and the perceptual loss against a
NumPy VGG on a small fake VGG file in MatConvNet's layout."""

import numpy as np
import pytest
import tensorflow as tf

from everywear_tf import errors
from everywear_tf import losses
from everywear_tf.models import vgg

from tests import numpy_reference as ref


def test_total_variation_is_a_per_image_sum():
    alpha = np.zeros((2, 2, 3, 1), np.float32)
    alpha[0] = [[[0.0], [1.0], [1.0]], [[0.0], [0.0], [0.5]]]
    # image 0: vertical |0-0| + |0-1| + |0.5-1| = 1.5; horizontal 1 + 0 + 0 + 0.5 = 1.5 → 3.0
    np.testing.assert_allclose(losses.total_variation(alpha).numpy(), [3.0, 0.0])


def test_rm_loss_subtracts_the_alpha_mean():
    tryon = np.zeros((2, 2, 3, 3), np.float32)
    target = np.full((2, 2, 3, 3), 0.5, np.float32)
    alpha = np.zeros((2, 2, 3, 1), np.float32)
    alpha[0] = [[[0.0], [1.0], [1.0]], [[0.0], [0.0], [0.5]]]
    terms = losses.rm_loss(tryon, target, alpha, perceptual_weight=0.0)
    mean_alpha = 2.5 / 12
    tv = (3.0 + 0.0) / 2
    assert float(terms['content_l1']) == pytest.approx(0.5)
    assert float(terms['alpha_mean']) == pytest.approx(mean_alpha)
    assert float(terms['tv']) == pytest.approx(tv)
    assert float(terms['total']) == pytest.approx(0.2 * 0.5 - 0.1 * mean_alpha + 5e-6 * tv)


def test_edm_loss_terms():
    mask = np.zeros((1, 2, 2, 1), np.float32)
    target_mask = np.ones((1, 2, 2, 1), np.float32)
    image = np.full((1, 2, 2, 3), 0.25, np.float32)
    target = np.full((1, 2, 2, 3), -0.25, np.float32)
    terms = losses.edm_loss(mask, image, target_mask, target, perceptual_weight=0.0)
    assert float(terms['mask_l1']) == pytest.approx(1.0)
    assert float(terms['content_l1']) == pytest.approx(0.5)
    assert float(terms['total']) == pytest.approx(1.5)
    with pytest.raises(ValueError, match='VGG'):
        losses.edm_loss(mask, image, target_mask, target)


def test_grid_interval_consistency_by_hand():
    grid = np.zeros((1, 3, 3, 2), np.float32)
    grid[0, 1, :, 0] = [0.0, 0.1, 0.5]  # x spacing 0.1 then 0.4 around the centre: |0.1-0.4|
    grid[0, :, 1, 1] = [0.0, 0.2, 0.3]  # y spacing 0.2 then 0.1: |0.2-0.1|
    assert float(losses.grid_interval_consistency(grid)) == pytest.approx(0.3 + 0.1)
    terms = losses.gmm_loss(np.zeros((1, 3, 3, 3), np.float32), np.ones((1, 3, 3, 3), np.float32),
                            grid, 40.0)
    assert float(terms['total']) == pytest.approx(1.0 + 40 * 0.4 / 9)


def _fake_vgg(seed, widths=(4, 4, 6, 6, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8)):
    rng = np.random.default_rng(seed)
    weights, channels = {}, 3
    for conv, width in zip(vgg.CONVS, widths):
        weights[conv] = (rng.normal(0, 0.3, (3, 3, channels, width)).astype(np.float32),
                         rng.normal(0, 0.1, (width,)).astype(np.float32))
        channels = width
    return weights


def _numpy_features(weights, image):
    x = (image.astype(np.float64) + 1) / 2 * 255 - np.array(vgg.RGB_MEANS)
    out = {}
    for layer in vgg.LAYERS:
        if layer == 'pool':
            b, h, w, c = x.shape
            x = x.reshape(b, h // 2, 2, w // 2, 2, c).mean(axis=(2, 4))
        else:
            kernel, bias = weights[layer]
            x = ref.relu(ref.conv2d(x, kernel, 1, 1, bias))
            out[layer] = x
    return out


def test_perceptual_loss_with_a_fake_matconvnet_file(tmp_path):
    weights = _fake_vgg(0)
    path = str(tmp_path / 'imagenet-vgg-verydeep-19.mat')
    vgg.write_matconvnet(path, weights)
    features = vgg.Vgg19Features.from_file(path)
    rng = np.random.default_rng(1)
    real = rng.uniform(-1, 1, (2, 32, 32, 3)).astype(np.float32)
    fake = rng.uniform(-1, 1, (2, 32, 32, 3)).astype(np.float32)
    got = float(losses.perceptual(features, real, fake, tuple(losses.PERCEPTUAL_LAYERS)))
    a, b = _numpy_features(weights, real), _numpy_features(weights, fake)
    expected = sum(losses.PERCEPTUAL_LAYERS[k] * np.abs(a[k] - b[k]).mean()
                   for k in losses.PERCEPTUAL_LAYERS) / 5 / 128
    assert got == pytest.approx(expected, rel=1e-4)
    stage2 = float(losses.perceptual(features, real, fake, losses.STAGE2_PERCEPTUAL_LAYERS))
    expected2 = sum(losses.PERCEPTUAL_LAYERS[k] * np.abs(a[k] - b[k]).mean()
                    for k in losses.STAGE2_PERCEPTUAL_LAYERS) / 3 / 128
    assert stage2 == pytest.approx(expected2, rel=1e-4)


def test_keras_h5_weights_map_to_the_same_rgb_network(tmp_path):
    import h5py
    weights = _fake_vgg(2)
    path = str(tmp_path / 'vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5')
    with h5py.File(path, 'w') as f:
        for conv, (kernel, bias) in weights.items():
            name = f'block{conv[4]}_conv{conv[6]}'
            group = f.create_group(name)
            if conv == 'conv1_1':
                kernel = kernel[:, :, ::-1, :]  # Caffe-converted Keras weights take BGR
            group.create_dataset(f'{name}/kernel:0', data=kernel)
            group.create_dataset(f'{name}/bias:0', data=bias)
            group.attrs['weight_names'] = [f'{name}/kernel:0'.encode(), f'{name}/bias:0'.encode()]
    from_h5 = vgg.read_weights(path)
    for conv in vgg.CONVS:
        np.testing.assert_array_equal(from_h5[conv][0], weights[conv][0])


def test_bad_vgg_files_are_named(tmp_path):
    with pytest.raises(errors.InputNotFoundError, match='missing.mat'):
        vgg.read_weights(str(tmp_path / 'missing.mat'))
    junk = tmp_path / 'junk.mat'
    junk.write_bytes(b'not a mat file')
    with pytest.raises(vgg.VggWeightsError, match='junk.mat'):
        vgg.read_weights(str(junk))


def test_gmm_loss_adds_the_supervised_grid_term_only_when_asked():
    rng = np.random.default_rng(11)
    warped, target = rng.uniform(-1, 1, (2, 2, 8, 6, 3))
    grid, grid_target = rng.uniform(-1, 1, (2, 2, 8, 6, 2))
    plain = losses.gmm_loss(tf.constant(warped), tf.constant(target), tf.constant(grid))
    assert 'grid_l1' not in plain
    terms = losses.gmm_loss(tf.constant(warped), tf.constant(target), tf.constant(grid),
                            grid_target=tf.constant(grid_target), grid_weight=0.5)
    expected = np.abs(grid - grid_target).mean()
    np.testing.assert_allclose(float(terms['grid_l1']), expected, rtol=1e-6)
    np.testing.assert_allclose(float(terms['total']), np.abs(warped - target).mean()
                               + 0.5 * expected, rtol=1e-6)


def test_the_grid_term_counts_only_the_garment_when_masked():
    rng = np.random.default_rng(12)
    warped, target = rng.uniform(-1, 1, (2, 2, 8, 6, 3))
    grid, grid_target = rng.uniform(-3, 3, (2, 2, 8, 6, 2))
    mask = rng.uniform(size=(2, 8, 6)) > 0.6
    terms = losses.gmm_loss(tf.constant(warped), tf.constant(target), tf.constant(grid),
                            grid_target=tf.constant(grid_target), grid_weight=1.0,
                            grid_mask=tf.constant(mask))
    expected = np.abs(grid - grid_target)[mask].mean()
    np.testing.assert_allclose(float(terms['grid_l1']), expected, rtol=1e-6)
