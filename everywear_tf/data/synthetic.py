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
               top_mask=None, pants_mask=None, figure=None):
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
      figure: the photo look's Figure (None: the flat drawing): long hair behind the body,
        arms behind the torso, the waist's width, bare forearms over the garment, hair styles.

    Returns:
      uint8 [height, width] LIP label map.
    """
    s = width / 192.0
    parse = np.zeros((height, width), np.uint8)
    behind = figure is not None and figure.arms == 'arms_behind'
    if figure is not None:
        _hair(parse, points, s, figure, behind=True)
    drawn_top = top and top_mask is None
    if behind:
        _arms(parse, points, s, drawn_top, sleeve)
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
    torso = _torso(points, s, figure)
    cv2.fillPoly(parse, [torso], lip.UPPER_CLOTHES if drawn_top else lip.LEFT_ARM)
    if not behind:
        _arms(parse, points, s, drawn_top, sleeve)
    if top_mask is not None:
        parse[top_mask] = lip.UPPER_CLOTHES
        for side in (figure.front_arms if figure is not None else ()):
            # A bare forearm in front of the garment (short sleeves only).
            elb, wri, label = ((R_ELBOW, R_WRIST, lip.RIGHT_ARM) if side < 0
                               else (L_ELBOW, L_WRIST, lip.LEFT_ARM))
            _limb(parse, label, points[elb], points[wri], 10 * s)
    # Neck (skin, labelled face as LIP annotates it), face, then hair on top of the head.
    _limb(parse, lip.FACE, points[NECK] + (0, -12 * s), points[NECK] + (0, 2 * s), 11 * s)
    head = (points[R_EAR] + points[L_EAR]) / 2
    centre = tuple(int(v) for v in np.round(head))
    cv2.ellipse(parse, centre, (int(13 * s), int(17 * s)), 0, 0, 360, lip.FACE, -1)
    if figure is not None:
        _hair(parse, points, s, figure, behind=False)
        return parse
    hair_centre = tuple(int(v) for v in np.round(head + (0, -6 * s)))
    cv2.ellipse(parse, hair_centre, (int(14 * s), int(13 * s)), 0, 180, 360, lip.HAIR, -1)
    return parse


def _arms(parse, points, s, drawn_top, sleeve):
    """Arms: skin, with the drawn top's sleeve painted over the first part of the arm."""
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


# --- The photo look -------------------------------------------------------------------------
# ``flat`` is the drawing above (bit for bit); ``photo`` randomises it towards photographs:
# poses, body shapes, hair, skin tones, garment cuts, backgrounds, product photos on off-white
# with a drop shadow. The light (shading, folds, soft shadows) is applied by synthetic_tryon to
# the finished person image only, so the parse, the keypoints, the product and the warp stay
# exact.
LOOKS = ('flat', 'photo')
FLAT, PHOTO = LOOKS
ARM_POSES = ('relaxed', 'hands_on_hips', 'arm_raised', 'arms_behind', 'arms_crossed')
# Poses with a bare forearm in front of the torso: only for short sleeves (a long sleeve in
# front of the torso would need the warp to fold) and for the drawn top of the pants category.
FRONT_ARM_POSES = ('hands_on_hips', 'arms_crossed')
# Poses a long warped sleeve cannot take without folding its warp: a forearm in front of the
# torso, or hidden behind it (the cuff would land on the garment's body).
LONG_SLEEVE_EXCLUDED = FRONT_ARM_POSES + ('arms_behind',)
HAIR_STYLES = ('short', 'long', 'parted')
NECKLINES = ('crew', 'v')


def check_look(look):
    """``look`` if it is one of LOOKS; raises ValueError otherwise."""
    if look not in LOOKS:
        raise ValueError(f'unknown look {look!r}; expected one of {LOOKS}')
    return look


