"""The one place that turns a config into a network."""

from everywear_tf import configs
from everywear_tf.models import edm
from everywear_tf.models import gmm
from everywear_tf.models import rm

_MODELS = {configs.GmmConfig: gmm.Gmm, configs.EdmConfig: edm.Edm, configs.RmConfig: rm.Rm}


def build(config, name=None, built=True):
    """A Keras model for ``config``; with ``built`` every weight exists on return."""
    cls = _MODELS.get(type(config))
    if cls is None:
        raise TypeError(f'not a network config: {config!r}')
    model = cls(**configs.to_dict(config), **({'name': name} if name else {}))
    return model.build_for_inputs() if built else model
