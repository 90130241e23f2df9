"""The fixed inputs torch's theta fixtures were computed on, shared with the tests (no torch)."""

import numpy as np

NGF, HEIGHT, WIDTH = 4, 128, 64


def inputs(channels):
    """(agnostic, cloth) NCHW float32, batch 2, from a seed per cloth-branch width."""
    rng = np.random.default_rng(channels)
    return (rng.uniform(-1, 1, (2, 22, HEIGHT, WIDTH)).astype(np.float32),
            rng.uniform(-1, 1, (2, channels, HEIGHT, WIDTH)).astype(np.float32))