@dataclasses.dataclass(frozen=True)
class Figure:
    """The photo look's body beyond the skeleton (sizes in pixels of a 192-wide image)."""
    arms: str = 'relaxed'  # one of ARM_POSES
    walking: bool = False  # one knee bent (a shorter shin in the front view)
    turn: float = 0.0  # 3/4 turn: >0 compresses the person's left side (image right)
    belly: float = 0.0  # waist half-width beyond the straight shoulder-hip line (<0: slimmer)
    hair: str = 'short'  # one of HAIR_STYLES
    hair_size: float = 1.0
    hair_length: float = 30.0  # long hair: how far below the neck it falls
    front_arms: tuple = ()  # sides (-1 right, 1 left) whose bare forearm is over the garment


def _arm_angles(rng, pose, clear=False):
    """(upper, lower) angles from hanging down, outward positive, degrees, for one arm.

    ``clear`` (long sleeves): a lowered arm is held off the torso, upper arm and forearm, so
    the sleeve never has to lie over the garment's body (one backward warp cannot put a layer
    in front of another); its elbow bends outwards by up to 30°. Same draws either way."""
    if pose == 'arm_raised':
        if clear:  # a long sleeve's steeper product sleeve would fold turned much further
            upper = rng.uniform(90, 125)
            return upper, upper + rng.uniform(-20, 10)
        upper = rng.uniform(95, 150)
        return upper, upper + rng.uniform(-25, 15)
    if pose == 'arms_behind':
        upper = rng.uniform(9, 16)
        return upper, upper - rng.uniform(0, 10)
    if clear:
        upper = rng.uniform(18, 40)
        return upper, upper + rng.uniform(-5, 30)
    upper = rng.uniform(8, 40)
    return upper, upper + rng.uniform(-15, 25)


