"""A synthetic try-on dataset with ground truth, written in the CP-VTON layout.

Each person wears a product garment warped onto the body by a known smooth deformation: a thin
plate spline fitted between landmarks of the flat product (neckline, shoulders, sleeve ends, hem;
waist, crotch, knees, hems for pants) and the matching places on the body. The person photo, its
LIP parse (the garment label is exactly the warped product's mask), its COCO-18 keypoints, the
product, its mask and the warp itself therefore agree. The warp is stored as the backward
sampling grid (person pixel → product position in [-1, 1], align-corners), the quantity GMM
predicts.
"""

import dataclasses
import json
import os

import cv2
import numpy as np

from everywear_tf import errors
from everywear_tf import fileio
from everywear_tf import spec
from everywear_tf.data import datasets
from everywear_tf.data import frames
from everywear_tf.data import images
from everywear_tf.data import keypoints as keypoint_files
from everywear_tf.data import lip
from everywear_tf.data import parsing
from everywear_tf.data import synthetic as draw

SLEEVES = {spec.MEN_TSHIRTS: (0.35, 0.5), spec.MEN_LONG: (0.9, 1.0)}

# CP-VTON layout, plus the ground-truth warp (warp-grid/<person>.json: the spline's landmarks).
IMAGE, PARSE, CLOTH, CLOTH_MASK, POSE, WARP = ('image', 'image-parse', 'cloth', 'cloth-mask',
                                               'pose', 'warp-grid')
LAYOUT_DIRS = (IMAGE, PARSE, CLOTH, CLOTH_MASK, POSE, WARP)
# Test split only: each person dressed in the next item's product (unpaired ground truth).
IMAGE_SWAP, PARSE_SWAP, WARP_SWAP = 'image-swap', 'image-parse-swap', 'warp-grid-swap'
SWAP_DIRS = (IMAGE_SWAP, PARSE_SWAP, WARP_SWAP)

# The frame a sample is written in: the whole drawn person (``body``), or the upper-body crop
# the pipeline cuts for tops (``upper``): drawn at UPPER_SCALE times the frame's size and cropped
# by frames.upper_frame, so networks for tops train on what they see at inference.
UPPER_SCALE = 2


@dataclasses.dataclass(frozen=True)
class Sample:
    """One person wearing one product, with everything that ties them together."""
    person: np.ndarray  # uint8 [H,W,3]
    parse: np.ndarray  # uint8 [H,W]
    keypoints: np.ndarray  # float32 [18,3]
    cloth: np.ndarray  # uint8 [H,W,3], the flat product on white
    cloth_mask: np.ndarray  # uint8 [H,W] {0,255}
    grid: np.ndarray  # float32 [H,W,2]: person pixel → product (x, y) in [-1, 1]
    warp_points: tuple  # (body points [K,2], product points [K,2]) the warp's TPS interpolates
    # The photo look's light, float32 [H,W]: person = round(unlit · shading + noise), the unlit
    # garment pixels being the product sampled through ``grid``. None for the flat look.
    shading: np.ndarray = None


def _colour(rng):
    return tuple(int(c) for c in rng.integers(20, 230, 3))


def _tps_fit(source, target):
    """Thin-plate spline (kernel r² log r²) mapping source points [K,2] onto target points."""
    k = len(source)
    d2 = ((source[:, None] - source[None]) ** 2).sum(-1)
    kernel = np.where(d2 > 0, d2 * np.log(np.maximum(d2, 1e-300)), 0.0)
    affine = np.concatenate([np.ones((k, 1)), source], axis=1)
    system = np.zeros((k + 3, k + 3))
    system[:k, :k] = kernel + 1e-6 * np.eye(k)
    system[:k, k:] = affine
    system[k:, :k] = affine.T
    rhs = np.concatenate([target, np.zeros((3, 2))])
    coefficients = np.linalg.solve(system, rhs)

    def apply(points):
        # (the two squares added explicitly: the same sum as .sum(-1), several times faster)
        d2 = ((points[:, None, 0] - source[None, :, 0]) ** 2
              + (points[:, None, 1] - source[None, :, 1]) ** 2)
        u = np.where(d2 > 0, d2 * np.log(np.maximum(d2, 1e-300)), 0.0)
        return (u @ coefficients[:k] + np.concatenate(
                [np.ones((len(points), 1)), points], axis=1) @ coefficients[k:])

    return apply


