"""Full photos → the networks' 256×192 frames, with the transform recorded for the way back.

- ``body_frame``: a 4:3 box that scales and centres the person as the training frames have them
  (head to ankles, from the keypoints; white padding past the photo), or the whole photo
  letterboxed (aspect kept, padded) when the pose has no head point or no ankle.
- ``upper_frame``: a 4:3 box around the upper body (head to hips, from the keypoints), clamped
  to the photo, scaled to 256×192.
- ``garment_frame``: a product photo padded on white to 4:3 and scaled to 256×192, its mask
  computed when none is given (near-white background removed, holes filled, 3×3 median).

Transforms are 2×3 affine maps from photo pixels to frame pixels with pixel centres at integer
coordinates (OpenCV's convention), so ``cv2.invertAffineTransform`` gives the way back exactly.
Photos are area-reduced to the frame's scale before the final resampling, so a 10000×10000 photo
does not alias. OpenCV's warps refuse a source with a side of 32767 pixels or more (SHRT_MAX): a
longer photo is first cut to the part the frame sees, and a label map still too long after that is
thinned to every k-th pixel, so very long or very large photos give a frame like any other.
"""

import dataclasses

import cv2
import numpy as np

from everywear_tf import errors
from everywear_tf import spec
from everywear_tf.data import cloth_mask as cloth_masks
from everywear_tf.data import keypoints as keypoint_files

FRAME = spec.FRAME_SHAPE
PAD_VALUE = 255  # letterbox padding: white, like the originals' backgrounds
MAX_WARP_SIDE = 32766  # cv2.warpAffine (through remap) asserts its source's sides < SHRT_MAX
HEAD = (keypoint_files.NOSE, keypoint_files.R_EYE, keypoint_files.L_EYE, keypoint_files.R_EAR,
        keypoint_files.L_EAR)
SHOULDERS = (keypoint_files.R_SHOULDER, keypoint_files.L_SHOULDER)
HIPS = (keypoint_files.R_HIP, keypoint_files.L_HIP)
ANKLES = (keypoint_files.R_ANKLE, keypoint_files.L_ANKLE)
# Where the synthetic body frames (data/synthetic_tryon.py) have the person, as the photo front
# end finds them there (mean over 300 training frames): the highest head keypoint on row 33.5,
# the lowest ankle on row 224.3, the middle of the keypoints on column 95.2 (the frame's centre,
# 95.5, is used).
BODY_TOP, BODY_BOTTOM = 33.5, 224.3
MIN_BODY_HEIGHT = 16.0  # photo pixels from head to ankles below which the pose is not trusted


@dataclasses.dataclass(frozen=True)
class Frame:
    """One 256×192 frame cut from a photo."""
    image: np.ndarray  # uint8 [256,192,3]
    parse: np.ndarray  # uint8 [256,192] (zeros for garments)
    keypoints: np.ndarray  # float32 [18,3], frame pixels; missing = confidence 0
    transform: np.ndarray  # float64 [2,3]: photo pixel → frame pixel
    source_size: tuple  # (height, width) of the photo


def scale_translate(scale, offset_x, offset_y):
    """The affine map x_f = scale·x + offset_x (pixel centres on integers)."""
    return np.array([[scale, 0.0, offset_x], [0.0, scale, offset_y]], np.float64)


def box_transform(box, frame=FRAME):
    """Affine map of a photo box (x0, y0, x1, y1 in pixel-edge coordinates) onto the frame.

    The box's edges map onto the frame's edges: x_f + 0.5 = s·(x + 0.5 − x0).
    """
    x0, y0, x1, y1 = box
    scale = frame[0] / (y1 - y0)
    return scale_translate(scale, 0.5 * scale - 0.5 - scale * x0, 0.5 * scale - 0.5 - scale * y0)


def letterbox_box(source_size, frame=FRAME):
    """The box around the whole photo with the frame's aspect ratio, photo centred."""
    height, width = source_size
    aspect = frame[1] / frame[0]
    if width / height > aspect:  # wide photo: pad above and below
        box_height = width / aspect
        return (0.0, (height - box_height) / 2, float(width), (height + box_height) / 2)
    box_width = height * aspect
    return ((width - box_width) / 2, 0.0, (width + box_width) / 2, float(height))


