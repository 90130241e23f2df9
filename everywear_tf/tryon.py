"""GMM → EDM → RM on 256×192 frames, in process.

Each stage runs the very function its SavedModel signature runs (export/modules.py), with uint8
between stages, so in-process results equal a TF Serving round trip.
"""

import numpy as np
import tensorflow as tf

from everywear_tf import composition
from everywear_tf import spec
from everywear_tf.export import modules


class Tryon:
    """The three networks of one category, each behind a compiled signature function."""

    def __init__(self, category, gmm, edm, rm):
        if category not in spec.CATEGORIES:
            raise ValueError(f'unknown category {category!r}; expected one of {spec.CATEGORIES}')
        self.category = category
        self.functions = {module: modules.ServingModule(module, model).serving_default
                          for module, model in ((spec.GMM, gmm), (spec.EDM, edm), (spec.RM, rm))}

    def run_module(self, module, inputs):
        """One module on numpy inputs keyed like its signature → numpy outputs."""
        args = [tf.constant(inputs[key]) for key in spec.MODULE_INPUTS[module]]
        return {key: value.numpy() for key, value in self.functions[module](*args).items()}

    def __call__(self, inputs):
        """inputs: the GMM signature's keys (batch first). Returns every stage's outputs."""
        gmm = self.run_module(spec.GMM, inputs)
        edm = self.run_module(spec.EDM, inputs)
        mask = composition.clothing_mask(self.category, edm[spec.MASK], gmm[spec.WARPED_MASK])
        rm = self.run_module(spec.RM, {spec.WARPED_CLOTH: gmm[spec.WARPED_CLOTH],
                                       spec.COARSE: edm[spec.COARSE], spec.MASK: mask})
        return {**gmm, spec.COARSE: edm[spec.COARSE], spec.EDM_MASK: edm[spec.MASK],
                spec.CLOTHING_MASK: mask, **rm}
