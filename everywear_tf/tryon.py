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
        self._init(category, {module: modules.ServingModule(module, model).serving_default
                              for module, model in ((spec.GMM, gmm), (spec.EDM, edm),
                                                    (spec.RM, rm))})

    def _init(self, category, functions):
        if category not in spec.CATEGORIES:
            raise ValueError(f'unknown category {category!r}; expected one of {spec.CATEGORIES}')
        self.category = category
        self.functions = functions

    @classmethod
    def from_saved_models(cls, category, directories):
        """The chain over exported SavedModels ({module: version directory}), loaded here."""
        chain = cls.__new__(cls)
        chain._init(category, {module: tf.saved_model.load(directories[module]).signatures[
                spec.SERVING_SIGNATURE] for module in spec.MODULES})
        return chain

    def run_module(self, module, inputs):
        """One module on numpy inputs keyed like its signature → numpy outputs."""
        args = {key: tf.constant(inputs[key]) for key in spec.MODULE_INPUTS[module]}
        return {key: value.numpy() for key, value in self.functions[module](**args).items()}

    def __call__(self, inputs):
        """inputs: the GMM signature's keys (batch first). Returns every stage's outputs."""
        return chain(self.run_module, self.category, inputs)


def chain(run_module, category, inputs):
    """GMM → EDM → category rule → RM with ``run_module(module, inputs) → outputs`` (numpy in
    and out), so any way of running a module (in process, a loaded SavedModel, a server) makes
    the same try-on."""
    gmm = run_module(spec.GMM, {key: inputs[key] for key in spec.MODULE_INPUTS[spec.GMM]})
    edm = run_module(spec.EDM, {key: inputs[key] for key in spec.MODULE_INPUTS[spec.EDM]})
    mask = composition.clothing_mask(category, edm[spec.MASK], gmm[spec.WARPED_MASK])
    rm = run_module(spec.RM, {spec.WARPED_CLOTH: gmm[spec.WARPED_CLOTH],
                              spec.COARSE: edm[spec.COARSE], spec.MASK: mask})
    return {**gmm, spec.COARSE: edm[spec.COARSE], spec.EDM_MASK: edm[spec.MASK],
            spec.CLOTHING_MASK: mask, **rm}