def warp_image(image, transform, frame=FRAME, interpolation=cv2.INTER_LINEAR,
               border=PAD_VALUE):
    """Resamples ``image`` through ``transform`` into the frame. Shrinking is done by area
    averaging to the final scale first (so big photos do not alias), then the remaining
    sub-pixel shift by bilinear interpolation. A source with a side over ``MAX_WARP_SIDE`` is
    first cut to the part the frame sees, and thinned to every k-th pixel if it is still too
    long for OpenCV's warp (only a label map can be: images are area-reduced first)."""
    transform = np.asarray(transform, np.float64)
    if max(image.shape[:2]) > MAX_WARP_SIDE:
        image, transform = _seen_part(image, transform, frame)
    scale = transform[0, 0]
    if interpolation != cv2.INTER_NEAREST and scale < 1.0:
        small = cv2.resize(image, (max(1, round(image.shape[1] * scale)),
                                   max(1, round(image.shape[0] * scale))),
                           interpolation=cv2.INTER_AREA)
        # Photo pixel x maps to small pixel (x + 0.5)·(small/size) − 0.5.
        sx = small.shape[1] / image.shape[1]
        sy = small.shape[0] / image.shape[0]
        to_small = np.array([[sx, 0, 0.5 * sx - 0.5], [0, sy, 0.5 * sy - 0.5], [0, 0, 1]])
        transform = transform @ np.linalg.inv(to_small)
        image = small
    if max(image.shape[:2]) > MAX_WARP_SIDE:
        step = -(-max(image.shape[:2]) // MAX_WARP_SIDE)
        # Small pixel i is photo pixel step·i + step // 2.
        image = np.ascontiguousarray(image[step // 2::step, step // 2::step])
        transform = np.concatenate([transform[:, :2] * step,
                                    transform[:, 2:] + transform[:, :2].sum(
                                            axis=1, keepdims=True) * (step // 2)], axis=1)
    value = (border,) * 3 if image.ndim == 3 else border
    return cv2.warpAffine(image, transform, (frame[1], frame[0]), flags=interpolation,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=value)


def _seen_part(image, transform, frame):
    """(the part of ``image`` the frame samples, with a margin for the filters; the transform
    from that part's pixels). The part keeps at least one pixel."""
    inverse = invert(transform)
    corners = np.array([[-0.5, -0.5], [frame[1] - 0.5, -0.5], [-0.5, frame[0] - 0.5],
                        [frame[1] - 0.5, frame[0] - 0.5]]) @ inverse[:, :2].T + inverse[:, 2]
    scale = abs(transform[0, 0])
    # Bilinear reads one pixel around; after an area reduction, one reduced pixel (1/scale).
    margin = 2 + (int(np.ceil(2.0 / scale)) if scale < 1.0 else 0)
    height, width = image.shape[:2]
    x0 = int(np.clip(np.floor(corners[:, 0].min()) - margin, 0, width - 1))
    y0 = int(np.clip(np.floor(corners[:, 1].min()) - margin, 0, height - 1))
    x1 = int(np.clip(np.ceil(corners[:, 0].max()) + margin + 1, x0 + 1, width))
    y1 = int(np.clip(np.ceil(corners[:, 1].max()) + margin + 1, y0 + 1, height))
    shifted = transform.copy()
    shifted[:, 2] += transform[:, :2] @ np.array([x0, y0], np.float64)
    return image[y0:y1, x0:x1], shifted


def transform_keypoints(keypoints, transform):
    """[18,3] keypoints through an affine map; missing points (confidence 0) stay (0, 0, 0)."""
    keypoints = np.asarray(keypoints, np.float64)
    out = keypoints.copy()
    out[:, :2] = keypoints[:, :2] @ transform[:, :2].T + transform[:, 2]
    out[keypoints[:, 2] <= 0] = 0.0
    return out.astype(np.float32)


def invert(transform):
    """The inverse of a [2,3] photo → frame affine map: frame pixel → photo pixel (float64)."""
    return cv2.invertAffineTransform(np.asarray(transform, np.float64))


def _check(image, parse, keypoints, path):
    if parse is not None and parse.shape != image.shape[:2]:
        raise errors.ParseMapError(path, f'parse is {parse.shape[0]}x{parse.shape[1]}, the '
                                         f'photo {image.shape[0]}x{image.shape[1]}')
    keypoints = np.asarray(keypoints, np.float32)
    if keypoints.shape != (spec.NUM_KEYPOINTS, 3):
        raise errors.KeypointsError(path, f'expected [18,3] keypoints, got {keypoints.shape}')
    return keypoints


def _frame(image, parse, keypoints, transform):
    frame_parse = (np.zeros(FRAME, np.uint8) if parse is None else
                   warp_image(parse, transform, interpolation=cv2.INTER_NEAREST, border=0))
    return Frame(image=warp_image(image, transform), parse=frame_parse,
                 keypoints=transform_keypoints(keypoints, transform), transform=transform,
                 source_size=tuple(image.shape[:2]))


def body_box(keypoints):
    """A 4:3 (H:W) box that puts the person where the body frames of training have them: the
    highest head keypoint on frame row BODY_TOP, the lowest ankle on BODY_BOTTOM, centred
    between the outermost keypoints. It may reach past the photo (white padding there). None
    when the pose has no head point or no ankle (then the photo is letterboxed)."""
    keypoints = np.asarray(keypoints, np.float64)
    present = keypoints[:, 2] > 0
    heads = [keypoints[i, 1] for i in HEAD if present[i]]
    ankles = [keypoints[i, 1] for i in ANKLES if present[i]]
    if not heads or not ankles or max(ankles) - min(heads) < MIN_BODY_HEIGHT:
        return None
    top, bottom = min(heads), max(ankles)
    scale = (BODY_BOTTOM - BODY_TOP) / (bottom - top)  # frame pixels per photo pixel
    xs = keypoints[present, 0]
    centre_x = (xs.min() + xs.max()) / 2
    # box_transform maps pixel edges: frame row r + 0.5 = scale · (y + 0.5 − y0).
    y0 = top + 0.5 - (BODY_TOP + 0.5) / scale
    x0 = centre_x + 0.5 - (FRAME[1] / 2) / scale
    return (x0, y0, x0 + FRAME[1] / scale, y0 + FRAME[0] / scale)


def body_frame(image, parse, keypoints, path='<memory>'):
    """The person framed as in training (body_box), or, for a pose without head or ankles, the
    whole photo letterboxed into 256×192 (white padding)."""
    keypoints = _check(image, parse, keypoints, path)
    box = body_box(keypoints) or letterbox_box(image.shape[:2])
    return _frame(image, parse, keypoints, box_transform(box))


def upper_box(keypoints, source_size, path='<memory>'):
    """A 4:3 (H:W) box from above the head to below the hips, centred on the shoulders.

    Needs both shoulders and at least one hip or the neck; raises KeypointsError otherwise.
    """
    keypoints = np.asarray(keypoints, np.float64)
    present = keypoints[:, 2] > 0
    if not all(present[i] for i in SHOULDERS):
        raise errors.KeypointsError(path, 'no upper-body crop: both shoulders are needed')
    shoulders = keypoints[list(SHOULDERS), :2]
    shoulder_width = abs(shoulders[0, 0] - shoulders[1, 0])
    hips = [keypoints[i, :2] for i in HIPS if present[i]]
    centre_x = shoulders[:, 0].mean()
    top_points = [keypoints[i, 1] for i in HEAD + (keypoint_files.NECK,) if present[i]]
    if not hips and not present[keypoint_files.NECK]:
        raise errors.KeypointsError(path, 'no upper-body crop: a hip or the neck is needed')
    shoulder_y = shoulders[:, 1].mean()
    bottom = max(p[1] for p in hips) if hips else shoulder_y + 2.2 * shoulder_width
    torso = max(bottom - shoulder_y, 1.0)
    top = min(top_points + [shoulder_y - 0.45 * torso]) - 0.25 * torso
    bottom = bottom + 0.3 * torso
    box_height = bottom - top
    box_width = box_height * FRAME[1] / FRAME[0]
    if box_width < 2 * shoulder_width:  # arms out: widen, keeping 4:3
        box_width = 2 * shoulder_width
        box_height = box_width * FRAME[0] / FRAME[1]
        middle = (top + bottom) / 2
        top, bottom = middle - box_height / 2, middle + box_height / 2
    height, width = source_size
    box_height = min(box_height, height, width * FRAME[0] / FRAME[1])
    box_width = box_height * FRAME[1] / FRAME[0]
    x0 = min(max(centre_x - box_width / 2, 0.0), width - box_width)
    y0 = min(max(top, 0.0), height - box_height)
    return (x0, y0, x0 + box_width, y0 + box_height)


def upper_frame(image, parse, keypoints, path='<memory>'):
    """The upper-body crop of a photo (raises KeypointsError when the pose cannot give one)."""
    keypoints = _check(image, parse, keypoints, path)
    box = upper_box(keypoints, image.shape[:2], path)
    return _frame(image, parse, keypoints, box_transform(box))


def garment_frame(image, mask=None, path='<memory>'):
    """A product photo padded on white to 4:3 and scaled to 256×192, with its mask."""
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise errors.ImageError(path, f'expected a uint8 RGB photo, got {image.dtype} '
                                      f'{image.shape}')
    transform = box_transform(letterbox_box(image.shape[:2]))
    frame_image = warp_image(image, transform)
    if mask is None:
        frame_mask = cloth_masks.compute_cloth_mask(frame_image, rule=cloth_masks.NEAR_WHITE)
    else:
        if mask.shape != image.shape[:2]:
            raise errors.ImageError(path, f'mask is {mask.shape}, the photo {image.shape[:2]}')
        frame_mask = warp_image(mask, transform, border=0)
    return frame_image, frame_mask
