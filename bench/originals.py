"""The originals' networks from the user's own checkouts, timed beside ours in the same run.

Nothing of theirs is in this repository: ``--originals_dir`` names a directory holding the
user's clones (``<dir>/VITON`` of xthan/VITON); the functions that define the networks are read
from those files (``ast``: only the named function definitions, not the training scripts'
flags and imports) and run under ``tf.compat.v1`` in a graph of their own, with random weights
at our full config's size.

VITON stage 2 (``model_zalando_tps_warp.create_refine_generator`` and ``utils.lrelu``) needs
``tensorflow.contrib.slim``, gone from TensorFlow 2: ``tf_slim`` (the same code, a PyPI
package) when it is installed, else ``_Slim`` below, which builds slim.conv2d + slim.layer_norm
with the ops slim's own code uses (convolution without bias, moments over (H, W, C) with
keep_dims, nn.batch_normalization with ε 1e-12 and per-channel β/γ; bias only without a
normalizer). The graph is the test script's (model_zalando_refine_test.py L129-140): the refiner
on [tps, coarse], α·mask, α·tps + (1 − α)·coarse, plus its tps_mask (L109), fed float32 and
fetched as numpy, one Session.run per call.
"""

import ast
import os

import numpy as np
import tensorflow as tf

VITON = 'VITON'
CPVTON = 'cp-vton'
VITON_STAGE2 = ('model_zalando_tps_warp.py', 'create_refine_generator')
VITON_LRELU = ('utils.py', 'lrelu')


def _function_source(path, name):
    """The source of the top-level ``def name`` in ``path`` (ValueError when it has none)."""
    with open(path) as f:
        text = f.read()
    for node in ast.parse(text, path).body:
        if isinstance(node, ast.FunctionDef) and node.name == name:
            return ast.get_source_segment(text, node)
    raise ValueError(f'{path}: no function {name!r}')


class _Slim:
    """slim.conv2d and slim.layer_norm as tf_slim builds them (only the arguments VITON's
    refiner passes)."""

    def __init__(self, v1):
        self.v1 = v1

    def layer_norm(self, inputs, scope=None):
        v1 = self.v1
        with v1.variable_scope(scope, 'LayerNorm'):
            channels = inputs.shape[-1]
            beta = v1.get_variable('beta', [channels], initializer=v1.zeros_initializer())
            gamma = v1.get_variable('gamma', [channels], initializer=v1.ones_initializer())
            mean, variance = v1.nn.moments(inputs, [1, 2, 3], keep_dims=True)
            return v1.nn.batch_normalization(inputs, mean, variance, offset=beta, scale=gamma,
                                             variance_epsilon=1e-12)

    def conv2d(self, inputs, num_outputs, kernel_size, rate=1, normalizer_fn=None,
               activation_fn=None, scope=None):
        v1 = self.v1
        with v1.variable_scope(scope, 'Conv'):
            shape = list(kernel_size) + [inputs.shape[-1], num_outputs]
            weights = v1.get_variable('weights', shape,
                                      initializer=v1.glorot_uniform_initializer())
            x = v1.nn.convolution(inputs, weights, 'SAME', dilation_rate=[rate, rate])
            if normalizer_fn is not None:
                x = normalizer_fn(x)
            else:
                biases = v1.get_variable('biases', [num_outputs],
                                         initializer=v1.zeros_initializer())
                x = v1.nn.bias_add(x, biases)
            return activation_fn(x) if activation_fn is not None else x


def _slim(v1):
    try:
        import tf_slim
        return tf_slim, 'tf_slim'
    except ImportError:
        return _Slim(v1), 'bench.originals._Slim (tf_slim not installed)'