def sample_figure_skeleton(rng, height=spec.IMAGE_HEIGHT, width=spec.IMAGE_WIDTH,
                           arm_poses=ARM_POSES, clear_arms=False):
    """The photo look's skeleton: (keypoints [18,2], Figure), with poses from ``arm_poses``;
    ``clear_arms`` keeps lowered arms off the torso (long sleeves, see ``_arm_angles``)."""
    sy, sx = height / 256.0, width / 192.0
    pose = arm_poses[int(rng.integers(len(arm_poses)))]
    turn = float(rng.uniform(-0.35, 0.35)) if rng.uniform() < 0.4 else 0.0
    walking = bool(rng.uniform() < 0.3)
    cx = width / 2 + rng.normal(0, 5) * sx
    shoulder = rng.uniform(22, 32) * sx
    hip = rng.uniform(12, 19) * sx
    neck_y = rng.uniform(52, 62) * sy
    hip_y = neck_y + rng.uniform(72, 90) * sy
    head_y = neck_y - rng.uniform(20, 24) * sy
    head_x = cx + turn * 14 * sx  # the face turns towards the compressed side
    points = np.zeros((spec.NUM_KEYPOINTS, 2), np.float64)
    points[NECK] = (cx + turn * 3 * sx, neck_y)
    points[NOSE] = (head_x + turn * 4 * sx, head_y + 2 * sy)
    for side, eye, ear in ((-1, R_EYE, R_EAR), (1, L_EYE, L_EAR)):
        squeeze = 1 - side * turn  # the far side of the face looks narrower
        points[eye] = (head_x + side * 6 * sx * squeeze, head_y - 3 * sy)
        points[ear] = (head_x + side * 12 * sx * squeeze, head_y)
    raised = int(rng.choice((-1, 1)))
    one_hand = int(rng.choice((-1, 1))) if rng.uniform() < 0.3 else 0
    bent = int(rng.choice((-1, 1)))
    front = []
    for side, (sho, elb, wri, hp, kne, ank) in ((-1, (R_SHOULDER, R_ELBOW, R_WRIST, R_HIP, R_KNEE,
                                                      R_ANKLE)),
                                                (1, (L_SHOULDER, L_ELBOW, L_WRIST, L_HIP, L_KNEE,
                                                     L_ANKLE))):
        squeeze = 1 - side * turn
        points[sho] = (cx + side * shoulder * squeeze, neck_y + rng.uniform(3, 7) * sy)
        points[hp] = (cx + side * hip * squeeze, hip_y)
        upper_len, lower_len = rng.uniform(34, 40), rng.uniform(30, 36)
        arm = pose if pose != 'arm_raised' or side == raised else 'relaxed'
        if pose == 'hands_on_hips' and one_hand == -side:
            arm = 'relaxed'
        if arm in FRONT_ARM_POSES:
            upper = np.deg2rad(rng.uniform(20, 38) if arm == 'hands_on_hips'
                               else rng.uniform(10, 18))
            points[elb] = points[sho] + (side * np.sin(upper) * upper_len * sx,
                                         np.cos(upper) * upper_len * sy)
            if arm == 'hands_on_hips':  # the wrist on the waist, the forearm foreshortened
                points[wri] = points[hp] + (side * rng.uniform(2, 7) * sx,
                                            -rng.uniform(14, 24) * sy)
            else:  # crossed: the forearm across the belly, towards the other side
                points[wri] = (cx - side * rng.uniform(6, 16) * sx,
                               points[elb][1] - rng.uniform(2, 10) * sy)
            front.append(side)
        else:
            upper, lower = (np.deg2rad(a) for a in _arm_angles(rng, arm, clear_arms))
            points[elb] = points[sho] + (side * np.sin(upper) * upper_len * sx,
                                         np.cos(upper) * upper_len * sy)
            points[wri] = points[elb] + (side * np.sin(lower) * lower_len * sx,
                                         np.cos(lower) * lower_len * sy)
        spread = np.deg2rad(rng.uniform(-2, 10))
        thigh, shin = rng.uniform(44, 50), rng.uniform(42, 48)
        shin_spread = spread * 0.5
        if walking and side == bent:  # the knee comes forward: shorter shin, ankle inwards
            shin *= rng.uniform(0.72, 0.88)
            shin_spread = spread - np.deg2rad(rng.uniform(4, 10))
        points[kne] = points[hp] + (side * np.sin(spread) * thigh * sx, np.cos(spread) * thigh * sy)
        points[ank] = points[kne] + (side * np.sin(shin_spread) * shin * sx,
                                     np.cos(shin_spread) * shin * sy)
    hair = HAIR_STYLES[int(rng.integers(len(HAIR_STYLES)))]
    figure = Figure(arms=pose, walking=walking, turn=turn, belly=float(rng.uniform(-2, 6)),
                    hair=hair, hair_size=float(rng.uniform(0.9, 1.15)),
                    hair_length=float(rng.uniform(8, 40)), front_arms=tuple(front))
    return points, figure


def _torso(points, s, figure):
    """The torso polygon; the photo look adds the waist (belly width) on both sides."""
    if figure is None:
        return _pts(points[R_SHOULDER] + (-4 * s, -3 * s), points[NECK] + (0, -4 * s),
                    points[L_SHOULDER] + (4 * s, -3 * s), points[L_HIP] + (6 * s, 4 * s),
                    points[R_HIP] + (-6 * s, 4 * s))
    corners = {}
    for side, sho, hp in ((-1, R_SHOULDER, R_HIP), (1, L_SHOULDER, L_HIP)):
        top, bottom = points[sho] + (side * 4 * s, -3 * s), points[hp] + (side * 6 * s, 4 * s)
        # Inside the garment's sides (which are drawn over it), so no skin shows between.
        corners[side] = (top, waist_point(points, side, s, figure.belly - 3), bottom)
    return _pts(corners[-1][0], points[NECK] + (0, -4 * s), corners[1][0], corners[1][1],
                corners[1][2], corners[-1][2], corners[-1][1])