def _top_landmarks(sleeve, s, width):
    """Product landmarks of ``synthetic.render_top``'s geometry, person's right side first."""
    cx, top_y, bottom_y = width / 2, 40 * s, 215 * s
    half_body, half_neck = 42 * s, 14 * s
    reach = (34 + 70 * max(sleeve - 0.45, 0)) * s
    points = [(cx, top_y + 9 * s), (cx, bottom_y), (cx, (top_y + bottom_y) / 2)]
    for side in (-1, 1):
        shoulder = np.array((cx + side * half_body, top_y + 14 * s))
        points += [(cx + side * half_neck, top_y), tuple(shoulder),
                   tuple(shoulder + (side * reach, reach * 0.9)),
                   tuple(shoulder + (side * (reach - 16 * s), reach * 0.9 + 14 * s)),
                   tuple(shoulder + (0, 30 * s)),
                   (cx + side * (half_body - 4 * s), bottom_y)]
    return np.array(points, np.float64)


def _arm_point(points, sho, elb, wri, sleeve):
    if sleeve <= 0.5:
        return draw._along(points[sho], points[elb], sleeve * 2)
    return draw._along(points[elb], points[wri], (sleeve - 0.5) * 2)


def _top_body_points(points, sleeve, s):
    """Where each product landmark of a top lands on the body (same order)."""
    neck, hips = points[draw.NECK], (points[draw.R_HIP] + points[draw.L_HIP]) / 2
    hem_y = hips[1] + 8 * s
    out = [neck + (0, 2 * s), (hips[0], hem_y), (neck + (hips[0], hem_y)) / 2]
    for side, (sho, elb, wri, hp) in ((-1, (draw.R_SHOULDER, draw.R_ELBOW, draw.R_WRIST,
                                            draw.R_HIP)),
                                      (1, (draw.L_SHOULDER, draw.L_ELBOW, draw.L_WRIST,
                                           draw.L_HIP))):
        shoulder = points[sho] + (side * 4 * s, -1 * s)
        end = _arm_point(points, sho, elb, wri, sleeve)
        direction = end - points[sho]
        normal = np.array((-direction[1], direction[0])) / (np.linalg.norm(direction) + 1e-9)
        if normal[0] * side < 0:
            normal = -normal
        width = (8 if sleeve <= 0.5 else 6.5) * s
        hip = points[hp] + (side * 7 * s, 0)
        out += [neck + (side * 9 * s, -3 * s), shoulder, end + normal * width,
                end - normal * width, draw._along(shoulder, hip, 0.28) - (side * 3 * s, 0),
                (hip[0], hem_y)]
    return np.array(out, np.float64)


def _pants_landmarks(s, width):
    """Product landmarks of ``synthetic.render_pants``."""
    cx, top_y, bottom_y = width / 2, 20 * s, 240 * s
    crotch_y = top_y + 70 * s
    knee_y = (crotch_y + bottom_y) / 2
    points = [(cx, top_y), (cx, crotch_y)]
    for side in (-1, 1):
        inner_knee = cx + side * 6 * s * (knee_y - crotch_y) / (bottom_y - crotch_y)
        points += [(cx + side * 34 * s, top_y), (cx + side * 42 * s, bottom_y),
                   (cx + side * 6 * s, bottom_y), (cx + side * 38 * s, knee_y),
                   (inner_knee, knee_y), (cx + side * 36 * s, crotch_y)]
    return np.array(points, np.float64)


def _pants_body_points(points, s):
    hips = (points[draw.R_HIP] + points[draw.L_HIP]) / 2
    out = [hips + (0, -8 * s), hips + (0, 16 * s)]
    for side, (hp, kne, ank) in ((-1, (draw.R_HIP, draw.R_KNEE, draw.R_ANKLE)),
                                 (1, (draw.L_HIP, draw.L_KNEE, draw.L_ANKLE))):
        hem = draw._along(points[kne], points[ank], 0.85)
        knee_mid = draw._along(points[kne], hem, 0.1)
        out += [points[hp] + (side * 9 * s, -8 * s), hem + (side * 9 * s, 0),
                hem - (side * 8 * s, 0), knee_mid + (side * 11 * s, 0),
                knee_mid - (side * 10 * s, 0), points[hp] + (side * 10 * s, 16 * s)]
    return np.array(out, np.float64)


def dense_grid(body_points, product_points, height, width):
    """The backward warp as pixel maps (x, y) [H,W] of product positions per person pixel."""
    to_product = _tps_fit(np.asarray(body_points, np.float64),
                          np.asarray(product_points, np.float64))
    yy, xx = np.mgrid[:height, :width].astype(np.float64)
    mapped = to_product(np.stack([xx.ravel(), yy.ravel()], axis=1)).reshape(height, width, 2)
    return mapped[..., 0], mapped[..., 1]


def _normalised(map_x, map_y):
    height, width = map_x.shape
    return np.stack([map_x / (width - 1) * 2 - 1, map_y / (height - 1) * 2 - 1],
                    axis=-1).astype(np.float32)


