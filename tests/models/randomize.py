"""Random weights with realistic scales, so reference comparisons exercise every weight."""

import numpy as np

from everywear_tf.models import blocks


def randomize(model, seed):
    """Assigns random values to every weight; returns {path: float64 array} of what was set."""
    rng = np.random.default_rng(seed)
    values = {}
    for path, variable in blocks.named_weights(model).items():
        shape = tuple(variable.shape)
        short = path.split('/')[-1]
        if short == 'kernel':
            fan_in = int(np.prod(shape[:-1])) if 'deconv' not in path else int(
                np.prod(shape[:2]) * shape[3])
            value = rng.normal(0.0, 1.0 / np.sqrt(fan_in), shape)
        elif short in ('gamma', 'moving_variance'):
            value = rng.uniform(0.5, 1.5, shape)
        else:  # bias, beta, moving_mean
            value = rng.normal(0.0, 0.1, shape)
        variable.assign(value.astype(np.float32))
        values[path] = value.astype(np.float32).astype(np.float64)
    return values