def waist_point(points, side, s, extra):
    """The side of the torso at 60% of the way from shoulder to hip, ``extra`` further out."""
    sho, hp = (R_SHOULDER, R_HIP) if side < 0 else (L_SHOULDER, L_HIP)
    edge = _along(points[sho] + (side * 4 * s, -3 * s), points[hp] + (side * 6 * s, 4 * s), 0.6)
    return edge + (side * extra * s, 0)


def _hair(parse, points, s, figure, behind):
    """Paints the hair of the photo look: long hair behind the body (``behind``), the cap on
    top of the head otherwise."""
    head = (points[R_EAR] + points[L_EAR]) / 2
    size = figure.hair_size
    if behind:
        if figure.hair == 'long':
            top = head + (0, -14 * s * size)
            bottom_y = points[NECK][1] + figure.hair_length * s
            box = _pts(top + (-15 * s * size, 4 * s), top + (15 * s * size, 4 * s),
                       (head[0] + 17 * s * size, bottom_y), (head[0] - 17 * s * size, bottom_y))
            cv2.fillConvexPoly(parse, box, lip.HAIR)
        return
    centre = tuple(int(v) for v in np.round(head + (0, -6 * s)))
    axes = (int(14 * s * size), int(13 * s * size))
    if figure.hair == 'parted':  # a side parting: the cap tilted, one side lower
        tilt = 12 if figure.turn >= 0 else -12
        cv2.ellipse(parse, centre, (axes[0] + int(s), axes[1]), tilt, 180, 360, lip.HAIR, -1)
        side_lock = tuple(int(v) for v in np.round(head + (np.sign(tilt) * 11 * s, -2 * s)))
        cv2.ellipse(parse, side_lock, (int(4 * s), int(9 * s * size)), 0, 0, 360, lip.HAIR, -1)
    else:
        cv2.ellipse(parse, centre, axes, 0, 180, 360, lip.HAIR, -1)


@dataclasses.dataclass(frozen=True)
class TopCut:
    """The photo look's upper garment (sizes in pixels of a 192×256 product photo)."""
    sleeve: float  # where the sleeve ends on the arm (fraction of the arm)
    half_body: float = 42.0  # half width at the shoulders: fitted ~37, loose ~49
    taper: float = 0.0  # how far the sides come in at the waist (fitted cuts)
    half_neck: float = 14.0
    neckline: str = 'crew'  # or 'v'
    neck_depth: float = 9.0  # below the neck corners
    cuff: float = 16.0  # the sleeve's width at its end
    length: float = 215.0  # hem height in the product photo


@dataclasses.dataclass(frozen=True)
class PantsCut:
    """The photo look's trousers (sizes in pixels of a 192×256 product photo)."""
    half_waist: float = 34.0
    legs: float = 0.5  # 0 slim … 1 wide
    length: float = 0.85  # where the hem ends between knee (0) and ankle (1)


def sample_top_cut(rng, sleeve):
    """A random TopCut: fitted or loose, crew or V neck, sleeve width, length."""
    loose = rng.uniform()
    return TopCut(sleeve=float(sleeve), half_body=float(37 + 12 * loose),
                  taper=float(rng.uniform(0, 5) * (1 - loose)),
                  half_neck=float(rng.uniform(12, 16)),
                  neckline=NECKLINES[int(rng.integers(len(NECKLINES)))],
                  neck_depth=float(rng.uniform(18, 30)), cuff=float(rng.uniform(13, 19)),
                  length=float(rng.uniform(198, 225)))


def sample_pants_cut(rng):
    """A random PantsCut: waist, slim to wide legs, cropped to full length."""
    return PantsCut(half_waist=float(rng.uniform(31, 37)), legs=float(rng.uniform()),
                    length=float(rng.uniform(0.6, 0.95)))