def _warp(product, product_mask, body_points, product_points, height, width):
    """Backward-warps the product onto the body; returns (rgb, bool mask, grid [-1,1])."""
    map_x, map_y = dense_grid(body_points, product_points, height, width)
    map_x, map_y = map_x.astype(np.float32), map_y.astype(np.float32)
    rgb = cv2.remap(product, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                    borderValue=(255, 255, 255))
    mask = cv2.remap(product_mask, map_x, map_y, cv2.INTER_LINEAR,
                     borderMode=cv2.BORDER_CONSTANT, borderValue=0) >= 128
    return rgb, mask, _normalised(map_x.astype(np.float64), map_y.astype(np.float64))


@dataclasses.dataclass(frozen=True)
class Style:
    """Everything about a drawn person but the product garment, so one person can be dressed
    in several products (ground truth for unpaired try-on)."""
    points: np.ndarray  # [18,2] skeleton
    colour_seed: int  # skin, hair, background and shading noise
    top_colour: tuple
    bottom_colour: tuple
    other_pattern: str  # the pattern of the garment that is not the category's
    other_sleeve: float  # sleeve of the drawn top when the category is pants
    look: str = draw.FLAT  # synthetic.LOOKS
    figure: draw.Figure = None  # the photo look's pose, body shape and hair


@dataclasses.dataclass(frozen=True)
class Product:
    """One product to dress a person in: the flat garment photo and, for tops, its sleeve."""
    garment: draw.Garment
    sleeve: float  # for tops: where the sleeve ends on the arm
    cut: object = None  # the photo look's synthetic.TopCut or PantsCut (None: flat)


def _is_top(category):
    return spec.frame_of(category) == spec.UPPER_FRAME


def sample_style(rng, height=spec.IMAGE_HEIGHT, width=spec.IMAGE_WIDTH, look=draw.FLAT,
                 category=None):
    """A random Style (skeleton, colours, the other garment) for a [height, width] image.

    The photo look also samples a Figure (pose, body shape, hair); for long sleeves
    (``category`` men_long) no pose puts a forearm in front of or behind the torso, or a
    lowered arm against it, since the sleeve would have to be warped over the garment's body,
    which one backward grid cannot do without folding.
    """
    if draw.check_look(look) == draw.PHOTO:
        long_sleeves = category == spec.MEN_LONG
        poses = tuple(p for p in draw.ARM_POSES
                      if not long_sleeves or p not in draw.LONG_SLEEVE_EXCLUDED)
        points, figure = draw.sample_figure_skeleton(rng, height, width, poses,
                                                     clear_arms=long_sleeves)
        return Style(points=points, colour_seed=int(rng.integers(2 ** 31)),
                     top_colour=_colour(rng), bottom_colour=_colour(rng),
                     other_pattern=draw.PATTERNS[int(rng.integers(len(draw.PATTERNS)))],
                     other_sleeve=float(rng.uniform(0.35, 1.0)), look=draw.PHOTO,
                     figure=figure)
    return Style(points=draw.sample_skeleton(rng, height, width),
                 colour_seed=int(rng.integers(2 ** 31)), top_colour=_colour(rng),
                 bottom_colour=_colour(rng),
                 other_pattern=draw.PATTERNS[int(rng.integers(len(draw.PATTERNS)))],
                 other_sleeve=float(rng.uniform(0.35, 1.0)))


def sample_product(rng, category, height=spec.IMAGE_HEIGHT, width=spec.IMAGE_WIDTH,
                   look=draw.FLAT):
    """A random Product of ``category``: a top with a sleeve length in the category's range, or
    pants (sleeve 0), drawn at [height, width]. The photo look varies the cut (fitted/loose,
    crew/V neck, sleeve width, length; slim/wide legs, length) and photographs it on off-white
    with a drop shadow."""
    is_top = _is_top(category)
    pattern = draw.PATTERNS[int(rng.integers(len(draw.PATTERNS)))]
    if draw.check_look(look) == draw.PHOTO:
        if is_top:
            cut = draw.sample_top_cut(rng, rng.uniform(*SLEEVES[category]))
            garment = draw.render_top_photo(rng, _colour(rng), cut, pattern, height, width)
            return Product(garment, cut.sleeve, cut)
        cut = draw.sample_pants_cut(rng)
        return Product(draw.render_pants_photo(rng, _colour(rng), cut, pattern, height, width),
                       0.0, cut)
    if is_top:
        sleeve = float(rng.uniform(*SLEEVES[category]))
        return Product(draw.render_top(rng, _colour(rng), sleeve=sleeve, pattern=pattern,
                                       height=height, width=width), sleeve)
    return Product(draw.render_pants(rng, _colour(rng), pattern=pattern, height=height,
                                     width=width), 0.0)


