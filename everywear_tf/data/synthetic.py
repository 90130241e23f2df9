"""Procedurally drawn front-view persons and flat garments with exact parses and keypoints.

No try-on photos can be downloaded here, so fixtures and the bundled demo are drawn: a figure is
laid out from a sampled COCO-18 skeleton, painted label by label into a LIP parse, and coloured
from that parse, so the photo, the parse and the keypoints agree by construction.
"""

import dataclasses

import cv2
import numpy as np

from everywear_tf import spec
from everywear_tf.data import lip
from everywear_tf.data.keypoints import L_ANKLE  # COCO-18 indices
from everywear_tf.data.keypoints import L_EAR  # COCO-18 indices
from everywear_tf.data.keypoints import L_ELBOW  # COCO-18 indices
from everywear_tf.data.keypoints import L_EYE  # COCO-18 indices
from everywear_tf.data.keypoints import L_HIP  # COCO-18 indices
from everywear_tf.data.keypoints import L_KNEE  # COCO-18 indices
from everywear_tf.data.keypoints import L_SHOULDER  # COCO-18 indices
from everywear_tf.data.keypoints import L_WRIST  # COCO-18 indices
from everywear_tf.data.keypoints import NECK  # COCO-18 indices
from everywear_tf.data.keypoints import NOSE  # COCO-18 indices
from everywear_tf.data.keypoints import R_ANKLE  # COCO-18 indices
from everywear_tf.data.keypoints import R_EAR  # COCO-18 indices
from everywear_tf.data.keypoints import R_ELBOW  # COCO-18 indices
from everywear_tf.data.keypoints import R_EYE  # COCO-18 indices
from everywear_tf.data.keypoints import R_HIP  # COCO-18 indices
from everywear_tf.data.keypoints import R_KNEE  # COCO-18 indices
from everywear_tf.data.keypoints import R_SHOULDER  # COCO-18 indices
from everywear_tf.data.keypoints import R_WRIST  # COCO-18 indices

SKIN_TONES = ((236, 200, 170), (214, 170, 130), (180, 130, 95), (140, 95, 65), (95, 62, 40))
HAIR_COLOURS = ((30, 25, 20), (70, 45, 25), (150, 110, 60), (200, 170, 110), (120, 120, 120))



@dataclasses.dataclass(frozen=True)
class Person:
    """A drawn person: RGB uint8 [H,W,3], LIP parse uint8 [H,W], keypoints float32 [18,3]."""
    image: np.ndarray
    parse: np.ndarray
    keypoints: np.ndarray


@dataclasses.dataclass(frozen=True)
class Garment:
    """A flat product photo on white: RGB uint8 [H,W,3] and its mask uint8 [H,W] in {0, 255}."""
    image: np.ndarray
    mask: np.ndarray


def sample_skeleton(rng, height=spec.IMAGE_HEIGHT, width=spec.IMAGE_WIDTH):
    """Front-view COCO-18 keypoints [18,2] (x, y) with varied proportions and limb angles.

    The person's right side is on the image's left, as in a front-facing photo.
    """
    sy, sx = height / 256.0, width / 192.0
    cx = width / 2 + rng.normal(0, 4) * sx
    shoulder = rng.uniform(24, 31) * sx
    hip = rng.uniform(13, 18) * sx
    neck_y = rng.uniform(54, 60) * sy
    hip_y = neck_y + rng.uniform(76, 86) * sy
    points = np.zeros((spec.NUM_KEYPOINTS, 2), np.float64)
    head_y = neck_y - rng.uniform(20, 24) * sy
    points[NOSE] = (cx, head_y + 2 * sy)
    points[NECK] = (cx, neck_y)
    points[R_EYE] = (cx - 6 * sx, head_y - 3 * sy)
    points[L_EYE] = (cx + 6 * sx, head_y - 3 * sy)
    points[R_EAR] = (cx - 12 * sx, head_y)
    points[L_EAR] = (cx + 12 * sx, head_y)
    for side, (sho, elb, wri, hp, kne, ank) in ((-1, (R_SHOULDER, R_ELBOW, R_WRIST, R_HIP, R_KNEE,
                                                      R_ANKLE)),
                                                (1, (L_SHOULDER, L_ELBOW, L_WRIST, L_HIP, L_KNEE,
                                                     L_ANKLE))):
        points[sho] = (cx + side * shoulder, neck_y + rng.uniform(3, 7) * sy)
        upper = np.deg2rad(rng.uniform(8, 40))
        lower = upper + np.deg2rad(rng.uniform(-15, 25))
        upper_len, lower_len = rng.uniform(34, 40), rng.uniform(30, 36)
        points[elb] = points[sho] + (side * np.sin(upper) * upper_len * sx,
                                     np.cos(upper) * upper_len * sy)
        points[wri] = points[elb] + (side * np.sin(lower) * lower_len * sx,
                                     np.cos(lower) * lower_len * sy)
        points[hp] = (cx + side * hip, hip_y)
        spread = np.deg2rad(rng.uniform(-2, 10))
        thigh, shin = rng.uniform(44, 50), rng.uniform(42, 48)
        points[kne] = points[hp] + (side * np.sin(spread) * thigh * sx, np.cos(spread) * thigh * sy)
        points[ank] = points[kne] + (side * np.sin(spread * 0.5) * shin * sx,
                                     np.cos(spread * 0.5) * shin * sy)
    return points