def top_geometry(cut, s, width):
    """Named points of a TopCut's product outline, person's right side first in the pairs."""
    cx, top_y, bottom_y = width / 2, 40 * s, cut.length * s
    half_body, half_neck = cut.half_body * s, cut.half_neck * s
    reach = (34 + 70 * max(cut.sleeve - 0.45, 0)) * s
    cuff = cut.cuff * s
    geometry = {'cx': cx, 'top_y': top_y, 'bottom_y': bottom_y, 'reach': reach,
                'neck': (cx, top_y + (9 if cut.neckline == 'crew' else cut.neck_depth) * s)}
    for side, name in ((-1, 'right'), (1, 'left')):
        shoulder = np.array((cx + side * half_body, top_y + 14 * s))
        hem = np.array((cx + side * (half_body - 4 * s), bottom_y))
        waist = _along(shoulder, hem, 0.6) - (side * cut.taper * s, 0)
        geometry[name] = {
            'neck': np.array((cx + side * half_neck, top_y)), 'shoulder': shoulder,
            'shoulder_top': shoulder + (0, -2 * s),
            **_sleeve_ends(shoulder, side, reach, cuff, cut.sleeve > 0.5),
            'underarm': shoulder + (0, 30 * s), 'waist': waist, 'hem': hem}
    return geometry


def _sleeve_ends(shoulder, side, reach, cuff, long_sleeve):
    """The cuff's outer and inner corners. A long sleeve hangs steeper (about 25° from the
    side seam instead of 48°), so that its cuff stays inside the product photo."""
    if not long_sleeve:
        return {'sleeve_outer': shoulder + (side * reach, reach * 0.9),
                'sleeve_inner': shoulder + (side * (reach - cuff), reach * 0.9 + cuff * 0.875)}
    direction = np.array((side * 0.5, 1.1)) / np.hypot(0.5, 1.1)
    outer = shoulder + direction * reach * np.hypot(1, 0.9)
    return {'sleeve_outer': outer,
            'sleeve_inner': outer + cuff * np.array((-side * direction[1], side * direction[0]))}


def pants_geometry(cut, s, width):
    """Named points of a PantsCut's product outline."""
    cx, top_y = width / 2, 20 * s
    crotch_y = top_y + 70 * s
    inseam = 150 * s * (31 + cut.length * 45) / (31 + 0.85 * 45)
    bottom_y = crotch_y + inseam
    out, inner = (2 + 12 * cut.legs) * s, (9 - 6 * cut.legs) * s
    half_waist = cut.half_waist * s
    knee_y = crotch_y + inseam / 2
    geometry = {'cx': cx, 'top_y': top_y, 'crotch_y': crotch_y, 'bottom_y': bottom_y}
    for side, name in ((-1, 'right'), (1, 'left')):
        def outer_x(y, side=side):
            return cx + side * (half_waist + out * (y - top_y) / (bottom_y - top_y))
        geometry[name] = {'waist': np.array((cx + side * half_waist, top_y)),
                          'hem_outer': np.array((outer_x(bottom_y), bottom_y)),
                          'hem_inner': np.array((cx + side * inner, bottom_y)),
                          'knee_outer': np.array((outer_x(knee_y), knee_y)),
                          'knee_inner': np.array((cx + side * inner / 2, knee_y)),
                          'crotch_outer': np.array((outer_x(crotch_y), crotch_y))}
    return geometry


def render_top_photo(rng, colour, cut, pattern='plain', height=spec.IMAGE_HEIGHT,
                     width=spec.IMAGE_WIDTH):
    """An upper garment of ``cut`` photographed on off-white with a soft drop shadow; the
    mask is the drawn outline, exactly."""
    s = width / 192.0
    g = top_geometry(cut, s, width)
    right, left = g['right'], g['left']
    body = _pts(right['neck'], right['shoulder'], right['waist'], right['hem'], left['hem'],
                left['waist'], left['shoulder'], left['neck'])
    mask = np.zeros((height, width), np.uint8)
    cv2.fillPoly(mask, [body], 255)
    for part in (right, left):
        cv2.fillPoly(mask, [_pts(part['shoulder_top'], part['sleeve_outer'],
                                 part['sleeve_inner'], part['underarm'])], 255)
    cx, top_y = g['cx'], g['top_y']
    if cut.neckline == 'crew':
        cv2.ellipse(mask, (int(cx), int(top_y)), (int(cut.half_neck * s), int(9 * s)), 0, 0, 180,
                    0, -1)
    else:
        cv2.fillPoly(mask, [_pts(right['neck'] + (0, -2 * s), left['neck'] + (0, -2 * s),
                                 g['neck'])], 0)
    return _garment_photo(mask, colour, rng, pattern)