def dress(style, product, category):
    """The person of ``style`` wearing ``product`` (a garment of ``category``)."""
    if style.look == draw.PHOTO:
        return _dress_photo(style, product, category)
    is_top = _is_top(category)
    height, width = product.garment.mask.shape
    s = width / 192.0
    points = style.points
    garment = product.garment
    colours = np.random.default_rng(style.colour_seed)
    if is_top:
        warp_points = (_top_body_points(points, product.sleeve, s),
                       _top_landmarks(product.sleeve, s, width))
        rgb, mask, grid = _warp(garment.image, garment.mask, *warp_points, height, width)
        parse = draw.draw_parse(points, top=True, sleeve=product.sleeve, height=height,
                                width=width, top_mask=mask)
        image = draw.colour_person(parse, colours, style.top_colour, style.bottom_colour)
        region = parse == lip.UPPER_CLOTHES
    else:
        warp_points = (_pants_body_points(points, s), _pants_landmarks(s, width))
        rgb, mask, grid = _warp(garment.image, garment.mask, *warp_points, height, width)
        parse = draw.draw_parse(points, top=True, sleeve=style.other_sleeve, height=height,
                                width=width, pants_mask=mask)
        image = draw.colour_person(parse, colours, style.top_colour, style.bottom_colour,
                                   style.other_pattern)
        region = parse == lip.PANTS
    image[region] = rgb[region]
    keypoints = np.concatenate([points, np.ones((spec.NUM_KEYPOINTS, 1))], axis=1)
    return Sample(person=image, parse=parse, keypoints=keypoints.astype(np.float32),
                  cloth=garment.image, cloth_mask=garment.mask, grid=grid,
                  warp_points=warp_points)


def _top_body_points_photo(points, cut, figure, s, width):
    """Where each landmark of a photo-look top (``_top_landmarks_photo``) lands on the body."""
    product = draw.top_geometry(cut, s, width)
    neck, hips = points[draw.NECK], (points[draw.R_HIP] + points[draw.L_HIP]) / 2
    hem_y = hips[1] + (4 + (cut.length - 198) / 27 * 10) * s
    collar_y = neck[1] - 3 * s
    ratio = (hem_y - collar_y) / (product['bottom_y'] - product['top_y'])
    neck_point = np.array((neck[0], collar_y + (product['neck'][1] - product['top_y']) * ratio))
    ease = (cut.half_body - 38) * 0.35
    elbows = []
    out = [neck_point, (hips[0], hem_y), (neck_point + (hips[0], hem_y)) / 2]
    for side, (sho, elb, wri, hp) in ((-1, (draw.R_SHOULDER, draw.R_ELBOW, draw.R_WRIST,
                                            draw.R_HIP)),
                                      (1, (draw.L_SHOULDER, draw.L_ELBOW, draw.L_WRIST,
                                           draw.L_HIP))):
        shoulder = points[sho] + (side * 4 * s, -1 * s)
        end = _arm_point(points, sho, elb, wri, cut.sleeve)
        half = (8 if cut.sleeve <= 0.5 else 6.5) * s * cut.cuff / 16
        # Loose cuts hang straight from the shoulders (a wider hem); the waist covers the belly.
        hip = points[hp] + (side * (7 + 1.5 * ease) * s, 0)
        waist = draw.waist_point(points, side, s,
                                 figure.belly + max(1.5, 1.5 + 0.5 * ease - 0.3 * cut.taper))
        # The cuff lies across the forearm for a long sleeve, across shoulder→end otherwise.
        across = _outer(end - points[elb] if cut.sleeve > 0.5 else end - points[sho], side)
        out += [neck + (side * 9 * s * cut.half_neck / 14, -3 * s), shoulder,
                end + across * half, end - across * half,
                draw._along(shoulder, points[hp] + (side * 7 * s, 0), 0.28) - (side * 3 * s, 0),
                waist, (hip[0], hem_y)]
        if cut.sleeve > 0.5:  # a long sleeve follows upper arm and forearm (_sleeve_seams)
            outer, inner = _body_sleeve_seams(points, (sho, elb, wri), cut, side, s,
                                              out[-6], out[-3], end, half)
            elbows += _sleeve_points(outer, inner, points[elb] - points[sho],
                                     end - points[elb], s)
    return np.array(out + elbows, np.float64)


