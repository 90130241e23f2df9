"""Person representations, built in the graph from the compact signature inputs.

One TF function per original, used alike by training, export and tests, because converted weights
only work on the inputs they were trained on (ARCHITECTURE.md §3):

- ``gmm_agnostic``: CP-VTON's 22-channel cloth-agnostic person (cp_dataset.py), or the CP-VTON+
  variant, all channels in [-1, 1].
- ``gmm_cloth``: the GMM cloth-branch input: RGB in [-1, 1] (CP-VTON) or the binarised mask
  (CP-VTON+).
- ``edm_input``: VITON stage 1's 25-channel input (utils.py, model_zalando_mask_content.py).

Inputs are batched: person/cloth uint8 [B,H,W,3], parse and cloth_mask uint8 [B,H,W], keypoints
float32 [B,18,2] in frame pixels with negative = missing.
"""

import tensorflow as tf

from everywear_tf import configs
from everywear_tf.data import lip
from everywear_tf.ops import resize

CPVTON = configs.CPVTON
CPVTON_PLUS = configs.CPVTON_PLUS
GMM_VARIANTS = configs.GMM_VARIANTS

POSE_RADIUS = 5  # an 11x11 square per keypoint in both originals
GMM_AGNOSTIC_CHANNELS = 22
EDM_INPUT_CHANNELS = 25

# CP-VTON blurs the body shape through 1/16 of the frame; VITON through a fixed 16x12.
_CPVTON_SHAPE_FACTOR = 16
_VITON_BODY_SIZE = (16, 12)


def to_signed(image):
    """uint8 [0, 255] to float32 [-1, 1], as both originals normalise images."""
    return tf.cast(image, tf.float32) / 127.5 - 1.0


def label_mask(parse, labels):
    """float32 [B,H,W,1]: 1 where the LIP label is one of ``labels``."""
    parse = tf.cast(parse, tf.int32)[..., tf.newaxis]
    hits = [tf.equal(parse, label) for label in labels]
    return tf.cast(tf.reduce_any(tf.stack(hits, axis=0), axis=0), tf.float32)


def pose_squares(keypoints, height, width, min_coordinate):
    """bool [B,H,W,K]: an 11x11 square at each keypoint, nothing for missing ones.

    Both originals truncate the coordinates to integers and fill rows/columns
    [int(v) - 5, int(v) + 5] clipped to the frame. Only the rule for "missing" differs: CP-VTON
    draws a point when x > 1 and y > 1 (``min_coordinate=1``, strict), VITON when the point is not
    negative (``min_coordinate=None``; ARCHITECTURE.md §3 marks missing points negative).
    """
    keypoints = tf.convert_to_tensor(keypoints, tf.float32)
    x, y = keypoints[..., 0], keypoints[..., 1]
    if min_coordinate is None:
        valid = tf.logical_and(x >= 0.0, y >= 0.0)
    else:
        valid = tf.logical_and(x > min_coordinate, y > min_coordinate)
    valid = tf.logical_and(valid, tf.logical_and(tf.math.is_finite(x), tf.math.is_finite(y)))
    # Clip before the cast so that far-away points cannot overflow int32.
    xi = tf.cast(tf.clip_by_value(x, -1e6, 1e6), tf.int32)[..., tf.newaxis]
    yi = tf.cast(tf.clip_by_value(y, -1e6, 1e6), tf.int32)[..., tf.newaxis]
    cols = tf.range(width)[tf.newaxis, tf.newaxis, :]
    rows = tf.range(height)[tf.newaxis, tf.newaxis, :]
    in_x = tf.logical_and(cols >= xi - POSE_RADIUS, cols <= xi + POSE_RADIUS)  # [B,K,W]
    in_y = tf.logical_and(rows >= yi - POSE_RADIUS, rows <= yi + POSE_RADIUS)  # [B,K,H]
    squares = tf.logical_and(in_y[:, :, :, tf.newaxis], in_x[:, :, tf.newaxis, :])
    squares = tf.logical_and(squares, valid[:, :, tf.newaxis, tf.newaxis])
    return tf.transpose(squares, [0, 2, 3, 1])


def _frame_size(image):
    shape = tf.shape(image)
    static = image.shape
    height = static[1] if static[1] is not None else shape[1]
    width = static[2] if static[2] is not None else shape[2]
    return height, width