def render_pants_photo(rng, colour, cut, pattern='plain', height=spec.IMAGE_HEIGHT,
                       width=spec.IMAGE_WIDTH):
    """Trousers of ``cut`` photographed on off-white with a soft drop shadow."""
    s = width / 192.0
    g = pants_geometry(cut, s, width)
    right, left = g['right'], g['left']
    outline = _pts(right['waist'], left['waist'], left['hem_outer'], left['hem_inner'],
                   (g['cx'], g['crotch_y']), right['hem_inner'], right['hem_outer'])
    mask = np.zeros((height, width), np.uint8)
    cv2.fillPoly(mask, [outline], 255)
    return _garment_photo(mask, colour, rng, pattern)


def _garment_photo(mask, colour, rng, pattern):
    height, width = mask.shape
    s = width / 192.0
    inside = mask > 0
    paper = rng.uniform(228, 248) + rng.uniform(-5, 5, 3)
    yy, xx = np.mgrid[:height, :width].astype(np.float64)
    angle = rng.uniform(0, 2 * np.pi)
    ramp = ((xx / width - 0.5) * np.cos(angle) + (yy / height - 0.5) * np.sin(angle))
    image = paper[None, None, :] * (1 + rng.uniform(0.0, 0.06) * ramp)[..., None]
    offset = rng.uniform(2, 7) * s
    direction = rng.uniform(np.deg2rad(30), np.deg2rad(150))
    shift = np.float32([[1, 0, offset * np.cos(direction)], [0, 1, offset * np.sin(direction)]])
    shadow = cv2.warpAffine((mask / 255.0).astype(np.float32), shift, (width, height))
    shadow = cv2.GaussianBlur(shadow, (0, 0), rng.uniform(3, 7) * s)
    image *= (1 - rng.uniform(0.12, 0.3) * shadow)[..., None]
    cloth = _texture(mask.shape, colour, rng, pattern)
    cloth *= np.linspace(1.03, 0.95, height)[:, None, None]
    image[inside] = cloth[inside]
    image += rng.normal(0, 1.5, image.shape)
    return Garment(image=np.clip(np.round(image), 0, 255).astype(np.uint8), mask=mask)


def skin_tone(rng):
    """A skin colour between two neighbouring SKIN_TONES, slightly jittered."""
    i = int(rng.integers(len(SKIN_TONES) - 1))
    t = rng.uniform()
    tone = np.array(SKIN_TONES[i], np.float64) * (1 - t) + np.array(SKIN_TONES[i + 1]) * t
    return np.clip(tone + rng.uniform(-6, 6, 3), 0, 255)