def _pts(*points):
    return np.round(np.array(points, np.float64)).astype(np.int32)


def _limb(canvas, label, a, b, thickness):
    cv2.line(canvas, tuple(int(v) for v in np.round(a)), tuple(int(v) for v in np.round(b)),
             int(label), int(thickness), lineType=cv2.LINE_8)


def _along(a, b, t):
    return np.asarray(a) + (np.asarray(b) - np.asarray(a)) * t


def draw_parse(points, top, sleeve, height=spec.IMAGE_HEIGHT, width=spec.IMAGE_WIDTH,
               top_mask=None, pants_mask=None):
    """Paints the LIP parse of a figure, back to front.

    Args:
      points: [18,2] skeleton from ``sample_skeleton``.
      top: whether the figure wears an upper garment (label 5).
      sleeve: sleeve length as a fraction of the arm (0.45 for a t-shirt, 1.0 for long sleeves).
      height: parse height in pixels (the figure is scaled by ``width / 192``).
      width: parse width in pixels.
      top_mask: bool [H,W] region of an upper garment warped onto the body; when given it
        replaces the drawn top (over the arms, under the head).
      pants_mask: bool [H,W] region of pants warped onto the body; when given it replaces the
        drawn pants (over the legs, under the shoes).

    Returns:
      uint8 [height, width] LIP label map.
    """
    s = width / 192.0
    parse = np.zeros((height, width), np.uint8)
    # Legs, then pants over them (leaving the ankles bare), then shoes.
    for hp, kne, ank, label in ((R_HIP, R_KNEE, R_ANKLE, lip.RIGHT_LEG),
                                (L_HIP, L_KNEE, L_ANKLE, lip.LEFT_LEG)):
        _limb(parse, label, points[hp], points[kne], 17 * s)
        _limb(parse, label, points[kne], points[ank], 13 * s)
    if pants_mask is not None:
        parse[pants_mask] = lip.PANTS
    else:
        for hp, kne, ank in ((R_HIP, R_KNEE, R_ANKLE), (L_HIP, L_KNEE, L_ANKLE)):
            _limb(parse, lip.PANTS, points[hp], points[kne], 21 * s)
            _limb(parse, lip.PANTS, points[kne], _along(points[kne], points[ank], 0.85), 17 * s)
        waist = _pts(points[R_HIP] + (-9 * s, -8 * s), points[L_HIP] + (9 * s, -8 * s),
                     points[L_HIP] + (9 * s, 8 * s), points[R_HIP] + (-9 * s, 8 * s))
        cv2.fillConvexPoly(parse, waist, lip.PANTS)
    for ank, label, side in ((R_ANKLE, lip.RIGHT_SHOE, -1), (L_ANKLE, lip.LEFT_SHOE, 1)):
        centre = tuple(int(v) for v in np.round(points[ank] + (side * 3 * s, 4 * s)))
        cv2.ellipse(parse, centre, (int(9 * s), int(5 * s)), 0, 0, 360, int(label), -1)
    # Torso: the garment, or bare skin drawn as arm labels when there is no top.
    torso = _pts(points[R_SHOULDER] + (-4 * s, -3 * s), points[NECK] + (0, -4 * s),
                 points[L_SHOULDER] + (4 * s, -3 * s), points[L_HIP] + (6 * s, 4 * s),
                 points[R_HIP] + (-6 * s, 4 * s))
    drawn_top = top and top_mask is None
    cv2.fillPoly(parse, [torso], lip.UPPER_CLOTHES if drawn_top else lip.LEFT_ARM)
    # Arms: skin, with the sleeve painted over the first part of the arm.
    for sho, elb, wri, label in ((R_SHOULDER, R_ELBOW, R_WRIST, lip.RIGHT_ARM),
                                 (L_SHOULDER, L_ELBOW, L_WRIST, lip.LEFT_ARM)):
        _limb(parse, label, points[sho], points[elb], 12 * s)
        _limb(parse, label, points[elb], points[wri], 10 * s)
        if drawn_top and sleeve > 0:
            if sleeve <= 0.5:
                _limb(parse, lip.UPPER_CLOTHES, points[sho],
                      _along(points[sho], points[elb], sleeve * 2), 16 * s)
            else:
                _limb(parse, lip.UPPER_CLOTHES, points[sho], points[elb], 16 * s)
                _limb(parse, lip.UPPER_CLOTHES, points[elb],
                      _along(points[elb], points[wri], (sleeve - 0.5) * 2), 13 * s)
    if top_mask is not None:
        parse[top_mask] = lip.UPPER_CLOTHES
    # Neck (skin, labelled face as LIP annotates it), face, then hair on top of the head.
    _limb(parse, lip.FACE, points[NECK] + (0, -12 * s), points[NECK] + (0, 2 * s), 11 * s)
    head = (points[R_EAR] + points[L_EAR]) / 2
    centre = tuple(int(v) for v in np.round(head))
    cv2.ellipse(parse, centre, (int(13 * s), int(17 * s)), 0, 0, 360, lip.FACE, -1)
    hair_centre = tuple(int(v) for v in np.round(head + (0, -6 * s)))
    cv2.ellipse(parse, hair_centre, (int(14 * s), int(13 * s)), 0, 180, 360, lip.HAIR, -1)
    return parse


