"""Benchmark and comparison inputs: the bundled demo frames in the signatures' layout."""


import numpy as np

from everywear_tf import demo
from everywear_tf import spec
from everywear_tf.data import images
from everywear_tf.data import keypoints as keypoint_files
from everywear_tf.data import parsing

# The demo garment of each category: (image, mask).
GARMENTS = {spec.MEN_TSHIRTS: (demo.TSHIRT, demo.TSHIRT_MASK),
            spec.MEN_LONG: (demo.LONG_SLEEVE, demo.LONG_SLEEVE_MASK),
            spec.MEN_PANTS: (demo.PANTS, demo.PANTS_MASK)}


def demo_inputs(category, batch=1):
    """The demo person and the category's demo garment as GMM signature inputs (batch first),
    the same item repeated ``batch`` times."""
    person = images.read_image(demo.PERSON, spec.FRAME_SHAPE)
    parse = parsing.read_parse(demo.PERSON_PARSE, spec.FRAME_SHAPE)
    points = keypoint_files.to_signature(keypoint_files.read_keypoints(demo.PERSON_POSE))
    cloth_path, mask_path = GARMENTS[category]
    item = {spec.PERSON: person, spec.PARSE: parse.astype(np.uint8), spec.KEYPOINTS: points,
            spec.CLOTH: images.read_image(cloth_path, spec.FRAME_SHAPE),
            spec.CLOTH_MASK: images.read_mask(mask_path, spec.FRAME_SHAPE)}
    return repeat(item, batch)


def repeat(item, batch):
    """{key: array} of one item → the same item ``batch`` times along a new first axis."""
    return {key: np.repeat(np.asarray(value)[np.newaxis], batch, axis=0).astype(
            spec.INPUT_SPECS[key][0]) for key, value in item.items()}


def module_inputs(module, chain_inputs, outputs=None):
    """A module's signature inputs from the try-on inputs (and, for RM, the chain's outputs)."""
    if module != spec.RM:
        return {key: chain_inputs[key] for key in spec.MODULE_INPUTS[module]}
    return {spec.WARPED_CLOTH: outputs[spec.WARPED_CLOTH], spec.COARSE: outputs[spec.COARSE],
            spec.MASK: outputs[spec.CLOTHING_MASK]}