def _outer(direction, side):
    """The unit normal of an arm's ``direction`` on the sleeve's outer edge (the product's
    upper one), the same side of the arm however it turns (a raised arm keeps it headwards)."""
    return side * np.array((direction[1], -direction[0])) / (np.linalg.norm(direction) + 1e-9)


# A long sleeve is pinned along both seams and its axis, on the upper arm and on the forearm,
# so the spline bends it at the elbow instead of curling it (two pairs of landmarks alone let
# the sleeve's end swing around the wrist). Each seam is a polyline root → elbow → cuff, the
# same on the product (straight) and on the body (bent at the elbow).
SLEEVE_STATIONS = (1 / 3, 2 / 3)  # extra stations along each of the two segments
BEYOND_CUFF = 10.0  # pixels (of a 192-wide image) past the cuff, pinned off the garment


def _body_sleeve_seams(points, joints, cut, side, s, shoulder, underarm, end, half):
    """(outer, inner) seams of a long sleeve on the body: root, elbow, cuff on each."""
    sho, elb, _ = joints
    upper = points[elb] - points[sho]
    elbow_half = half * 1.15
    # At the elbow the seams sit on the bisector of the two segments' normals, so that the
    # seam does not cross itself on the inside of the bend.
    normal = _outer(upper, side) + _outer(end - points[elb], side)
    normal /= np.linalg.norm(normal) + 1e-9
    outer = [shoulder, points[elb] + normal * elbow_half, end + _outer(end - points[elb], side)
             * half]
    inner = [underarm, points[elb] - normal * elbow_half, end - _outer(end - points[elb], side)
             * half]
    return outer, inner


def _sleeve_points(outer, inner, upper, lower, s):
    """Landmarks of a long sleeve: each seam and the axis between them at SLEEVE_STATIONS of
    both segments, the elbow's axis point, and a point past the cuff (off the garment).
    ``upper`` and ``lower`` are the directions of the two segments (the past-cuff point
    continues ``lower``)."""
    out = []
    for a, b in ((0, 1), (1, 2)):
        for t in SLEEVE_STATIONS:
            o, i = draw._along(outer[a], outer[b], t), draw._along(inner[a], inner[b], t)
            out += [o, i, (o + i) / 2]
    out.append((outer[1] + inner[1]) / 2)
    cuff = (outer[2] + inner[2]) / 2
    out.append(cuff + lower / (np.linalg.norm(lower) + 1e-9) * BEYOND_CUFF * s)
    return [np.asarray(p, np.float64) for p in out]


def _top_landmarks_photo(cut, s, width, points=None):
    """Product landmarks of a photo-look top; a long sleeve's elbow (on both seams, at the
    share of the sleeve the upper arm takes on the skeleton ``points``) comes last."""
    g = draw.top_geometry(cut, s, width)
    skeleton = points
    points = [g['neck'], (g['cx'], g['bottom_y']), (g['cx'], (g['top_y'] + g['bottom_y']) / 2)]
    for name in ('right', 'left'):
        part = g[name]
        points += [part[k] for k in ('neck', 'shoulder', 'sleeve_outer', 'sleeve_inner',
                                     'underarm', 'waist', 'hem')]
    if cut.sleeve > 0.5:
        for name, (sho, elb, wri) in (('right', (draw.R_SHOULDER, draw.R_ELBOW, draw.R_WRIST)),
                                      ('left', (draw.L_SHOULDER, draw.L_ELBOW, draw.L_WRIST))):
            part = g[name]
            upper = np.linalg.norm(skeleton[elb] - skeleton[sho])
            lower = np.linalg.norm(_arm_point(skeleton, sho, elb, wri, cut.sleeve) - skeleton[elb])
            fraction = upper / (upper + lower + 1e-9)
            outer = [part['shoulder_top'], draw._along(part['shoulder_top'], part['sleeve_outer'],
                                                       fraction), part['sleeve_outer']]
            inner = [part['underarm'], draw._along(part['underarm'], part['sleeve_inner'],
                                                   fraction), part['sleeve_inner']]
            direction = part['sleeve_outer'] - part['shoulder_top']
            points += _sleeve_points(outer, inner, direction, direction, s)
    return np.array(points, np.float64)


def _pants_body_points_photo(points, cut, s):
    hips = (points[draw.R_HIP] + points[draw.L_HIP]) / 2
    out = [hips + (0, -8 * s), hips + (0, 16 * s)]
    legs = cut.legs
    for side, (hp, kne, ank) in ((-1, (draw.R_HIP, draw.R_KNEE, draw.R_ANKLE)),
                                 (1, (draw.L_HIP, draw.L_KNEE, draw.L_ANKLE))):
        hem = draw._along(points[kne], points[ank], cut.length)
        knee_mid = draw._along(points[kne], hem, 0.1)
        out += [points[hp] + (side * 9 * s, -8 * s), hem + (side * (8 + 4 * legs) * s, 0),
                hem - (side * (7.5 + 3 * legs) * s, 0), knee_mid + (side * (10 + 2 * legs) * s, 0),
                knee_mid - (side * (9 + 2 * legs) * s, 0), points[hp] + (side * 10 * s, 16 * s)]
    return np.array(out, np.float64)


