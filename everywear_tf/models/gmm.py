"""CP-VTON's geometric matching module (GMM), layer for layer (cp-vton networks.py GMM).

agnostic person [B,H,W,22] and cloth input [B,H,W,3|1] → two feature extractors (conv → ReLU → BN,
weights not shared) → L2 norm → correlation → regression (conv → BN → ReLU) → linear + tanh →
theta [B,50] → TPS grid [B,H,W,2]; then the cloth (RGB, border padding) and its mask (zeros
padding) are warped with the align_corners=True sampler.

The linear layer reads the regression features flattened in PyTorch's NCHW order, so converted
weights keep their meaning.
"""

import tensorflow as tf

from everywear_tf import configs
from everywear_tf.models import blocks
from everywear_tf.ops import correlation
from everywear_tf.ops import sampling
from everywear_tf.ops import tps


def _batch_norm(name, dtype=None):
    # torch BatchNorm2d: eps 1e-5, momentum 0.1 (Keras counts the other way).
    return tf.keras.layers.BatchNormalization(epsilon=1e-5, momentum=0.9,
                                              gamma_initializer=blocks.normal(1.0),
                                              name=name, dtype=dtype)


@tf.keras.utils.register_keras_serializable('everywear')
class Gmm(blocks.ConfiguredModel):
    """Inputs (agnostic, cloth_input, cloth, cloth_mask); outputs a dict.

    agnostic: [B,H,W,22] in [-1, 1]; cloth_input: the cloth branch's input (RGB in [-1, 1] for
    CP-VTON, the {0,1} mask for CP-VTON+); cloth: RGB [-1, 1] to warp; cloth_mask: [B,H,W,1] {0,1}.
    Outputs: theta [B,2N], grid [B,H,W,2], warped_cloth [B,H,W,3], warped_mask [B,H,W,1].
    """

    def __init__(self, variant=configs.CPVTON, ngf=64, grid_size=5, height=256, width=192,
                 agnostic_channels=22, **kwargs):
        super().__init__(**kwargs)
        self.config = configs.GmmConfig(variant=variant, ngf=ngf, grid_size=grid_size,
                                        height=height, width=width,
                                        agnostic_channels=agnostic_channels)
        self.extraction_a = self._extractor('extraction_a', ngf)
        self.extraction_b = self._extractor('extraction_b', ngf)
        # The regression head (3% of the FLOPs) stays float32 under a bfloat16 policy: theta
        # moves every warped pixel, so its error costs more than the head's time saves.
        self.regression = []
        for i, (filters, kernel) in enumerate(((8 * ngf, 4), (4 * ngf, 4), (2 * ngf, 3),
                                               (ngf, 3))):
            self.regression += blocks.conv(filters, kernel, 2 if kernel == 4 else 1,
                                           f'regression_conv{i}', padding=1,
                                           dtype=blocks.FLOAT32)
            self.regression += [_batch_norm(f'regression_bn{i}', blocks.FLOAT32),
                                tf.keras.layers.ReLU(name=f'regression_relu{i}',
                                                     dtype=blocks.FLOAT32)]
        self.linear = tf.keras.layers.Dense(2 * grid_size * grid_size, name='regression_linear',
                                            dtype=blocks.FLOAT32)

    @staticmethod
    def _extractor(prefix, ngf):
        layers = []
        widths = (ngf, 2 * ngf, 4 * ngf, 8 * ngf, 8 * ngf, 8 * ngf)
        for i, filters in enumerate(widths):
            kernel, stride = (4, 2) if i < 4 else (3, 1)
            layers += blocks.conv(filters, kernel, stride, f'{prefix}_conv{i}', padding=1,
                                  kernel_initializer=blocks.normal(0.0))
            layers.append(tf.keras.layers.ReLU(name=f'{prefix}_relu{i}'))
            if i < len(widths) - 1:
                layers.append(_batch_norm(f'{prefix}_bn{i}'))
        return layers

    def regress(self, agnostic, cloth_input, training=None):
        """theta [B, 2N]: x offsets of the control points, then y offsets."""
        # L2 norm and correlation stay float32 under a bfloat16 policy (the casts are no-ops
        # for float32 networks); the linear layer is pinned to float32 too.
        feature_a = correlation.feature_l2norm(
                tf.cast(blocks.apply(self.extraction_a, agnostic, training), tf.float32))
        feature_b = correlation.feature_l2norm(
                tf.cast(blocks.apply(self.extraction_b, cloth_input, training), tf.float32))
        x = correlation.feature_correlation(feature_a, feature_b)
        x = blocks.apply(self.regression, x, training)
        x = tf.reshape(tf.transpose(x, [0, 3, 1, 2]), [tf.shape(x)[0], -1])  # NCHW flatten
        return tf.tanh(self.linear(x))

    def call(self, inputs, training=None):
        """Regresses theta from (agnostic, cloth_input) and warps cloth and cloth_mask with it.

        Returns {'theta': [B,2N], 'grid': [B,H,W,2] normalised sampling coordinates (x, y),
        'warped_cloth': [B,H,W,3] (border padding), 'warped_mask': [B,H,W,1] (zeros padding)}.
        """
        agnostic, cloth_input, cloth, cloth_mask = inputs
        theta = self.regress(agnostic, cloth_input, training)
        grid = tps.cpvton_tps_grid(theta, self.config.height, self.config.width,
                                   self.config.grid_size)
        return {
                'theta': theta,
                'grid': grid,
                'warped_cloth': sampling.grid_sample(cloth, grid, sampling.BORDER),
                'warped_mask': sampling.grid_sample(cloth_mask, grid, sampling.ZEROS),
        }

    def build_for_inputs(self, batch=1):
        """Runs one zero batch so every weight exists (Keras builds subclassed models lazily)."""
        c = self.config
        frame = (batch, c.height, c.width)
        self((tf.zeros(frame + (c.agnostic_channels,)), tf.zeros(frame + (c.cloth_channels,)),
              tf.zeros(frame + (3,)), tf.zeros(frame + (1,))), training=False)
        return self