def cpvton_shape(parse, silhouette_labels=None):
    """CP-VTON's blurred body shape in [-1, 1], [B,H,W,1].

    ``parse > 0`` as an 8-bit image, resized with Pillow's bilinear filter to 1/16 of the frame
    and back (cp_dataset.py), each resize rounding to uint8 as Pillow does.
    """
    if silhouette_labels is None:
        body = tf.cast(parse > 0, tf.float32)[..., tf.newaxis]
    else:
        body = label_mask(parse, silhouette_labels)
    height, width = parse.shape[1], parse.shape[2]
    if height is None or width is None:
        raise ValueError(f'cpvton_shape needs static frame sizes, got parse shape {parse.shape}')
    small = (height // _CPVTON_SHAPE_FACTOR, width // _CPVTON_SHAPE_FACTOR)
    blurred = resize.pil_resize_bilinear_uint8(body * 255.0, small)
    blurred = resize.pil_resize_bilinear_uint8(blurred, (height, width))
    return (blurred / 255.0 - 0.5) / 0.5


def gmm_agnostic(person, parse, keypoints, variant=CPVTON):
    """CP-VTON's cloth-agnostic person: shape(1) + head RGB(3) + pose(18), float32 in [-1, 1].

    Head: the person's RGB on the head labels ({1,2,4,13}; CP-VTON+ drops hair), -1 elsewhere.
    Pose: +1 inside each keypoint's square, -1 outside.

    CP-VTON+ takes its shape from a separate body mask (image-mask/) that the signature does not
    carry; both variants use ``parse > 0`` here, which is what that mask approximates.
    """
    if variant not in GMM_VARIANTS:
        raise ValueError(f'unknown GMM variant {variant!r}; expected one of {GMM_VARIANTS}')
    head_labels = lip.CPVTON_HEAD if variant == CPVTON else lip.CPVTON_PLUS_HEAD
    height, width = _frame_size(person)
    shape = cpvton_shape(parse)
    head = label_mask(parse, head_labels)
    head_rgb = to_signed(person) * head - (1.0 - head)
    pose = tf.cast(pose_squares(keypoints, height, width, min_coordinate=1.0), tf.float32)
    return tf.concat([shape, head_rgb, pose * 2.0 - 1.0], axis=-1)


def gmm_cloth(cloth, cloth_mask, variant=CPVTON):
    """The GMM cloth-branch input: RGB in [-1, 1] (CP-VTON) or mask >= 128 as {0, 1} (CP-VTON+)."""
    if variant == CPVTON:
        return to_signed(cloth)
    if variant == CPVTON_PLUS:
        return binary_cloth_mask(cloth_mask)
    raise ValueError(f'unknown GMM variant {variant!r}; expected one of {GMM_VARIANTS}')


def binary_cloth_mask(cloth_mask):
    """float32 {0, 1} [B,H,W,1]: the cloth mask binarised at 128 as CP-VTON's dataset does."""
    return tf.cast(tf.cast(cloth_mask, tf.int32) >= 128, tf.float32)[..., tf.newaxis]


def cloth_on_person(person, parse, labels=lip.CPVTON_CLOTH):
    """The person's garment on white, [-1, 1] (CP-VTON's ``im_c``, the GMM L1 target)."""
    region = label_mask(parse, labels)
    return to_signed(person) * region + (1.0 - region)


def edm_input(person, parse, keypoints, cloth):
    """VITON stage 1's input: product(3) + body(1) + head RGB(3) + pose(18), float32.

    product: the cloth in [-1, 1]. body: foreground minus head labels, area-down-sampled to 16x12
    and up again with TF1's legacy bilinear kernel, in [0, 1]. head RGB: person in [-1, 1] times
    the head mask, 0 outside. pose: {0, 1} squares.
    """
    height, width = _frame_size(person)
    head = label_mask(parse, lip.VITON_HEAD)
    body = tf.cast(parse > 0, tf.float32)[..., tf.newaxis] - head
    body = resize.resize_area(body, _VITON_BODY_SIZE)
    body = resize.legacy_resize_bilinear(body, (height, width))
    head_rgb = head * to_signed(person)
    pose = tf.cast(pose_squares(keypoints, height, width, min_coordinate=None), tf.float32)
    return tf.concat([to_signed(cloth), body, head_rgb, pose], axis=-1)