def _pants_landmarks_photo(cut, s, width):
    g = draw.pants_geometry(cut, s, width)
    points = [(g['cx'], g['top_y']), (g['cx'], g['crotch_y'])]
    for name in ('right', 'left'):
        part = g[name]
        points += [part[k] for k in ('waist', 'hem_outer', 'hem_inner', 'knee_outer',
                                     'knee_inner', 'crotch_outer')]
    return np.array(points, np.float64)


def _dress_photo(style, product, category):
    """``dress`` in the photo look: the garment is composed unlit, then the light (shading,
    folds, soft shadows) is applied to the whole person image and kept in Sample.shading."""
    height, width = product.garment.mask.shape
    s = width / 192.0
    points, figure, garment = style.points, style.figure, product.garment
    colours = np.random.default_rng(style.colour_seed)
    light = np.random.default_rng([style.colour_seed, 1])
    if _is_top(category):
        warp_points = (_top_body_points_photo(points, product.cut, figure, s, width),
                       _top_landmarks_photo(product.cut, s, width, points))
        rgb, mask, grid = _warp(garment.image, garment.mask, *warp_points, height, width)
        parse = draw.draw_parse(points, top=True, sleeve=product.sleeve, height=height,
                                width=width, top_mask=mask, figure=figure)
        image = draw.colour_person_photo(parse, colours, style.top_colour, style.bottom_colour)
        region = parse == lip.UPPER_CLOTHES
        garments = ((region, False), (parse == lip.PANTS, True))
    else:
        warp_points = (_pants_body_points_photo(points, product.cut, s),
                       _pants_landmarks_photo(product.cut, s, width))
        rgb, mask, grid = _warp(garment.image, garment.mask, *warp_points, height, width)
        parse = draw.draw_parse(points, top=True, sleeve=style.other_sleeve, height=height,
                                width=width, pants_mask=mask, figure=figure)
        image = draw.colour_person_photo(parse, colours, style.top_colour, style.bottom_colour,
                                         style.other_pattern)
        region = parse == lip.PANTS
        garments = ((region, True), (parse == lip.UPPER_CLOTHES, False))
    image[region] = rgb[region]
    shading = draw.photo_shading(parse, points, figure, light, garments)
    keypoints = np.concatenate([points, np.ones((spec.NUM_KEYPOINTS, 1))], axis=1)
    return Sample(person=draw.expose(image, shading, light), parse=parse,
                  keypoints=keypoints.astype(np.float32), cloth=garment.image,
                  cloth_mask=garment.mask, grid=grid, warp_points=warp_points, shading=shading)


def render_sample(rng, category, height=spec.IMAGE_HEIGHT, width=spec.IMAGE_WIDTH,
                  look=draw.FLAT):
    """A new person wearing a new product of ``category`` (``look``: synthetic.LOOKS)."""
    style = sample_style(rng, height, width, look, category)
    return dress(style, sample_product(rng, category, height, width, look), category)


def pipeline_frame(category):
    """The frame the pipeline tries ``category`` on: the upper crop for tops, else the body."""
    return spec.frame_of(category)


def _affine(transform, points):
    return np.asarray(points, np.float64) @ transform[:, :2].T + transform[:, 2]


def crop_upper(sample):
    """``sample`` (drawn at any size) as the pipeline's upper-body frame: person, parse and
    keypoints through frames.upper_frame, the product through frames.garment_frame, and
    the warp's landmarks through both transforms (so the grid still ties them together)."""
    frame = frames.upper_frame(sample.person, sample.parse, sample.keypoints)
    cloth, cloth_mask = frames.garment_frame(sample.cloth, sample.cloth_mask)
    cloth_mask = np.where(cloth_mask >= 128, 255, 0).astype(np.uint8)
    garment_transform = frames.box_transform(frames.letterbox_box(sample.cloth.shape[:2]))
    body = _affine(frame.transform, sample.warp_points[0])
    product = _affine(garment_transform, sample.warp_points[1])
    grid = _normalised(*dense_grid(body, product, *spec.FRAME_SHAPE))
    shading = (None if sample.shading is None else
               frames.warp_image(sample.shading, frame.transform, border=1.0))
    return Sample(person=frame.image, parse=frame.parse, keypoints=frame.keypoints, cloth=cloth,
                  cloth_mask=cloth_mask, grid=grid, warp_points=(body, product), shading=shading)


