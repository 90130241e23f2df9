"""VITON stage 1's encoder-decoder (EDM): pix2pix's U-Net cut to six levels.

25-channel person representation → [mask(1), rgb(3)], tanh. 4×4 stride-2 convolutions without
biases (explicit zero pad 1), BN ε 1e-5 with momentum 0.999 and the biased batch variance
(``fused=False``, as the original's hand-written batch norm), LeakyReLU 0.2 before each encoder
conv but the first, ReLU on each decoder input (the concat of decoder and skip, in that order),
dropout 0.5 on decoder_6 in training only.
"""

import tensorflow as tf

from everywear_tf import configs
from everywear_tf.models import blocks


def _batch_norm(name):
    return tf.keras.layers.BatchNormalization(epsilon=1e-5, momentum=0.999, fused=False,
                                              gamma_initializer=blocks.normal(1.0),
                                              name=name)


@tf.keras.utils.register_keras_serializable('everywear')
class Edm(blocks.ConfiguredModel):
    """[B,H,W,25] → dict(mask [B,H,W,1], image [B,H,W,3]), both tanh outputs in (-1, 1)."""

    LEVELS = 6

    def __init__(self, ngf=64, input_channels=25, output_channels=4, dropout=0.5, **kwargs):
        super().__init__(**kwargs)
        self.config = configs.EdmConfig(ngf=ngf, input_channels=input_channels,
                                        output_channels=output_channels, dropout=dropout)
        widths = (ngf, 2 * ngf, 4 * ngf, 8 * ngf, 8 * ngf, 8 * ngf)
        self.pads, self.encoder_convs, self.encoder_bns = [], [], []
        for level, filters in enumerate(widths, start=1):
            self.pads.append(tf.keras.layers.ZeroPadding2D(1, name=f'encoder_{level}_pad'))
            self.encoder_convs.append(tf.keras.layers.Conv2D(
                    filters, 4, 2, 'valid', use_bias=False,
                    kernel_initializer=blocks.normal(0.0), name=f'encoder_{level}_conv'))
            if level > 1:
                self.encoder_bns.append(_batch_norm(f'encoder_{level}_batchnorm'))
        self.decoder_deconvs, self.decoder_bns = [], []
        for level in range(self.LEVELS, 0, -1):
            filters = output_channels if level == 1 else widths[level - 2]
            self.decoder_deconvs.append(tf.keras.layers.Conv2DTranspose(
                    filters, 4, 2, 'same', use_bias=False,
                    kernel_initializer=blocks.normal(0.0), name=f'decoder_{level}_deconv'))
            if level > 1:
                self.decoder_bns.append(_batch_norm(f'decoder_{level}_batchnorm'))
        self.dropout = tf.keras.layers.Dropout(dropout, name='decoder_6_dropout')

    def call(self, inputs, training=None):
        """The U-Net on the [B,H,W,25] person representation (H, W multiples of 64).

        Returns {'mask': [B,H,W,1], 'image': [B,H,W,3]}, tanh in (-1, 1), float32. ``training``
        switches batch norm to batch statistics and turns decoder_6's dropout on.
        """
        x = self.encoder_convs[0](self.pads[0](inputs))
        skips = [x]
        for pad, conv_layer, bn in zip(self.pads[1:], self.encoder_convs[1:], self.encoder_bns):
            x = tf.nn.leaky_relu(x, alpha=0.2)
            x = bn(conv_layer(pad(x)), training=training)
            skips.append(x)
        for i, deconv in enumerate(self.decoder_deconvs):
            if i > 0:
                x = tf.concat([x, skips[-1 - i]], axis=-1)
            x = deconv(tf.nn.relu(x))
            if i < len(self.decoder_bns):
                x = self.decoder_bns[i](x, training=training)
            if i == 0:
                x = self.dropout(x, training=training)
        out = tf.tanh(tf.cast(x, tf.float32))  # float32 from here under a bfloat16 policy
        return {'mask': out[..., :1], 'image': out[..., 1:]}

    def build_for_inputs(self, height=256, width=192, batch=1):
        """Runs one zero batch so every weight exists (Keras builds subclassed models lazily);
        returns the model."""
        self(tf.zeros((batch, height, width, self.config.input_channels)), training=False)
        return self