def photo_background(rng, height, width):
    """A photograph-like backdrop, float [H,W,3]: a plain wall with a gradient, a noise
    texture at several scales, or a blurred room (floor, furniture, windows); sometimes dark."""
    s = width / 192.0
    dark = rng.uniform() < 0.25
    level = rng.uniform(25, 100) if dark else rng.uniform(120, 245)
    base = np.clip(level * (1 + rng.uniform(-0.18, 0.18, 3)), 0, 255)
    kind = ('wall', 'texture', 'room')[int(rng.integers(3))]
    yy, xx = np.mgrid[:height, :width].astype(np.float64)
    angle = rng.uniform(0, 2 * np.pi)
    ramp = (xx / width - 0.5) * np.cos(angle) + (yy / height - 0.5) * np.sin(angle)
    image = base[None, None, :] + (rng.uniform(0, 60) * ramp)[..., None]
    if kind == 'texture' or rng.uniform() < 0.3:
        for scale in (3, 12, 48):
            cells = rng.normal(0, 1, (int(height / (scale * s)) + 2, int(width / (scale * s)) + 2))
            field = cv2.resize(cells, (width, height), interpolation=cv2.INTER_CUBIC)
            image += (rng.uniform(0, 14 if kind == 'texture' else 6) * field)[..., None]
    if kind == 'room':
        horizon = int(rng.uniform(0.55, 0.85) * height)
        floor = np.clip(base * rng.uniform(0.5, 1.2) + rng.uniform(-25, 25, 3), 0, 255)
        image[horizon:] = floor + (rng.uniform(0, 30) * ramp[horizon:])[..., None]
        for _ in range(int(rng.integers(2, 7))):
            x0, y0 = rng.uniform(-0.2, 1.0) * width, rng.uniform(-0.1, 0.8) * height
            w, h = rng.uniform(0.1, 0.6) * width, rng.uniform(0.1, 0.6) * height
            colour = np.clip(base * rng.uniform(0.4, 1.4) + rng.uniform(-40, 40, 3), 0, 255)
            cv2.rectangle(image, (int(x0), int(y0)), (int(x0 + w), int(y0 + h)),
                          tuple(float(c) for c in colour), -1)
        image = cv2.GaussianBlur(image, (0, 0), rng.uniform(1.5, 5) * s)
    return image


def colour_person_photo(parse, rng, top_colour, bottom_colour, pattern='plain'):
    """The photo look's colours of a parse on a photo-like background, float [H,W,3], unlit
    (``photo_shading`` gives the light)."""
    height, width = parse.shape
    skin = skin_tone(rng)
    hair = np.clip(np.array(HAIR_COLOURS[rng.integers(len(HAIR_COLOURS))], np.float64)
                   + rng.uniform(-12, 12, 3), 0, 255)
    shoe = np.clip(rng.uniform(20, 90) + rng.uniform(-10, 10, 3), 0, 255)
    image = photo_background(rng, height, width)
    top = _texture(parse.shape, top_colour, rng, pattern)
    for label, colour in ((lip.FACE, skin), (lip.LEFT_ARM, skin), (lip.RIGHT_ARM, skin),
                          (lip.LEFT_LEG, skin), (lip.RIGHT_LEG, skin), (lip.HAIR, hair),
                          (lip.PANTS, np.asarray(bottom_colour, np.float64)),
                          (lip.LEFT_SHOE, shoe), (lip.RIGHT_SHOE, shoe)):
        image[parse == label] = colour
    image[parse == lip.UPPER_CLOTHES] = top[parse == lip.UPPER_CLOTHES]
    return image


def _limbs_mask(points, shape, s, arms=True):
    """The arms (as drawn) and the head, bool [H,W]: what casts the soft shadows."""
    caster = np.zeros(shape, np.uint8)
    if arms:
        for sho, elb, wri in ((R_SHOULDER, R_ELBOW, R_WRIST), (L_SHOULDER, L_ELBOW, L_WRIST)):
            _limb(caster, 1, points[sho], points[elb], 12 * s)
            _limb(caster, 1, points[elb], points[wri], 10 * s)
    head = (points[R_EAR] + points[L_EAR]) / 2
    cv2.ellipse(caster, tuple(int(v) for v in np.round(head)), (int(13 * s), int(17 * s)), 0, 0,
                360, 1, -1)
    return caster.astype(bool)


