"""tf.Module wrappers whose ``serving_default`` takes the compact inputs of ARCHITECTURE.md §3.

Each wrapper owns one network, builds that network's representation in the graph, runs it with
``training=False`` and returns uint8 images and masks (plus GMM's theta and grid) under the keys of
``spec.py``. The batch dimension is dynamic; the frame is 256×192.
"""

import functools

import tensorflow as tf

from everywear_tf import spec
from everywear_tf.data import representation
from everywear_tf.models import factory
from everywear_tf.ops import quantize


def input_signature(module):
    """TensorSpecs of a module's signature; the spec name is the input key."""
    return [tf.TensorSpec(spec.INPUT_SPECS[key][1], spec.INPUT_SPECS[key][0], name=key)
            for key in spec.MODULE_INPUTS[module]]


def gmm_outputs(model, person, parse, keypoints, cloth, cloth_mask):
    """GMM's signature outputs from its compact inputs: the agnostic person and cloth
    representations (of the model's variant) are built in the graph and the network run.

    Returns warped_cloth uint8 [B,256,192,3], warped_mask uint8 [B,256,192], theta float32 [B,50]
    and grid float32 [B,256,192,2].
    """
    variant = model.config.variant
    outputs = model((representation.gmm_agnostic(person, parse, keypoints, variant),
                     representation.gmm_cloth(cloth, cloth_mask, variant),
                     representation.to_signed(cloth),
                     representation.binary_cloth_mask(cloth_mask)), training=False)
    return {
            spec.WARPED_CLOTH: quantize.signed_to_uint8(outputs['warped_cloth']),
            spec.WARPED_MASK: quantize.unit_to_uint8(outputs['warped_mask'][..., 0]),
            spec.THETA: outputs['theta'],
            spec.GRID: outputs['grid'],
    }


def edm_outputs(model, person, parse, keypoints, cloth):
    """EDM's signature outputs from its compact inputs (the 25-channel input built in the graph):
    coarse uint8 [B,256,192,3] and mask uint8 [B,256,192]."""
    outputs = model(representation.edm_input(person, parse, keypoints, cloth), training=False)
    return {
            spec.COARSE: quantize.signed_to_uint8(outputs['image']),
            # The tanh mask clipped to [0, 1]; the original's test script min-max stretched it.
            spec.MASK: quantize.unit_to_uint8(outputs['mask'][..., 0]),
    }


def rm_outputs(model, warped_cloth, coarse, mask):
    """RM's signature outputs from the uint8 warped cloth, coarse person and clothing mask:
    tryon uint8 [B,256,192,3], alpha and tps_mask uint8 [B,256,192]."""
    outputs = model((representation.to_signed(warped_cloth), representation.to_signed(coarse),
                     quantize.uint8_to_unit(mask)[..., tf.newaxis]), training=False)
    return {
            spec.TRYON: quantize.signed_to_uint8(outputs['tryon']),
            spec.ALPHA: quantize.unit_to_uint8(outputs['alpha'][..., 0]),
            spec.TPS_MASK: quantize.unit_to_uint8(outputs['tps_mask']),
    }


_OUTPUTS = {spec.GMM: gmm_outputs, spec.EDM: edm_outputs, spec.RM: rm_outputs}


class ServingModule(tf.Module):
    """One network behind its serving signature."""

    def __init__(self, module, model):
        super().__init__(name=f'{module}_serving')
        expected = factory.MODEL_CLASSES[module]
        if not isinstance(model, expected):
            raise TypeError(f'{module} needs a {expected.__name__}, got {type(model).__name__}')
        if module == spec.GMM and (model.config.height, model.config.width) != spec.FRAME_SHAPE:
            raise ValueError(f'a served GMM must work on {spec.FRAME_SHAPE} frames, its config '
                             f'says {(model.config.height, model.config.width)}')
        self.module = module
        self.model = model
        outputs = _OUTPUTS[module]
        # A partial, not a lambda: tf.function counts retracing per code object, so lambdas of
        # separate modules (each traced once) would add up to false "retracing" warnings.
        self.serving_default = tf.function(functools.partial(outputs, self.model),
                                           input_signature=input_signature(module))

    def signatures(self):
        """The signatures to save with: ``{'serving_default': the traced serving function}``."""
        return {spec.SERVING_SIGNATURE: self.serving_default}


