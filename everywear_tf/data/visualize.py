"""Viewable uint8 images of the person representations, for the demo and for debugging data."""

import os

import numpy as np

from everywear_tf import spec
from everywear_tf.data import cloth_mask
from everywear_tf.data import images
from everywear_tf.data import keypoints
from everywear_tf.data import lip
from everywear_tf.data import parsing
from everywear_tf.data import representation

_PALETTE = np.array(lip.PALETTE + ((255, 255, 255),), np.uint8)


def _unit_to_uint8(x):
    """[0, 1] float to uint8, rounding as the rest of the package does."""
    return np.clip(np.round(np.asarray(x, np.float64) * 255.0), 0, 255).astype(np.uint8)


def _signed_to_uint8(x):
    return _unit_to_uint8((np.asarray(x, np.float64) + 1.0) / 2.0)


def colour_parse(parse):
    """LIP label map [H,W] to its palette colours [H,W,3]; labels past the palette show white."""
    return _PALETTE[np.minimum(parse, len(_PALETTE) - 1)]


def representation_images(person, parse, pose, cloth, mask):
    """Every channel group of both representations of one item, as named uint8 images.

    Args:
      person: uint8 [H,W,3] person image.
      parse: uint8 [H,W] LIP label map of the person.
      pose: float32 [18,2] keypoints in frame pixels, negative = missing.
      cloth: uint8 [H,W,3] product image.
      mask: uint8 [H,W] cloth mask.

    Returns:
      dict name -> uint8 image ([H,W] or [H,W,3]); pose maps show all 18 squares at once.
    """
    batch = [np.asarray(a)[np.newaxis] for a in (person, parse, pose, cloth, mask)]
    person_b, parse_b, keypoints_b, cloth_b, mask_b = batch
    agnostic = representation.gmm_agnostic(person_b, parse_b, keypoints_b).numpy()[0]
    agnostic_plus = representation.gmm_agnostic(
        person_b, parse_b, keypoints_b, variant=representation.CPVTON_PLUS).numpy()[0]
    cloth_plus = representation.gmm_cloth(cloth_b, mask_b, representation.CPVTON_PLUS).numpy()[0]
    edm = representation.edm_input(person_b, parse_b, keypoints_b, cloth_b).numpy()[0]
    return {
        'parse': colour_parse(parse),
        'gmm_shape': _signed_to_uint8(agnostic[..., 0]),
        'gmm_head': _signed_to_uint8(agnostic[..., 1:4]),
        'gmm_head_cpvton_plus': _signed_to_uint8(agnostic_plus[..., 1:4]),
        'gmm_pose': _signed_to_uint8(agnostic[..., 4:].max(axis=-1)),
        'gmm_cloth_mask_cpvton_plus': _unit_to_uint8(cloth_plus[..., 0]),
        'edm_product': _signed_to_uint8(edm[..., :3]),
        'edm_body': _unit_to_uint8(edm[..., 3]),
        'edm_head': _signed_to_uint8(edm[..., 4:7]),
        'edm_pose': _unit_to_uint8(edm[..., 7:].max(axis=-1)),
    }


def contact_sheet(images, columns=5):
    """Tiles same-sized images (grey or RGB) into one RGB sheet, row by row."""
    tiles = [np.repeat(im[..., None], 3, axis=-1) if im.ndim == 2 else im for im in images]
    height, width = tiles[0].shape[:2]
    rows = -(-len(tiles) // columns)
    sheet = np.full((rows * height, columns * width, 3), 255, np.uint8)
    for i, tile in enumerate(tiles):
        r, c = divmod(i, columns)
        sheet[r * height:(r + 1) * height, c * width:(c + 1) * width] = tile
    return sheet


def write_representation_maps(output_dir, person_path, parse_path, pose_path, cloth_path,
                              cloth_mask_path=None, log=None):
    """Reads one person and garment, writes every representation image plus a contact sheet.

    Returns the written paths. Bad inputs raise the readers' typed errors before anything is
    written; each PNG is written atomically.
    """
    log = log or (lambda message: None)
    person = images.read_image(person_path, expected_size=spec.FRAME_SHAPE)
    parse = parsing.read_parse(parse_path, image_size=spec.FRAME_SHAPE)
    pose = keypoints.to_signature(keypoints.read_keypoints(pose_path))
    cloth = images.read_image(cloth_path, expected_size=spec.FRAME_SHAPE)
    if cloth_mask_path:
        mask = images.read_mask(cloth_mask_path, expected_size=spec.FRAME_SHAPE)
    else:
        mask = cloth_mask.compute_cloth_mask(cloth)
    log(f'read {person_path}, {parse_path}, {pose_path}, {cloth_path}')
    named = representation_images(person, parse, pose, cloth, mask)
    named = {'person': person, 'cloth': cloth, 'cloth_mask': mask, **named}
    written = []
    for name, image in named.items():
        path = os.path.join(output_dir, f'{name}.png')
        images.write_png(path, image)
        written.append(path)
    sheet = os.path.join(output_dir, 'contact_sheet.png')
    images.write_png(sheet, contact_sheet(list(named.values())))
    written.append(sheet)
    log(f'wrote {sheet}')
    return written