def _folds(region, rng, s, vertical):
    """Soft fold bands across a garment region: a multiplicative field, 1 outside ``region``."""
    height, width = region.shape
    field = np.ones((height, width), np.float64)
    ys, xs = np.nonzero(region)
    count = int(rng.integers(2, 6))
    draws = rng.uniform(size=(count, 6))  # a fixed number of draws whatever the region
    if len(ys) == 0:
        return field
    y0, y1, x0, x1 = ys.min(), ys.max(), xs.min(), xs.max()
    yy, xx = np.mgrid[:height, :width].astype(np.float64)
    for u, v, a, sigma, length, depth in draws:
        cy, cx = y0 + (0.1 + 0.8 * v) * (y1 - y0), x0 + (0.15 + 0.7 * u) * (x1 - x0)
        angle = (np.pi / 2 if vertical and a < 0.5 else 0.0) + (a - 0.5) * np.deg2rad(70)
        along = (xx - cx) * np.cos(angle) + (yy - cy) * np.sin(angle)
        across = -(xx - cx) * np.sin(angle) + (yy - cy) * np.cos(angle)
        sigma, length = (1.5 + 3 * sigma) * s, (12 + 30 * length) * s
        envelope = np.exp(-0.5 * (along / length) ** 2)
        band = (-np.exp(-0.5 * (across / sigma) ** 2)
                + 0.4 * np.exp(-0.5 * ((across - 1.8 * sigma) / sigma) ** 2))
        field *= 1 + (0.06 + 0.16 * depth) * band * envelope
    return np.where(region, field, 1.0)


def photo_shading(parse, points, figure, rng, garments):
    """The light of a photo-look person, float32 [H,W], applied to the finished image: a
    directional light with ambient on the body (normals from the blurred silhouette) and a
    gentle ramp across the scene, soft shadows of the arms and head on the body, fold bands on
    each garment of ``garments`` ((bool region, vertical folds) pairs)."""
    height, width = parse.shape
    s = width / 192.0
    theta = rng.uniform(0, 2 * np.pi)
    elevation = np.deg2rad(rng.uniform(25, 65))
    ambient = rng.uniform(0.35, 0.65)
    light = np.array((np.cos(theta) * np.sin(elevation), np.sin(theta) * np.sin(elevation),
                      np.cos(elevation)))
    body = parse > 0
    blurred = cv2.GaussianBlur(body.astype(np.float32), (0, 0), 5 * s)
    gy, gx = np.gradient(blurred)
    k = 12 * s
    nx, ny = -gx * k, -gy * k
    norm = np.sqrt(nx ** 2 + ny ** 2 + 1)
    lambert = np.clip((nx * light[0] + ny * light[1] + light[2]) / norm, 0, 1)
    front = ambient + (1 - ambient) * light[2]
    shade = np.where(body, (ambient + (1 - ambient) * lambert) / front, 1.0)
    yy, xx = np.mgrid[:height, :width].astype(np.float64)
    ramp = 1 + rng.uniform(0, 0.25) * ((xx / width - 0.5) * np.cos(theta)
                                       + (yy / height - 0.5) * np.sin(theta))
    caster = _limbs_mask(points, parse.shape, s, arms=figure.arms != 'arms_behind')
    distance = rng.uniform(2, 6) * s
    direction = -light[:2] / (np.linalg.norm(light[:2]) + 1e-9)
    shift = np.float32([[1, 0, direction[0] * distance], [0, 1, direction[1] * distance]])
    cast = cv2.warpAffine(caster.astype(np.float32), shift, (width, height))
    cast = cv2.GaussianBlur(cast, (0, 0), rng.uniform(1.5, 3.5) * s)
    shadow = 1 - rng.uniform(0.15, 0.35) * cast * (body & ~caster)
    field = shade * ramp * shadow
    for region, vertical in garments:
        field = field * _folds(region, rng, s, vertical)
    return np.clip(field, 0.3, 1.15).astype(np.float32)


def expose(image, shading, rng):
    """A lit photo: ``image`` (float [H,W,3]) times ``shading`` plus sensor noise, uint8."""
    noise = rng.normal(0, rng.uniform(1.5, 3.5), image.shape)
    return np.clip(np.round(image * shading[..., None] + noise), 0, 255).astype(np.uint8)
