"""GMM → EDM → category rule → RM on 256×192 frames: the one implementation of the chain.

``run_chain`` takes any way of running one module (in process, a loaded SavedModel, a server), so
every backend makes the same try-on. ``Chain`` runs the three networks of one category in this
process, each behind the very function its SavedModel signature runs (export/modules.py), with
uint8 between stages, so in-process results equal a TF Serving round trip.
"""

from collections.abc import Callable
from concurrent import futures

import tensorflow as tf

from everywear_tf import spec
from everywear_tf.export import modules
from everywear_tf.inference import categories

# run_module(module, inputs) → outputs, numpy in and out, keyed like the module's signature.
RunModule = Callable[[str, dict], dict]
# submit(function, *args) → a future (e.g. ThreadPoolExecutor.submit).
Submit = Callable[..., futures.Future]


def run_chain(run_module: RunModule, category: str, inputs: dict,
              submit: Submit | None = None) -> dict:
    """Every stage's outputs for a batch of frames.

    Args:
        run_module: runs one module on numpy inputs keyed like its signature.
        category: one of spec.CATEGORIES (chooses the category rule).
        inputs: the GMM signature's keys, batch first.
        submit: when given, EDM is submitted through it and runs while GMM runs in the calling
            thread (they are independent; a server then computes one while the other's answer
            travels). The outputs are the same either way.

    Returns:
        GMM's, EDM's (``coarse``, ``edm_mask``) and RM's outputs, and the ``clothing_mask`` RM was
        given.
    """
    spec.check_category(category)
    edm_inputs = {key: inputs[key] for key in spec.MODULE_INPUTS[spec.EDM]}
    pending = submit(run_module, spec.EDM, edm_inputs) if submit is not None else None
    gmm = run_module(spec.GMM, {key: inputs[key] for key in spec.MODULE_INPUTS[spec.GMM]})
    edm = pending.result() if pending is not None else run_module(spec.EDM, edm_inputs)
    mask = categories.clothing_mask(category, edm[spec.MASK], gmm[spec.WARPED_MASK])
    rm = run_module(spec.RM, {spec.WARPED_CLOTH: gmm[spec.WARPED_CLOTH],
                              spec.COARSE: edm[spec.COARSE], spec.MASK: mask})
    return {**gmm, spec.COARSE: edm[spec.COARSE], spec.EDM_MASK: edm[spec.MASK],
            spec.CLOTHING_MASK: mask, **rm}


class Chain:
    """The three networks of one category in this process, each behind a signature function."""

    def __init__(self, category: str, functions: dict):
        """``functions``: {module: a function taking that module's signature inputs as
        keyword tensors and returning its outputs}."""
        self.category = spec.check_category(category)
        self.functions = functions

    @classmethod
    def from_models(cls, category: str, gmm: tf.keras.Model, edm: tf.keras.Model,
                    rm: tf.keras.Model) -> 'Chain':
        """The chain over Keras networks, each traced behind its serving signature."""
        return cls(category, {module: modules.ServingModule(module, model).serving_default
                              for module, model in ((spec.GMM, gmm), (spec.EDM, edm),
                                                    (spec.RM, rm))})

    @classmethod
    def from_saved_models(cls, category: str, directories: dict) -> 'Chain':
        """The chain over exported SavedModels ({module: version directory}), loaded here."""
        return cls(category, {module: tf.saved_model.load(directories[module]).signatures[
                spec.SERVING_SIGNATURE] for module in spec.MODULES})

    def run_module(self, module: str, inputs: dict) -> dict:
        """One module on numpy inputs keyed like its signature → numpy outputs."""
        args = {key: tf.constant(inputs[key]) for key in spec.MODULE_INPUTS[module]}
        return {key: value.numpy() for key, value in self.functions[module](**args).items()}

    def __call__(self, inputs: dict) -> dict:
        """inputs: the GMM signature's keys (batch first). Returns every stage's outputs."""
        return run_chain(self.run_module, self.category, inputs)


class CategoryModel:
    """A category's one-call model (``tryon_<category>``, export/modules.py's CategoryModule)
    in this process: the whole chain in one graph, the same outputs as ``run_chain`` over the
    three modules (but GMM's grid)."""

    def __init__(self, function):
        """``function``: the model's serving signature (or CategoryModule.serving_default)."""
        self.function = function

    @classmethod
    def from_saved_model(cls, directory: str) -> 'CategoryModel':
        """The exported version directory of ``tryon_<category>``, loaded here."""
        saved = tf.saved_model.load(directory)
        model = cls(saved.signatures[spec.SERVING_SIGNATURE])
        model.saved = saved  # the signature needs its SavedModel alive
        return model

    def __call__(self, inputs: dict) -> dict:
        """inputs: the GMM signature's keys (batch first). Returns the chain's outputs."""
        args = {key: tf.constant(inputs[key]) for key in spec.MODULE_INPUTS[spec.CATEGORY_MODEL]}
        return {key: value.numpy() for key, value in self.function(**args).items()}