def viton_stage2(checkout, batch, height=256, width=192, seed=0, weights=None):
    """VITON's stage-2 test graph from ``checkout`` (xthan/VITON), random weights, or
    ``weights`` ({their variable name: array}, e.g. our RM's through the converter's table) so
    that the outputs can be compared.

    Returns (call(tps, coarse, mask) → (tryon, alpha, tps_mask) numpy, a note on where its code
    came from). ``call`` runs one Session.run at ``batch``; the session lives as long as it.
    """
    v1 = tf.compat.v1
    slim, slim_name = _slim(v1)
    namespace = {'tf': v1, 'slim': slim}
    for filename, name in (VITON_LRELU, VITON_STAGE2):
        exec(compile(_function_source(os.path.join(checkout, filename), name),  # noqa: S102
                     os.path.join(checkout, filename), 'exec'), namespace)
    graph = tf.Graph()
    with graph.as_default():
        v1.set_random_seed(seed)
        tps = v1.placeholder(tf.float32, [batch, height, width, 3])
        coarse = v1.placeholder(tf.float32, [batch, height, width, 3])
        mask = v1.placeholder(tf.float32, [batch, height, width, 1])
        with v1.variable_scope('refine_generator'):
            alpha = namespace['create_refine_generator'](tps, coarse) * mask
            tryon = alpha * tps + (1 - alpha) * coarse
        tps_mask = v1.cast(v1.less(v1.reduce_sum(tps, -1), 3 * 0.95), tf.float32)
        init = v1.global_variables_initializer()
    session = v1.Session(graph=graph)
    session.run(init)
    if weights:
        with graph.as_default():
            variables = {v.op.name: v for v in v1.global_variables()}
        if set(variables) != set(weights):
            raise ValueError(f'VITON stage 2 has variables {sorted(variables)}, the weights '
                             f'{sorted(weights)}')
        with graph.as_default():
            for name, value in weights.items():
                variables[name].load(value, session)
    fetches = [tryon, alpha, tps_mask]

    def call(tps_value, coarse_value, mask_value):
        return session.run(fetches, {tps: tps_value, coarse: coarse_value, mask: mask_value})

    call.session = session
    return call, f'{checkout}: {VITON_STAGE2[0]}:{VITON_STAGE2[1]} with {slim_name}'


def rm_weights(model):
    """Our Rm's weights under VITON's names (the converter's stage-2 table, read backwards)."""
    from everywear_tf.convert import viton_tf1
    from everywear_tf.models import blocks
    ours = blocks.named_weights(model)
    return {rule.source: ours[rule.target].numpy() for rule in viton_tf1.stage2_table().rules}


def rm_inputs(batch, height=256, width=192, seed=0):
    """Random stage-2 inputs: (float32 tps, coarse in [-1, 1] and mask in {0, 1}, as VITON's
    test script feeds them; the same as uint8 for our signature)."""
    rng = np.random.default_rng(seed)
    tps_u8 = rng.integers(0, 256, (batch, height, width, 3), dtype=np.uint8)
    coarse_u8 = rng.integers(0, 256, (batch, height, width, 3), dtype=np.uint8)
    mask_u8 = (rng.uniform(size=(batch, height, width)) < 0.4).astype(np.uint8) * 255
    signed = lambda x: x.astype(np.float32) / 127.5 - 1  # noqa: E731
    return ((signed(tps_u8), signed(coarse_u8), mask_u8[..., None].astype(np.float32) / 255),
            {'warped_cloth': tps_u8, 'coarse': coarse_u8, 'mask': mask_u8})


def find(originals_dir):
    """{name: checkout} of the originals found under ``originals_dir`` (VITON: it holds
    model_zalando_tps_warp.py; cp-vton: networks.py), and {name: why not} for the missing."""
    found, missing = {}, {}
    checks = {VITON: VITON_STAGE2[0], CPVTON: 'networks.py'}
    for name, marker in checks.items():
        path = os.path.join(originals_dir, name)
        if os.path.isfile(os.path.join(path, marker)):
            found[name] = path
        else:
            missing[name] = f'no {os.path.join(path, marker)}'
    return found, missing
