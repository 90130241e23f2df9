"""The one place that turns a config into a network."""

import contextlib
import threading

import tensorflow as tf

from everywear_tf import configs
from everywear_tf import spec
from everywear_tf.models import blocks
from everywear_tf.models import edm
from everywear_tf.models import gmm
from everywear_tf.models import rm

# The network class of each module (configs owns module → config class).
MODEL_CLASSES = {spec.GMM: gmm.Gmm, spec.EDM: edm.Edm, spec.RM: rm.Rm}

FLOAT32 = 'float32'
BFLOAT16 = 'bfloat16'
PRECISIONS = (FLOAT32, BFLOAT16)
# Keras policy per precision: variables stay float32 in both, only the compute dtype changes.
_POLICIES = {FLOAT32: 'float32', BFLOAT16: 'mixed_bfloat16'}
_POLICY_LOCK = threading.Lock()


@contextlib.contextmanager
def _global_policy(name):
    """Keras reads the global policy when a layer is created; the networks create theirs in
    their constructors, so building under the policy is what sets every sublayer's."""
    with _POLICY_LOCK:
        previous = tf.keras.mixed_precision.global_policy()
        tf.keras.mixed_precision.set_global_policy(name)
        try:
            yield
        finally:
            tf.keras.mixed_precision.set_global_policy(previous)


def check_precision(precision):
    """``precision`` itself if it is 'float32' or 'bfloat16', else ValueError."""
    if precision not in PRECISIONS:
        raise ValueError(f'precision must be one of {PRECISIONS}, got {precision!r}')
    return precision


def build(config, name=None, built=True, precision=FLOAT32):
    """A Keras model for ``config``; with ``built`` every weight exists on return.

    ``precision='bfloat16'`` builds the same network (the same float32 variables, so float32
    weights load unchanged) whose convolutions compute in bfloat16 (Keras mixed precision); the
    networks keep their inputs, outputs and the steps listed in BUILD.md §12 in float32.
    """
    cls = MODEL_CLASSES[configs.module_of(config)]
    with _global_policy(_POLICIES[check_precision(precision)]):
        model = cls(**configs.to_dict(config), **({'name': name} if name else {}))
    return model.build_for_inputs() if built else model


def module_for(model) -> str:
    """The spec module name ('gmm', 'edm', 'rm') a network serves as."""
    for module, cls in MODEL_CLASSES.items():
        if isinstance(model, cls):
            return module
    raise TypeError(f'not a network: {type(model).__name__}')


def precision_of(model):
    """'float32' or 'bfloat16': what the network's convolutions compute in."""
    for layer in model.layers:
        if isinstance(layer, tf.keras.layers.Conv2D):
            return BFLOAT16 if layer.compute_dtype == 'bfloat16' else FLOAT32
    raise TypeError(f'{type(model).__name__} has no convolution')


def with_precision(model, precision):
    """``model`` itself if it computes in ``precision``, else a twin that does, holding copies of
    its weights (matched by path; the variables are the same in both)."""
    if precision_of(model) == check_precision(precision):
        return model
    twin = build(model.config, name=model.name, precision=precision)
    source, target = blocks.named_weights(model), blocks.named_weights(twin)
    if source.keys() != target.keys():
        raise ValueError(f'{model.name}: the {precision} twin has other weights: '
                         f'{sorted(source.keys() ^ target.keys())}')
    for path, variable in target.items():
        variable.assign(source[path])
    return twin
