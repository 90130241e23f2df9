"""tf.Module wrappers whose ``serving_default`` takes the compact inputs of ARCHITECTURE.md §3.

Each wrapper owns one network, builds that network's representation in the graph, runs it with
``training=False`` and returns uint8 images and masks (plus GMM's theta and grid) under the keys of
``spec.py``. The batch dimension is dynamic; the frame is 256×192. A second signature,
``encoded``, takes the uint8 images as PNG/JPEG files and answers them as PNG files (spec.py's
``encoded_key``); it runs the same function between the decode and the encode.

``CategoryModule`` is a category's one-call model: GMM → EDM → category rule → RM in one graph,
uint8 between the stages exactly as between three served modules, so its outputs equal the
three-call chain's.
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


def clothing_mask(category, edm_mask, warped_mask):
    """The category rule in the graph (inference/categories.py's ``clothing_mask``): for t-shirts
    EDM's mask united with GMM's warped mask ≥ 100/255, else EDM's mask; uint8 [B,256,192]."""
    if spec.check_category(category) != spec.MEN_TSHIRTS:
        return edm_mask
    gmm_mask = tf.where(warped_mask >= spec.GMM_MASK_THRESHOLD, tf.constant(255, tf.uint8),
                        tf.constant(0, tf.uint8))
    return tf.maximum(edm_mask, gmm_mask)


def chain_outputs(category, gmm, edm, rm, person, parse, keypoints, cloth, cloth_mask):
    """The category model's outputs (spec.MODULE_OUTPUTS[CATEGORY_MODEL]): each stage's
    signature function on the uint8 outputs of the one before, as the three-call chain runs."""
    warped = gmm_outputs(gmm, person, parse, keypoints, cloth, cloth_mask)
    coarse = edm_outputs(edm, person, parse, keypoints, cloth)
    mask = clothing_mask(category, coarse[spec.MASK], warped[spec.WARPED_MASK])
    final = rm_outputs(rm, warped[spec.WARPED_CLOTH], coarse[spec.COARSE], mask)
    return {**{key: warped[key] for key in (spec.WARPED_CLOTH, spec.WARPED_MASK, spec.THETA)},
            spec.COARSE: coarse[spec.COARSE],
            spec.EDM_MASK: coarse[spec.MASK], spec.CLOTHING_MASK: mask, **final}


def encoded_input_signature(module):
    """TensorSpecs of the ``encoded`` signature: string [B] for each uint8 image input."""
    return [tf.TensorSpec((None,), tf.string, name=spec.encoded_key(key))
            if spec.encoded_key(key) != key else
            tf.TensorSpec(spec.INPUT_SPECS[key][1], spec.INPUT_SPECS[key][0], name=key)
            for key in spec.MODULE_INPUTS[module]]


def decode_frames(key, files):
    """string [B] PNG/JPEG files → uint8 [B,256,192,3] (images) or [B,256,192] (masks, label
    maps: PNG only). A file of another size fails the call with the tensor's name."""
    _, shape = spec.INPUT_SPECS[key]
    channels = 3 if len(shape) == 4 else 1
    lossless = key in spec.LOSSLESS_INPUTS

    def decode(data):
        if lossless:
            return tf.io.decode_png(data, channels=channels)
        return tf.io.decode_image(data, channels=channels, expand_animations=False)

    images = tf.map_fn(decode, files, fn_output_signature=tf.TensorSpec(
            (None, None, channels), tf.uint8))
    check = tf.debugging.assert_equal(tf.shape(images)[1:3], tf.constant(spec.FRAME_SHAPE),
                                      message=f'{spec.encoded_key(key)}: every file must be a '
                                              f'{spec.IMAGE_HEIGHT}x{spec.IMAGE_WIDTH} image')
    with tf.control_dependencies([check]):  # its message before EnsureShape's
        images = tf.ensure_shape(tf.identity(images), (None,) + spec.FRAME_SHAPE + (channels,))
    return images if channels == 3 else images[..., 0]


def encode_frames(images):
    """uint8 [B,H,W,3] or [B,H,W] → string [B] of PNG files (lossless; fastest compression)."""
    if images.shape.rank == 3:
        images = images[..., tf.newaxis]
    return tf.map_fn(lambda image: tf.io.encode_png(image, compression=1), images,
                     fn_output_signature=tf.TensorSpec((), tf.string))


def encoded(outputs_of, module):
    """The ``encoded`` signature's function around ``outputs_of`` (a function of the compact
    inputs, in signature order): files decoded, run, uint8 outputs encoded, GMM's grid left out."""
    keys = spec.MODULE_INPUTS[module]

    def run(*args):
        decoded = [decode_frames(key, value) if spec.encoded_key(key) != key else value
                   for key, value in zip(keys, args)]
        outputs = outputs_of(*decoded)
        return {spec.encoded_key(key): encode_frames(outputs[key])
                if spec.encoded_key(key) != key else outputs[key]
                for key in spec.MODULE_OUTPUTS[module] if key != spec.GRID}

    return tf.function(run, input_signature=encoded_input_signature(module))


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
        self.encoded = encoded(functools.partial(outputs, self.model), module)

    def signatures(self):
        """The signatures to save with: ``serving_default`` (uint8 tensors) and ``encoded``
        (PNG/JPEG files)."""
        return {spec.SERVING_SIGNATURE: self.serving_default,
                spec.ENCODED_SIGNATURE: self.encoded}


class CategoryModule(tf.Module):
    """A category's three networks behind one pair of signatures (``tryon_<category>``)."""

    def __init__(self, category, gmm, edm, rm):
        super().__init__(name=f'{spec.CATEGORY_MODEL}_{spec.check_category(category)}_serving')
        for module, model in ((spec.GMM, gmm), (spec.EDM, edm), (spec.RM, rm)):
            ServingModule(module, model)  # the same checks as the modules' own exports
        self.category, self.gmm, self.edm, self.rm = category, gmm, edm, rm
        outputs = functools.partial(chain_outputs, category, gmm, edm, rm)
        self.serving_default = tf.function(outputs,
                                           input_signature=input_signature(spec.CATEGORY_MODEL))
        self.encoded = encoded(outputs, spec.CATEGORY_MODEL)

    def signatures(self):
        """``serving_default`` (uint8 tensors) and ``encoded`` (PNG/JPEG files)."""
        return {spec.SERVING_SIGNATURE: self.serving_default,
                spec.ENCODED_SIGNATURE: self.encoded}