def _shade(rgb, rng, noise=3.0):
    """Adds a soft vertical light gradient and sensor-like noise to a flat-coloured image."""
    height = rgb.shape[0]
    light = np.linspace(1.04, 0.94, height)[:, None, None]
    out = rgb.astype(np.float64) * light + rng.normal(0, noise, rgb.shape)
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


PATTERNS = ('plain', 'stripes', 'checks', 'dots', 'print')


def _texture(mask_shape, colour, rng, pattern):
    """A flat colour, or stripes, checks, dots or a print of a second tone, float [H,W,3]."""
    if pattern not in PATTERNS:
        raise ValueError(f'unknown pattern {pattern!r}; expected one of {PATTERNS}')
    height, width = mask_shape
    base = np.empty((height, width, 3), np.float64)
    base[:] = colour
    if pattern == 'plain':
        return base
    second = np.clip(np.asarray(colour, np.float64) * 0.6 + 60, 0, 255)
    period = int(rng.integers(8, 16))
    rows = (np.arange(height)[:, None] // period) % 2
    cols = (np.arange(width)[None, :] // period) % 2
    if pattern == 'stripes':
        sel = np.broadcast_to(rows.astype(bool), (height, width))
    elif pattern == 'checks':
        sel = (rows ^ cols).astype(bool)
    elif pattern == 'dots':
        yy, xx = np.mgrid[:height, :width]
        offset = (yy // period) % 2 * period // 2  # staggered rows
        dy = yy % period - period / 2
        dx = (xx + offset) % period - period / 2
        sel = dy ** 2 + dx ** 2 <= (period / 4) ** 2
    else:  # a print: a few filled shapes of a contrasting colour around the chest
        canvas = np.zeros((height, width), np.uint8)
        for _ in range(int(rng.integers(2, 5))):
            centre = (int(rng.uniform(0.35, 0.65) * width), int(rng.uniform(0.3, 0.55) * height))
            radius = int(rng.uniform(0.04, 0.1) * width)
            if rng.uniform() < 0.5:
                cv2.circle(canvas, centre, radius, 1, -1)
            else:
                cv2.rectangle(canvas, (centre[0] - radius, centre[1] - radius // 2),
                              (centre[0] + radius, centre[1] + radius // 2), 1, -1)
        sel = canvas.astype(bool)
        second = 255.0 - np.asarray(colour, np.float64) * 0.8
    base[sel] = second
    return base


def colour_person(parse, rng, top_colour, bottom_colour, pattern='plain'):
    """Colours a parse into an RGB photo on a light background."""
    height, width = parse.shape
    skin = np.array(SKIN_TONES[rng.integers(len(SKIN_TONES))], np.float64)
    hair = np.array(HAIR_COLOURS[rng.integers(len(HAIR_COLOURS))], np.float64)
    background = rng.uniform(225, 250)
    image = np.full((height, width, 3), background, np.float64)
    top = _texture(parse.shape, top_colour, rng, pattern)
    for label, colour in ((lip.FACE, skin), (lip.LEFT_ARM, skin), (lip.RIGHT_ARM, skin),
                          (lip.LEFT_LEG, skin), (lip.RIGHT_LEG, skin), (lip.HAIR, hair),
                          (lip.PANTS, np.asarray(bottom_colour, np.float64)),
                          (lip.LEFT_SHOE, (40, 40, 45)), (lip.RIGHT_SHOE, (40, 40, 45))):
        image[parse == label] = colour
    image[parse == lip.UPPER_CLOTHES] = top[parse == lip.UPPER_CLOTHES]
    return _shade(image, rng)


def render_person(rng, top_colour=(40, 90, 170), bottom_colour=(60, 60, 70), sleeve=0.45,
                  pattern='plain', height=spec.IMAGE_HEIGHT, width=spec.IMAGE_WIDTH):
    """Draws a front-view person; keypoints have confidence 1 (all visible)."""
    points = sample_skeleton(rng, height, width)
    parse = draw_parse(points, top=True, sleeve=sleeve, height=height, width=width)
    image = colour_person(parse, rng, top_colour, bottom_colour, pattern)
    keypoints = np.concatenate([points, np.ones((spec.NUM_KEYPOINTS, 1))], axis=1)
    return Person(image=image, parse=parse, keypoints=keypoints.astype(np.float32))


def render_top(rng, colour, sleeve=0.45, pattern='plain', height=spec.IMAGE_HEIGHT,
               width=spec.IMAGE_WIDTH):
    """A flat upper garment (t-shirt for short ``sleeve``, long sleeve for 1.0) on white."""
    s = width / 192.0
    cx, top_y, bottom_y = width / 2, 40 * s, 215 * s
    half_body, half_neck = 42 * s, 14 * s
    body = _pts((cx - half_neck, top_y), (cx - half_body, top_y + 14 * s),
                (cx - half_body + 4 * s, bottom_y), (cx + half_body - 4 * s, bottom_y),
                (cx + half_body, top_y + 14 * s), (cx + half_neck, top_y))
    mask = np.zeros((height, width), np.uint8)
    cv2.fillPoly(mask, [body], 255)
    reach = (34 + 70 * max(sleeve - 0.45, 0)) * s
    for side in (-1, 1):
        shoulder = np.array((cx + side * half_body, top_y + 14 * s))
        sleeve_poly = _pts(shoulder + (0, -2 * s), shoulder + (side * reach, reach * 0.9),
                           shoulder + (side * (reach - 16 * s), reach * 0.9 + 14 * s),
                           shoulder + (0, 30 * s))
        cv2.fillPoly(mask, [sleeve_poly], 255)
    cv2.ellipse(mask, (int(cx), int(top_y)), (int(half_neck), int(9 * s)), 0, 0, 180, 0, -1)
    return _garment(mask, colour, rng, pattern)


def render_pants(rng, colour, pattern='plain', height=spec.IMAGE_HEIGHT, width=spec.IMAGE_WIDTH):
    """Flat trousers on white."""
    s = width / 192.0
    cx, top_y, bottom_y = width / 2, 20 * s, 240 * s
    half_waist = 34 * s
    outline = _pts((cx - half_waist, top_y), (cx + half_waist, top_y),
                   (cx + half_waist + 8 * s, bottom_y), (cx + 6 * s, bottom_y),
                   (cx, top_y + 70 * s), (cx - 6 * s, bottom_y),
                   (cx - half_waist - 8 * s, bottom_y))
    mask = np.zeros((height, width), np.uint8)
    cv2.fillPoly(mask, [outline], 255)
    return _garment(mask, colour, rng, pattern)


def _garment(mask, colour, rng, pattern):
    image = np.full(mask.shape + (3,), 255.0)
    inside = mask > 0
    image[inside] = _texture(mask.shape, colour, rng, pattern)[inside]
    image = np.where(inside[..., None], _shade(image, rng, noise=2.0), 255).astype(np.uint8)
    return Garment(image=image, mask=mask)
