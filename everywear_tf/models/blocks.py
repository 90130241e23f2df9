"""Layers and helpers shared by the three networks."""

import tensorflow as tf

from everywear_tf import configs

# Layers pinned with this dtype stay float32 under a mixed-precision policy.
FLOAT32 = 'float32'


def normal(mean, stddev=0.02):
    """A fresh N(mean, 0.02) initializer per layer (a shared unseeded one repeats its values)."""
    return tf.keras.initializers.RandomNormal(mean, stddev)


def conv(filters, kernel_size, strides, name, padding=0, use_bias=True,
         kernel_initializer='glorot_uniform', dtype=None):
    """Conv2D with PyTorch-style symmetric zero padding (explicit pad, then 'valid').

    ``dtype`` pins both layers' policy (None: the global one, as every Keras layer).
    """
    layers = []
    if padding:
        layers.append(tf.keras.layers.ZeroPadding2D(padding, name=f'{name}_pad', dtype=dtype))
    layers.append(tf.keras.layers.Conv2D(filters, kernel_size, strides, 'valid', use_bias=use_bias,
                                         kernel_initializer=kernel_initializer, name=name,
                                         dtype=dtype))
    return layers


def apply(layers, x, training=None):
    """``x`` through ``layers`` in order; ``training`` reaches batch norm and dropout only."""
    for layer in layers:
        if isinstance(layer, (tf.keras.layers.BatchNormalization, tf.keras.layers.Dropout)):
            x = layer(x, training=training)
        else:
            x = layer(x)
    return x


@tf.keras.utils.register_keras_serializable('everywear')
class InstanceLayerNorm(tf.keras.layers.Layer):
    """tf.contrib/slim ``layer_norm`` as VITON's refiner uses it.

    Moments per sample over (H, W, C); γ and β per channel; ε 1e-12. Keras' LayerNormalization
    cannot express this: axis=[1,2,3] makes (H,W,C)-shaped γ/β, axis=-1 normalises per pixel.
    """

    def __init__(self, epsilon=1e-12, **kwargs):
        super().__init__(**kwargs)
        self.epsilon = epsilon

    def build(self, input_shape):
        """Creates β (zeros) and γ (ones), one per channel of the [B,H,W,C] input."""
        channels = int(input_shape[-1])
        self.beta = self.add_weight(name='beta', shape=(channels,), initializer='zeros')
        self.gamma = self.add_weight(name='gamma', shape=(channels,), initializer='ones')
        super().build(input_shape)

    def call(self, x):
        """[B,H,W,C] → [B,H,W,C]: each sample normalised over (H, W, C), then scaled by γ and
        shifted by β per channel: x·s + (β − mean·s) with s = γ/√(variance + ε) as
        tf.nn.batch_normalization (slim's own) folds it, so the full-size tensor is passed
        over twice after the moments, not four times."""
        mean, variance = tf.nn.moments(x, axes=[1, 2, 3], keepdims=True)
        scale = tf.math.rsqrt(variance + self.epsilon) * self.gamma
        return x * scale + (self.beta - mean * scale)

    def get_config(self):
        """The layer's Keras config, with ``epsilon``."""
        return {**super().get_config(), 'epsilon': self.epsilon}


class ConfiguredModel(tf.keras.Model):
    """A network whose constructor arguments are exactly the fields of its ``self.config``.

    The network itself is always float32 at its boundary (no autocast of its inputs): under a
    reduced-precision policy (``factory.build(precision=...)``) only the sublayers compute in
    bfloat16, and each network casts back to float32 where exactness needs it.
    """

    def __init__(self, **kwargs):
        kwargs.setdefault('dtype', FLOAT32)
        super().__init__(**kwargs)

    def get_config(self):
        """The config's fields and the model's name: exactly the constructor's arguments."""
        return {**configs.to_dict(self.config), 'name': self.name}

    @classmethod
    def from_config(cls, config):
        """The network ``get_config`` describes (freshly initialised weights)."""
        return cls(**config)


def named_weights(model):
    """{'<layer>/<weight>': variable} over every weight of ``model``, trainable or not.

    Layer names are the stable names each network gives its sublayers; converters and tests
    address weights through these paths only.
    """
    out = {}
    for layer in model.layers:
        for weight in layer.weights:
            short = weight.name.split('/')[-1].split(':')[0]
            path = f'{layer.name}/{short}'
            if path in out:
                raise ValueError(f'two weights share the path {path!r}')
            out[path] = weight
    return out