def framed_sample(seed, i, category, frame=spec.BODY_FRAME, product_of=None, look=draw.FLAT):
    """Person ``i`` wearing the product of item ``product_of`` (default: its own) in ``frame``,
    drawn in ``look`` (synthetic.LOOKS)."""
    if frame not in spec.FRAMES:
        raise ValueError(f'unknown frame {frame!r}; expected one of {spec.FRAMES}')
    size = (spec.FRAME_SHAPE if frame == spec.BODY_FRAME
            else tuple(UPPER_SCALE * n for n in spec.FRAME_SHAPE))
    style, product = item(seed, i, category, *size, look=look)
    if product_of is not None:
        product = item(seed, product_of, category, *size, look=look)[1]
    sample = dress(style, product, category)
    return sample if frame == spec.BODY_FRAME else crop_upper(sample)


def item(seed, i, category, height=spec.IMAGE_HEIGHT, width=spec.IMAGE_WIDTH, look=draw.FLAT):
    """(style, product) of item ``i``: each item has its own generator, so any item (or its
    product alone) can be regenerated identically."""
    rng = np.random.default_rng([seed, i])
    if draw.check_look(look) == draw.FLAT:
        style = sample_style(rng, height, width)
        return style, sample_product(rng, category, height, width)
    style = sample_style(rng, height, width, look, category)
    return style, sample_product(rng, category, height, width, look)


def write_split(root, mode, category, count, seed, log=None, start=0, frame=spec.BODY_FRAME,
                look=draw.FLAT):
    """Writes ``count`` samples of one split in the CP-VTON layout under ``root/mode``, each in
    ``frame`` (spec.BODY_FRAME or spec.UPPER_FRAME), drawn in ``look`` (synthetic.LOOKS:
    ``flat`` or ``photo``).

    Names: person ``NNNNNN_0.png`` wearing product ``NNNNNN_1.png``; pairs in
    ``{mode}_pairs.txt``. The test split also dresses each person in the next item's product
    (``image-swap/``, ``image-parse-swap/``, ``warp-grid-swap/``) and lists those pairs in
    ``test_pairs_unpaired.txt``: unpaired try-on with ground truth. Files are written atomically
    and complete items are skipped, so an interrupted run resumes.
    """
    log = log or (lambda message: None)
    draw.check_look(look)
    split = os.path.join(root, mode)
    dirs = LAYOUT_DIRS + (SWAP_DIRS if mode == 'test' else ())
    for directory in dirs:
        os.makedirs(os.path.join(split, directory), exist_ok=True)
    names, unpaired = [], []
    end = start + count
    for i in range(start, end):
        person_name, cloth_name = f'{i:06d}_0.png', f'{i:06d}_1.png'
        names.append((person_name, cloth_name))
        j = start + (i - start + 1) % count
        unpaired.append((person_name, f'{j:06d}_1.png'))
        outputs = [(IMAGE, PARSE, WARP, None)]
        if mode == 'test':
            outputs.append((IMAGE_SWAP, PARSE_SWAP, WARP_SWAP, j))
        paths = [os.path.join(split, POSE, f'{i:06d}_0_keypoints.json'),
                 os.path.join(split, CLOTH, cloth_name),
                 os.path.join(split, CLOTH_MASK, cloth_name)]
        for image_dir, parse_dir, warp_dir, _ in outputs:
            paths += [os.path.join(split, image_dir, person_name),
                      os.path.join(split, parse_dir, person_name),
                      os.path.join(split, warp_dir, f'{i:06d}_0.json')]
        if all(os.path.exists(path) for path in paths):
            continue
        sample = framed_sample(seed, i, category, frame, look=look)
        fileio.atomic_write_bytes(paths[0], keypoint_files.openpose_json(sample.keypoints).encode())
        images.write_png(paths[1], sample.cloth)
        images.write_png(paths[2], sample.cloth_mask)
        for (_, _, _, other), offset in zip(outputs, (3, 6)):
            if other is not None:
                sample = framed_sample(seed, i, category, frame, product_of=other, look=look)
            images.write_png(paths[offset], sample.person)
            parsing.write_parse_png(paths[offset + 1], sample.parse)
            fileio.atomic_write_bytes(paths[offset + 2], _warp_json(sample))
        if (i - start + 1) % 50 == 0:
            log(f'{category} {mode}: {i - start + 1}/{count}')
    _write_pairs(os.path.join(root, f'{mode}_pairs.txt'), names)
    if mode == 'test':
        _write_pairs(os.path.join(root, 'test_pairs_unpaired.txt'), unpaired)
    return names


