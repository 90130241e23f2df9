"""VITON stage 2's refinement network (RM) and its composition.

[warped product(3), coarse person(3)] in [-1, 1] → three 3×3 convs without bias, each followed by
a per-sample layer norm (ε 1e-12, per-channel γ/β) and LeakyReLU 0.2 → 1×1 conv with bias →
sigmoid = α. α is restricted to the clothing mask, then
tryon = α·warped + (1 − α)·coarse.

The original resizes its input to 256×192 with area resampling first; at 256×192 that is the
identity, and other frame sizes (tests, lite demos) are refined at their own size.
"""

import tensorflow as tf

from everywear_tf import configs
from everywear_tf.models import blocks

TPS_MASK_THRESHOLD = 3 * 0.95


def tps_mask(warped):
    """model_zalando_refine_test.py L109, kept exactly: 1 where the warped product in [-1, 1]
    has an RGB sum below 2.85 (non-white garment), [B,H,W]. The original computes and never
    uses it; we return it as an output."""
    return tf.cast(tf.less(tf.reduce_sum(warped, -1), TPS_MASK_THRESHOLD), tf.float32)


@tf.keras.utils.register_keras_serializable('everywear')
class Rm(blocks.ConfiguredModel):
    """Inputs (warped [B,H,W,3], coarse [B,H,W,3], clothing_mask [B,H,W,1] in [0, 1]).

    Outputs dict: alpha (masked) [B,H,W,1], tryon [B,H,W,3], tps_mask [B,H,W].
    """

    def __init__(self, filters=64, input_channels=6, **kwargs):
        super().__init__(**kwargs)
        self.config = configs.RmConfig(filters=filters, input_channels=input_channels)
        self.convs, self.norms = [], []
        for i in range(1, 4):
            self.convs.append(tf.keras.layers.Conv2D(filters, 3, 1, 'same', use_bias=False,
                                                     name=f'g_256_conv{i}'))
            # Moments stay float32 under a bfloat16 policy, and so does everything after them
            # but the next 3×3 convolution (the 1×1 projection is pinned too).
            self.norms.append(blocks.InstanceLayerNorm(name=f'g_256_conv{i}_layernorm',
                                                       dtype=blocks.FLOAT32))
        self.final = tf.keras.layers.Conv2D(1, 1, 1, 'same', name='g_1024_final',
                                            dtype=blocks.FLOAT32)

    def alpha(self, warped, coarse, per_sample=False):
        """The unmasked composition mask, sigmoid output [B,H,W,1].

        ``per_sample``: one sample at a time (tf.map_fn, in order), the same numbers: each
        sample is normalised on its own anyway, and at full size a batch's activations
        (B×256×192×64 floats, 100 MB at batch 8) do not stay in cache between the layers, so
        batch 8 in one go took 1.4× the time of eight batch-1 passes on a 2-core AVX2 EPYC
        (bench/RESULTS.md). Inference only: training keeps the batched graph.
        """
        if per_sample:
            return tf.map_fn(lambda pair: self.alpha(pair[0][tf.newaxis],
                                                     pair[1][tf.newaxis])[0],
                             (warped, coarse), fn_output_signature=tf.float32,
                             parallel_iterations=1)
        x = tf.concat([warped, coarse], axis=-1)
        for conv_layer, norm in zip(self.convs, self.norms):
            x = tf.nn.leaky_relu(norm(conv_layer(x)), alpha=0.2)
        return tf.sigmoid(self.final(x))

    def call(self, inputs, training=None):
        """Composes the try-on from (warped [B,H,W,3], coarse [B,H,W,3], clothing_mask
        [B,H,W,1]).

        Returns {'alpha': α·clothing_mask [B,H,W,1], 'tryon': α·warped + (1 − α)·coarse
        [B,H,W,3], 'tps_mask': [B,H,W]}. No batch norm or dropout: ``training`` only chooses
        the batched graph (training) or one sample at a time (inference, see ``alpha``).
        """
        warped, coarse, clothing_mask = inputs
        alpha = self.alpha(warped, coarse, per_sample=not training) * clothing_mask
        return {
                'alpha': alpha,
                'tryon': alpha * warped + (1.0 - alpha) * coarse,
                'tps_mask': tps_mask(warped),
        }

    def build_for_inputs(self, height=256, width=192, batch=1):
        """Runs one zero batch so every weight exists (Keras builds subclassed models lazily);
        returns the model."""
        frame = (batch, height, width)
        self((tf.zeros(frame + (3,)), tf.zeros(frame + (3,)), tf.zeros(frame + (1,))))
        return self
