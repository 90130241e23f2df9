"""VGG-19 features for VITON's perceptual loss, from weights the user provides (never downloaded).

VITON (utils.py build_vgg19) feeds RGB in [0, 255] minus the RGB ImageNet means to MatConvNet's
``imagenet-vgg-verydeep-19.mat``, with 3×3 SAME convolutions, post-ReLU features and **average**
pooling. Keras' ``vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5`` holds the same network
converted from Caffe, which takes BGR: flipping the input channels of its first kernel makes it take
RGB with the same means, so both files give one network here.
"""

import os

import numpy as np
import scipy.io
import tensorflow as tf

from everywear_tf import errors

LAYERS = ('conv1_1', 'conv1_2', 'pool', 'conv2_1', 'conv2_2', 'pool', 'conv3_1', 'conv3_2',
          'conv3_3', 'conv3_4', 'pool', 'conv4_1', 'conv4_2', 'conv4_3', 'conv4_4', 'pool',
          'conv5_1', 'conv5_2')
CONVS = tuple(name for name in LAYERS if name != 'pool')
# Index of each conv in MatConvNet's `layers` cell array (relu and pool layers in between).
MATCONVNET_INDEX = dict(zip(CONVS, (0, 2, 5, 7, 10, 12, 14, 16, 19, 21, 23, 25, 28, 30)))
RGB_MEANS = (123.68, 116.779, 103.939)


class VggWeightsError(errors.InputError):
    """A VGG-19 weights file that is missing, unreadable or not VGG-19."""


def _keras_name(conv):
    block, index = conv[4], conv[6]
    return f'block{block}_conv{index}'


def _read_matconvnet(path):
    try:
        layers = scipy.io.loadmat(path)['layers'][0]
    except (KeyError, ValueError, OSError, TypeError, scipy.io.matlab.MatReadError) as e:
        raise VggWeightsError(path, f'not a MatConvNet VGG-19 file: {e}') from None
    weights = {}
    for conv, index in MATCONVNET_INDEX.items():
        try:
            kernel, bias = layers[index][0][0][2][0][0], layers[index][0][0][2][0][1]
        except (IndexError, TypeError, ValueError):
            raise VggWeightsError(path, f'layer {index} ({conv}) holds no weights') from None
        weights[conv] = (np.asarray(kernel, np.float32), np.asarray(bias, np.float32).reshape(-1))
    return weights


def _read_keras_h5(path):
    import h5py
    weights = {}
    try:
        with h5py.File(path, 'r') as f:
            root = f.get('model_weights', f)
            for conv in CONVS:
                group = root[_keras_name(conv)]
                names = [n.decode() if isinstance(n, bytes) else n
                         for n in group.attrs['weight_names']]
                kernel = np.asarray(group[next(n for n in names if 'kernel' in n)], np.float32)
                bias = np.asarray(group[next(n for n in names if 'bias' in n)], np.float32)
                weights[conv] = (kernel, bias)
    except (OSError, KeyError, StopIteration) as e:
        raise VggWeightsError(path, f'not a Keras VGG-19 weights file: {e!r}') from None
    kernel, bias = weights['conv1_1']
    weights['conv1_1'] = (kernel[:, :, ::-1, :].copy(), bias)  # BGR input → RGB input
    return weights


def read_weights(path):
    """{conv name: (kernel HWIO, bias)} from a .mat (MatConvNet) or .h5 (Keras) file."""
    path = errors.require_file(path)
    weights = _read_keras_h5(path) if path.endswith(('.h5', '.hdf5')) else _read_matconvnet(path)
    expected_in = 3
    for conv in CONVS:
        kernel, bias = weights[conv]
        if kernel.ndim != 4 or kernel.shape[:3] != (3, 3, expected_in) or bias.shape != (
                kernel.shape[3],):
            raise VggWeightsError(path, f'{conv}: kernel {kernel.shape} / bias {bias.shape} is '
                                        'not VGG-19')
        expected_in = kernel.shape[3]
    return weights


class Vgg19Features(tf.Module):
    """Frozen VGG-19 up to conv5_2; call with an RGB image in [-1, 1]."""

    def __init__(self, weights, name='vgg19'):
        super().__init__(name=name)
        self.weights = {conv: (tf.constant(k), tf.constant(b)) for conv, (k, b) in weights.items()}

    @classmethod
    def from_file(cls, path):
        """The features of the VGG-19 weights in ``path`` (.mat or .h5; see ``read_weights``)."""
        return cls(read_weights(path))

    def __call__(self, image, outputs=('conv1_2', 'conv2_2', 'conv3_2', 'conv4_2', 'conv5_2')):
        """{layer name: post-ReLU features} of ``outputs`` for an RGB image [B,H,W,3] in [-1, 1];
        the network stops at the deepest layer asked for."""
        x = (image + 1.0) / 2.0 * 255.0 - tf.constant(RGB_MEANS, image.dtype)
        features = {}
        for layer in LAYERS:
            if layer == 'pool':
                x = tf.nn.avg_pool2d(x, 2, 2, 'SAME')
            else:
                kernel, bias = self.weights[layer]
                x = tf.nn.relu(tf.nn.conv2d(x, kernel, 1, 'SAME') + bias)
                features[layer] = x
            if all(name in features for name in outputs):
                break
        return {name: features[name] for name in outputs}


def write_matconvnet(path, weights):
    """Writes ``weights`` in MatConvNet's layout (tests make small fake VGG files with this)."""
    layers = np.empty((1, max(MATCONVNET_INDEX.values()) + 1), dtype=object)
    for i in range(layers.shape[1]):
        layers[0, i] = {'type': 'relu'}
    for conv, index in MATCONVNET_INDEX.items():
        kernel, bias = weights[conv]
        cell = np.empty((1, 2), dtype=object)
        cell[0, 0], cell[0, 1] = kernel, bias.reshape(-1, 1)
        layers[0, index] = {'type': 'conv', 'name': conv, 'weights': cell}
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    scipy.io.savemat(path, {'layers': layers})