def _write_pairs(path, pairs):
    fileio.atomic_write_bytes(path, ''.join(f'{p} {c}\n' for p, c in pairs).encode())


def _warp_json(sample):
    body, product = sample.warp_points
    height, width = sample.parse.shape
    return json.dumps({'kind': 'tps', 'kernel': 'r2_log_r2', 'image_size': [height, width],
                       'body_points': np.round(body, 6).tolist(),
                       'product_points': np.round(product, 6).tolist()}).encode()


def write_dataset(root, category, train=2000, test=200, seed=0, log=None, frame=None,
                  look=draw.FLAT):
    """The train and test splits of one category under ``root`` (e.g. synthetic/men_tshirts),
    in ``frame`` (default: the one the pipeline tries the category on), drawn in ``look``."""
    frame = frame or pipeline_frame(category)
    write_split(root, 'train', category, train, seed, log, frame=frame, look=look)
    write_split(root, 'test', category, test, seed, log, start=train, frame=frame, look=look)
    return root


def read_grid(path):
    """The ground-truth warp of a ``warp-grid/*.json`` file as a grid [H,W,2] in [-1, 1].

    The file holds the spline's landmark pairs (a few hundred bytes instead of a dense grid);
    the grid is recomputed exactly as it was drawn.
    """
    path = errors.require_file(path)
    try:
        with open(path) as f:
            document = json.load(f)
        height, width = document['image_size']
        body, product = document['body_points'], document['product_points']
    except (ValueError, KeyError, TypeError) as e:
        raise errors.DatasetError(path, f'not a warp-grid file: {e!r}') from None
    return _normalised(*dense_grid(body, product, height, width))


class WithGridTargets:
    """A written synthetic split read with its ground-truth grids: every item of ``dataset`` (a
    datasets.CpVtonDataset over ``<root>/<mode>``) also holds ``grid_target`` [H,W,2], read from
    ``warp-grid/<person>.json`` (for GMM's supervised grid term)."""

    def __init__(self, dataset, root, mode='train'):
        self.dataset = dataset
        self.directory = os.path.join(root, mode, WARP)

    def __len__(self):
        return len(self.dataset)

    def read(self, i):
        """Item ``i`` of the dataset plus its ground-truth grid."""
        item = self.dataset.read(i)
        item[spec.GRID_TARGET] = read_grid(os.path.join(self.directory,
                                                        f'{item[datasets.PERSON_ID]}.json'))
        return item


def signature_item(sample):
    """A Sample as the signature inputs of ARCHITECTURE.md §3 (keypoints: negative = missing)."""
    keypoints = np.where(sample.keypoints[:, 2:] > 0, sample.keypoints[:, :2],
                         spec.MISSING_KEYPOINT).astype(np.float32)
    return {spec.PERSON: sample.person, spec.PARSE: sample.parse, spec.KEYPOINTS: keypoints,
            spec.CLOTH: sample.cloth, spec.CLOTH_MASK: sample.cloth_mask}


class RenderedDataset:
    """Samples drawn on demand (item i from seed (seed, i)), with the dataset readers' interface.

    ``unpaired``: person i (wearing product i) is given product i+1, and the ground truth
    (``target_person``, ``target_parse``) is person i wearing product i+1.
    For tests and quick experiments; real training reads a written dataset.
    """

    def __init__(self, category, size, seed=0, unpaired=False, frame=spec.BODY_FRAME,
                 look=draw.FLAT):
        self.category, self.size, self.seed, self.unpaired = category, size, seed, unpaired
        self.frame, self.look = frame, draw.check_look(look)

    def __len__(self):
        return self.size

    def sample(self, i, product_of=None):
        """The Sample of person ``i`` wearing the product of item ``product_of`` (default: its
        own), in this dataset's frame."""
        return framed_sample(self.seed, i, self.category, self.frame, product_of, self.look)

    def read(self, i):
        """Item ``i`` as the dataset readers give it: the GMM signature inputs, person_id and
        cloth_id; unpaired, item i+1's cloth and cloth mask with the ground truth target_person
        and target_parse."""
        worn = self.sample(i)
        out = {**signature_item(worn), 'person_id': f'{i:06d}_0', 'cloth_id': f'{i:06d}_1'}
        if self.unpaired:
            j = (i + 1) % self.size
            target = self.sample(i, product_of=j)
            out.update({spec.CLOTH: target.cloth, spec.CLOTH_MASK: target.cloth_mask,
                        'cloth_id': f'{j:06d}_1', datasets.TARGET_PERSON: target.person,
                        datasets.TARGET_PARSE: target.parse})
        return out
