"""A LIP human parse of a photo by rules, from its pose, person mask and face landmarks.

``ParseModel`` labels each pixel of the person (``mask`` ≥ 0.5, opened by a 3×3 window to drop
specks) from geometry around BlazePose's landmarks and colour models. Landmarks whose visibility
is below 0.5 are not used. Lengths are in ``sd`` (shoulder to shoulder), ``hd`` (hip to hip),
``T`` (the torso, shoulders' to hips' midpoint) and the face oval's width and height.

Colour:

- Skin: the face's colour in YCrCb (JPEG's full-range matrix), fitted on the face oval shrunk
  towards its centre (× 0.8 for a face mesh, × 0.7 for the fallback ellipse) below the eyes:
  the mean and covariance of the pixels within 2.5 robust deviations (1.4826 × MAD, at least
  the floors) of the channels' medians, the floors' squares (Y 15, Cr 3, Cb 3 grey levels) added
  to the diagonal; a pixel is skin when its squared Mahalanobis distance is ≤ 12. A greyscale
  photo (at most 0.1 % of its pixels with channels more than 16 grey levels apart), a hidden head
  or a face sample under 30 pixels gives no skin model: ``skin_split`` is false, nothing is skin.
- Two regions told apart by colour histograms (8 levels per RGB channel): a pixel goes to the
  region whose histogram is 3 times higher at its colour, else geometry decides. In the head,
  skin-coloured pixels likelier in the hair (head zone above the eyes, outside the oval) than
  in the skin sample are not skin; without a skin model (greyscale) these two histograms alone
  tell hair from face. In the band from 0.35 T above to 0.5 T below the hips, the
  clothes likelier in the pants' colours than the belly's (0.4-0.8 T below the shoulders) are
  pants, those likelier in the belly's upper clothes. The pants' sample is the lowest 0.15 T of
  the clothes in the legs' region between 0.15 T and 0.8 T below the hips: the thighs above the
  knees on a full-length photo, and on a photo cut higher its lowest rows, so that a long top
  whose hem falls into the band does not colour it (the photo look's loose tops reach 0.47 T
  below the hips).

Labels, each rule over the ones before it:

- Pants 9: pixels 0.07 T or more below the hips' line (where the drawn tops end; "the band"
  above) inside the legs' envelope (hips widened by 0.6 hd, knees 0.75 hd, ankles 0.7 hd; hidden
  knees or ankles extend it to the photo's edge) or within 0.55 hd of the hip-knee-ankle
  segments.
- Upper clothes 5: the torso quad above the band (shoulders widened by 0.15 sd, its top 0.2 sd
  above them or at the chin, hips widened by 0.6 hd; without hips down to the photo's edge); the
  band's colour decision; sleeves: within 0.3 sd of the upper arm and forearm up to the wrist
  (below the band only where nearer an arm than a leg).
- Hair 2: the head zone, an ellipse 1.8 face widths by 1.7 face heights centred 0.15 heights
  above the face's centre, down to the chin's line.
- Shoes 18 / 19: non-skin within 0.55 hd of the ankle, heel and toe (BlazePose 27-32), to the
  nearer foot: at most 0.055 hd above the ankle, or up to 0.33 hd above it where the colour is
  3 times likelier in the shoes (that zone's clothes 0.14 hd or more below the ankle) than in
  the pants (their clothes beyond 0.83 hd of the feet), and not where it is the reverse; there
  the 5×5 window's majority of the two colours decides, so a dark hem is not speckled with shoe.
- Skin above the band, in the torso quad or within 0.44 sd of an arm: the nearer arm (bare chest
  skin too, as the drawn data labels it); skin in the pants' region: the nearer leg. Sides go by
  the nearer limb's segments, or by the body's midline beyond 0.5 sd (hd) of both.
- Arms 14 / 15 (the person's left / right: BlazePose 11-13-15 and 12-14-16, the hand to the
  index and pinky, else 0.35 forearms past the wrist): skin within 0.22 sd of the arm's
  segments; without a skin model, the hands (within 0.22 sd of wrist to hand tip).
- Face 13: the head zone below the eyes where not hair-coloured (ears, a profile's nose: not
  skin, or without a skin model likelier in the hair's histogram), skin in the neck's quad (chin
  to 0.05 sd below the shoulders' line, 0.9 to 1 face widths wide; without a skin model its
  upper half), then the face oval (``face.FACE_OVAL``); inside the fallback ellipse, the
  hair-coloured pixels above the eyes are hair.
- Everything else is background 0, person pixels no rule claims too (beyond the torso, the
  limbs' zones and the head zone). Hidden shoulders take 2.2 face widths as ``sd``; hidden
  hips leave no band, no pants, legs or shoes; hidden limb segments leave skin to the nearer
  visible limb or the midline.

LIP labels this cannot produce, and what their regions become: hat 1 → hair 2 (face 13 where
skin-coloured); glove 3 → arms 14/15 where skin-coloured, else sleeves 5; sunglasses 4 → face
13; dress 6 → upper clothes 5 above the band, pants 9 below it (within the legs' envelope, else
background); coat 7 → upper clothes 5, its tails pants 9; socks 8 → shoes 18/19 near the feet,
else pants 9; jumpsuits 10 → upper clothes 5 / pants 9 split at the band; scarf 11 → upper
clothes 5 (hair 2 next to the face); skirt 12 → pants 9.

Large photos are labelled at a working size (area-reduced so the longer side is at most 1024)
and the labels resized back nearest-neighbour. Pixel coordinates put a pixel's centre at its
integer (column, row), as ``pose.py`` and ``face.py`` do. Everything runs in the graph (core TF
ops; the polygons are even-odd tests by one sorted search per row).
"""

import numpy as np
import tensorflow as tf

from everywear_tf.data import lip
from everywear_tf.inference.frontend import face

WORKING_SIZE = 1024
MASK_THRESHOLD = 0.5
VISIBLE = 0.5

# BlazePose indices (the person's left first).
NOSE, LEFT_EYE, RIGHT_EYE, LEFT_EAR, RIGHT_EAR = 0, 2, 5, 7, 8
LEFT_SHOULDER, RIGHT_SHOULDER, LEFT_ELBOW, RIGHT_ELBOW, LEFT_WRIST, RIGHT_WRIST = range(11, 17)
LEFT_PINKY, RIGHT_PINKY, LEFT_INDEX, RIGHT_INDEX = 17, 18, 19, 20
LEFT_HIP, RIGHT_HIP, LEFT_KNEE, RIGHT_KNEE, LEFT_ANKLE, RIGHT_ANKLE = range(23, 29)
LEFT_HEEL, RIGHT_HEEL, LEFT_FOOT, RIGHT_FOOT = 29, 30, 31, 32
_HEAD_POINTS = (NOSE, LEFT_EYE, RIGHT_EYE, LEFT_EAR, RIGHT_EAR)
# One side's (shoulder, elbow, wrist, pinky, index, hip, knee, ankle, heel, foot index).
_LEFT = (LEFT_SHOULDER, LEFT_ELBOW, LEFT_WRIST, LEFT_PINKY, LEFT_INDEX, LEFT_HIP, LEFT_KNEE,
         LEFT_ANKLE, LEFT_HEEL, LEFT_FOOT)
_RIGHT = (RIGHT_SHOULDER, RIGHT_ELBOW, RIGHT_WRIST, RIGHT_PINKY, RIGHT_INDEX, RIGHT_HIP,
          RIGHT_KNEE, RIGHT_ANKLE, RIGHT_HEEL, RIGHT_FOOT)
# Positions in face.FACE_OVAL of the forehead top (10), the person's left and right (454, 234)
# and the chin (152).
_OVAL_TOP, _OVAL_LEFT, _OVAL_CHIN, _OVAL_RIGHT = 0, 8, 18, 28

# The skin model.
YCRCB = np.array([[0.299, 0.587, 0.114], [0.5, -0.418688, -0.081312],
                  [-0.168736, -0.331264, 0.5]])  # rows Y, Cr, Cb; Cr and Cb + 128
SKIN_FLOORS = (15.0, 3.0, 3.0)
SKIN_INLIER = 2.5
SKIN_THRESHOLD = 12.0
MIN_SKIN_SAMPLE = 30
SAMPLE_SHRINK_MESH = 0.8
SAMPLE_SHRINK_ELLIPSE = 0.7
GREY_TOLERANCE = 16.0
GREY_FRACTION = 0.001
# Colour histograms (8 levels per RGB channel) that tell two regions apart: hair from skin in
# the head, upper clothes from pants near the hips.
HISTOGRAM_LEVELS = 8
HISTOGRAM_PRIOR = 0.01  # counts added to every bin
MIN_HISTOGRAM_SAMPLE = 20
HISTOGRAM_RATIO = 3.0  # a colour this much likelier in one region than the other is decided

# Geometry, in units of sd (shoulders), hd (hips), T (torso length), face width / height.
ARM_RADIUS = 0.22
SLEEVE_RADIUS = 0.3
SIDE_RADIUS = 0.5  # farther from every limb, the body's midline picks the side
HAND_REACH = 0.35
LEG_RADIUS = 0.55
FOOT_RADIUS = 0.55
FOOT_ABOVE_ANKLE = 0.1  # of FOOT_RADIUS
FOOT_REACH = 0.6  # of FOOT_RADIUS above the ankle, where colour decides between shoes and pants
SHOE_SAMPLE = 0.25  # of FOOT_RADIUS below the ankle, the shoes' colour sample
VOTE_WINDOW = 5  # pixels a side of the window whose majority decides shoes from pants by colour
TORSO_WIDEN, TORSO_RAISE, HIP_WIDEN, KNEE_WIDEN, ANKLE_WIDEN = 0.15, 0.2, 0.6, 0.75, 0.7
BAND = 0.07
BAND_ABOVE, BAND_BELOW = 0.35, 0.5  # where colour decides between upper clothes and pants
UPPER_SAMPLE = (0.4, 0.8)  # below the shoulders, in T
# The pants' sample below the hips, in T: the lowest LOWER_SAMPLE_DEPTH of the clothes in the
# legs' region, from no higher than LOWER_SAMPLE_NEAR down to no lower than LOWER_SAMPLE_FAR
# (above the knees and the shoes), so a long top's hem stays out of it wherever the legs show.
LOWER_SAMPLE_NEAR, LOWER_SAMPLE_FAR, LOWER_SAMPLE_DEPTH = 0.15, 0.8, 0.15
HEAD_WIDTH, HEAD_HEIGHT, HEAD_RAISE = 1.8, 1.7, 0.15
NECK_TOP, NECK_BOTTOM = 0.45, 0.5  # half widths in face widths
FACE_TO_SHOULDERS = 2.2
_FAR = 1e9


def rgb_to_ycrcb(rgb):
    """RGB [..., 3] in 0..255 → YCrCb [..., 3] (JPEG's full range: Cr and Cb centred on 128)."""
    rgb = tf.cast(rgb, tf.float32)
    return tf.tensordot(rgb, tf.constant(YCRCB.T, tf.float32), 1) + tf.constant([0, 128.0, 128])


def is_greyscale(image, tolerance=GREY_TOLERANCE, fraction=GREY_FRACTION):
    """Whether at most ``fraction`` of the pixels have channels more than ``tolerance`` apart.

    Args:
        image: [..., H, W, 3] RGB in 0..255.
        tolerance: grey levels.
        fraction: of the pixels.

    Returns:
        bool [...].
    """
    image = tf.cast(image, tf.float32)
    spread = tf.reduce_max(image, axis=-1) - tf.reduce_min(image, axis=-1)
    return tf.reduce_mean(tf.cast(spread > tolerance, tf.float32), axis=[-2, -1]) <= fraction


def point_in_polygon(polygon, height, width):
    """Pixels inside a polygon by the even-odd rule, one sorted search per row.

    A pixel (centre (x, y) = (column, row)) is inside when an odd number of edges cross its row
    at or left of x; an edge from (x0, y0) to (x1, y1) crosses rows min(y0, y1) ≤ y < max(y0, y1)
    (so a vertex on a row counts once and horizontal edges never).

    Args:
        polygon: [..., K, 2] (x, y) vertices, closed implicitly.
        height: rows of the grid.
        width: columns of the grid.

    Returns:
        bool [..., height, width].
    """
    polygon = tf.convert_to_tensor(polygon, tf.float32)
    start = polygon[..., tf.newaxis, :, :]
    end = tf.roll(polygon, -1, axis=-2)[..., tf.newaxis, :, :]
    rows = tf.range(height, dtype=tf.float32)[:, tf.newaxis]  # [H, 1]
    x0, y0, x1, y1 = start[..., 0], start[..., 1], end[..., 0], end[..., 1]
    crosses = (tf.minimum(y0, y1) <= rows) & (rows < tf.maximum(y0, y1))
    t = tf.math.divide_no_nan(rows - y0, y1 - y0)
    at = tf.where(crosses, x0 + t * (x1 - x0), _FAR)  # [..., H, K]
    shape = tf.shape(at)
    crossings = tf.sort(tf.reshape(at, [-1, shape[-1]]), axis=-1)
    columns = tf.range(width, dtype=tf.float32)[tf.newaxis]
    columns = tf.tile(columns, [tf.shape(crossings)[0], 1])
    left = tf.searchsorted(crossings, columns, side='right')
    inside = tf.math.floormod(left, 2) == 1
    return tf.reshape(inside, tf.concat([shape[:-1], [width]], 0))


def segment_distance(points, start, end):
    """Distance of points to segments, and where along each segment they project.

    Args:
        points: [..., 2].
        start: [..., 2] (broadcast with ``points``).
        end: [..., 2]; a segment with ``start == end`` is a point.

    Returns:
        (distance [...], t [...]): t is 0 at ``start`` and 1 at ``end`` (not clipped).
    """
    points = tf.convert_to_tensor(points, tf.float32)
    direction = end - start
    offset = points - start
    t = tf.math.divide_no_nan(tf.reduce_sum(offset * direction, axis=-1),
                              tf.reduce_sum(direction * direction, axis=-1))
    nearest = start + tf.clip_by_value(t, 0.0, 1.0)[..., tf.newaxis] * direction
    return tf.norm(points - nearest, axis=-1), t


def _median(values, count):
    """Per-column element at rank floor(count / 2) of the first ``count`` sorted rows."""
    return tf.sort(values, axis=0)[count // 2]


def fit_skin(samples, floors=SKIN_FLOORS, inlier=SKIN_INLIER):
    """The robust skin model of colour samples: mean and regularised covariance.

    Samples within ``inlier`` robust deviations (max(1.4826 × MAD, floor), per channel) of every
    channel's median are kept; their mean and covariance (divided by their count) are the
    model, with floor² added to the covariance's diagonal.

    Args:
        samples: float32 [N, 3] (YCrCb), N ≥ 1.
        floors: per-channel minimum deviations.
        inlier: the inliers' half width in deviations.

    Returns:
        (mean [3], covariance [3, 3]).
    """
    count = tf.shape(samples)[0]
    median = _median(samples, count)
    deviation = tf.abs(samples - median)
    scale = tf.maximum(1.4826 * _median(deviation, count), tf.constant(floors, tf.float32))
    keep = tf.cast(tf.reduce_all(deviation <= inlier * scale, axis=-1), tf.float32)
    kept = tf.maximum(tf.reduce_sum(keep), 1.0)
    mean = tf.reduce_sum(samples * keep[:, tf.newaxis], axis=0) / kept
    centred = (samples - mean) * keep[:, tf.newaxis]
    covariance = tf.matmul(centred, centred, transpose_a=True) / kept
    return mean, covariance + tf.linalg.diag(tf.square(tf.constant(floors, tf.float32)))


def mahalanobis2(values, mean, covariance):
    """Squared Mahalanobis distances of values [..., 3] to (mean [3], covariance [3, 3])."""
    centred = values - mean
    return tf.reduce_sum(tf.tensordot(centred, tf.linalg.inv(covariance), 1) * centred, axis=-1)


def colour_bins(rgb, levels=HISTOGRAM_LEVELS):
    """Histogram bin of each colour [..., 3] (0..255): levels³ bins, red slowest."""
    level = tf.clip_by_value(tf.cast(tf.floor(tf.cast(rgb, tf.float32) * levels / 256.0),
                                     tf.int32), 0, levels - 1)
    return (level[..., 0] * levels + level[..., 1]) * levels + level[..., 2]


def histogram(bins, selected, levels=HISTOGRAM_LEVELS):
    """Colour histogram of the selected pixels.

    Args:
        bins: int32 [...] (``colour_bins``).
        selected: bool [...], the sample.
        levels: levels per channel.

    Returns:
        float32 [levels³] counts.
    """
    return tf.math.unsorted_segment_sum(tf.reshape(tf.cast(selected, tf.float32), [-1]),
                                        tf.reshape(bins, [-1]), levels ** 3)


def two_colours(bins, first, second, prior=HISTOGRAM_PRIOR, min_sample=MIN_HISTOGRAM_SAMPLE,
                ratio=HISTOGRAM_RATIO):
    """Which pixels' colours are likelier in the second sample than in the first, where clear.

    Each sample's histogram, ``prior`` counts added to every bin, is normalised; a pixel is
    decided where both samples hold ``min_sample`` pixels and one histogram is at least
    ``ratio`` times the other at its bin (so a colour both samples share is left undecided).

    Args:
        bins: int32 [...] every pixel's bin.
        first: bool [...], the first sample.
        second: bool [...], the second sample.
        prior: counts added per bin.
        min_sample: pixels each sample needs.
        ratio: the likelihood ratio that decides.

    Returns:
        (bool [...] second likelier, bool [...] decided).
    """
    first, second = histogram(bins, first), histogram(bins, second)
    first_total, second_total = tf.reduce_sum(first), tf.reduce_sum(second)
    size = tf.cast(tf.size(first), tf.float32)
    first = tf.gather((first + prior) / (first_total + prior * size), bins)
    second = tf.gather((second + prior) / (second_total + prior * size), bins)
    enough = tf.minimum(first_total, second_total) >= min_sample
    decided = enough & (tf.maximum(first, second) >= ratio * tf.minimum(first, second))
    return second > first, decided


def working_size(height, width, limit=WORKING_SIZE):
    """The [height, width] labels are computed at: the photo's, or its longer side ``limit``."""
    size = tf.cast(tf.stack([height, width]), tf.float32)
    factor = tf.maximum(tf.reduce_max(size) / limit, 1.0)
    return tf.cast(tf.maximum(tf.round(size / factor), 1.0), tf.int32)


def _unit(vector, default):
    length = tf.norm(vector, axis=-1, keepdims=True)
    return tf.where(length > 0, tf.math.divide_no_nan(vector, length), default)


def _across(vector):
    """The vector turned by +90° in image coordinates (y down): (1, 0) → (0, 1)."""
    return tf.stack([-vector[..., 1], vector[..., 0]], axis=-1)


def _facing(vector, reference):
    """``vector`` flipped where needed so that it points along ``reference``."""
    return tf.where(tf.reduce_sum(vector * reference) < 0, -vector, vector)


def _head(xy, visible, oval, face_found):
    """The face's frame from its oval: centre, axes (across, down), width, height, presence."""
    centre = tf.reduce_mean(oval, axis=0)
    width = tf.norm(oval[_OVAL_LEFT] - oval[_OVAL_RIGHT])
    height = tf.norm(oval[_OVAL_CHIN] - oval[_OVAL_TOP])
    across = _unit(oval[_OVAL_LEFT] - oval[_OVAL_RIGHT], tf.constant([1.0, 0.0]))
    down = _unit(oval[_OVAL_CHIN] - oval[_OVAL_TOP], tf.constant([0.0, 1.0]))
    present = face_found | tf.reduce_any(tf.gather(visible, _HEAD_POINTS))
    eyes_visible = visible[LEFT_EYE] & visible[RIGHT_EYE]
    eyes = tf.where(eyes_visible, (xy[LEFT_EYE] + xy[RIGHT_EYE]) / 2, centre - 0.15 * height * down)
    return {'centre': centre, 'across': across, 'down': down, 'width': tf.maximum(width, 1.0),
            'height': tf.maximum(height, 1.0), 'present': present, 'eyes': eyes,
            'chin': oval[_OVAL_CHIN]}


def _body(xy, visible, head, size):
    """The body's frame: shoulder and hip midpoints and axes, sd, hd, the down axis, T."""
    shoulders = visible[LEFT_SHOULDER] & visible[RIGHT_SHOULDER]
    hips = visible[LEFT_HIP] & visible[RIGHT_HIP]
    shoulder_mid = (xy[LEFT_SHOULDER] + xy[RIGHT_SHOULDER]) / 2
    hip_mid = (xy[LEFT_HIP] + xy[RIGHT_HIP]) / 2
    sd = tf.where(shoulders, tf.norm(xy[LEFT_SHOULDER] - xy[RIGHT_SHOULDER]),
                  FACE_TO_SHOULDERS * head['width'])
    sd = tf.maximum(sd, 2.0)
    hd = tf.maximum(tf.where(hips, tf.norm(xy[LEFT_HIP] - xy[RIGHT_HIP]), 0.6 * sd), 2.0)
    shoulder_axis = tf.where(shoulders, _unit(xy[LEFT_SHOULDER] - xy[RIGHT_SHOULDER],
                                              head['across']), head['across'])
    hip_axis = tf.where(hips, _unit(xy[LEFT_HIP] - xy[RIGHT_HIP], shoulder_axis), shoulder_axis)
    # Down: shoulders → hips, else across the shoulders' (or hips') line, away from the head.
    away = tf.where(head['present'], shoulder_mid - head['centre'], tf.constant([0.0, 1.0]))
    across = tf.where(shoulders | ~hips, _across(shoulder_axis), _across(hip_axis))
    down = tf.where(shoulders & hips, _unit(hip_mid - shoulder_mid, _across(shoulder_axis)),
                    _facing(across, away))
    torso = tf.where(shoulders & hips, tf.reduce_sum((hip_mid - shoulder_mid) * down), 1.6 * sd)
    far = 2.0 * tf.cast(tf.reduce_sum(size), tf.float32)
    return {'shoulders': shoulders, 'hips': hips, 'shoulder_mid': shoulder_mid,
            'hip_mid': hip_mid, 'sd': sd, 'hd': hd, 'shoulder_axis': shoulder_axis,
            'hip_axis': hip_axis, 'down': down, 'torso': tf.maximum(torso, 1.0), 'far': far}


def _segment(grid, xy, visible, a, b):
    """Distance map to the segment of landmarks a-b (far when either is hidden), and t."""
    distance, t = segment_distance(grid, xy[a], xy[b])
    return tf.where(visible[a] & visible[b], distance, _FAR), t


def _arm(grid, xy, visible, side):
    """One arm's distance maps: whole arm (with hand), sleeve (to the wrist), hand alone."""
    shoulder, elbow, wrist, pinky, index = side[:5]
    upper, _ = _segment(grid, xy, visible, shoulder, elbow)
    fore, t = _segment(grid, xy, visible, elbow, wrist)
    fingers = tf.cast(tf.stack([visible[pinky], visible[index]]), tf.float32)
    tip = tf.where(tf.reduce_sum(fingers) > 0,
                   (fingers[0] * xy[pinky] + fingers[1] * xy[index]) /
                   tf.maximum(tf.reduce_sum(fingers), 1.0),
                   tf.where(visible[elbow], xy[wrist] + HAND_REACH * (xy[wrist] - xy[elbow]),
                            xy[wrist]))
    hand, _ = segment_distance(grid, xy[wrist], tip)
    hand = tf.where(visible[wrist], hand, _FAR)
    sleeve = tf.minimum(upper, tf.where(t <= 1.0, fore, _FAR))
    return {'all': tf.minimum(tf.minimum(upper, fore), hand), 'sleeve': sleeve, 'hand': hand}


def _leg(grid, xy, visible, side, body):
    """One leg's distance map, its foot's, the height below its ankle, its envelope's side."""
    hip, knee, ankle, heel, toe = side[5:]
    thigh, _ = _segment(grid, xy, visible, hip, knee)
    shin, _ = _segment(grid, xy, visible, knee, ankle)
    foot = tf.minimum(_segment(grid, xy, visible, ankle, ankle)[0],
                      tf.minimum(_segment(grid, xy, visible, ankle, heel)[0],
                                 _segment(grid, xy, visible, ankle, toe)[0]))
    foot = tf.minimum(foot, _segment(grid, xy, visible, heel, toe)[0])
    height = tf.reduce_sum((grid - xy[ankle]) * body['down'], axis=-1)
    far = body['far'] * body['down']
    knee_at = tf.where(visible[knee], xy[knee], xy[hip] + far)
    ankle_at = tf.where(visible[knee] & visible[ankle], xy[ankle], knee_at + far)
    return {'leg': tf.minimum(thigh, shin), 'foot': foot, 'height': height, 'knee': knee_at,
            'ankle': ankle_at}


def _regions(grid, xy, visible, oval, face_found, size):
    """Every geometric region the rules use, as bool or distance maps [h, w]."""
    head = _head(xy, visible, oval, face_found)
    body = _body(xy, visible, head, size)
    arms = [_arm(grid, xy, visible, side) for side in (_LEFT, _RIGHT)]
    legs = [_leg(grid, xy, visible, side, body) for side in (_LEFT, _RIGHT)]
    return {'head': head, 'body': body, 'arms': arms, 'legs': legs,
            **_trunk_regions(grid, xy, head, body, legs, size),
            **_head_regions(grid, head, body, oval, size)}


def _trunk_regions(grid, xy, head, body, legs, size):
    """The torso quad, the legs' envelope, the hips' band and the colour samples near it."""
    height, width = size[0], size[1]
    sd, hd, down, torso_length = body['sd'], body['hd'], body['down'], body['torso']
    below_hips = tf.reduce_sum((grid - body['hip_mid']) * down, axis=-1)
    below_shoulders = tf.reduce_sum((grid - body['shoulder_mid']) * down, axis=-1)
    lower = body['hips'] & (below_hips > BAND * torso_length)
    # Up to 0.2 sd above the shoulders, or to the chin (a collar) when the head is visible.
    chin = tf.reduce_sum((body['shoulder_mid'] - head['chin']) * down)
    raise_ = tf.maximum(TORSO_RAISE * sd, tf.where(head['present'], chin, 0.0)) * down
    widen = TORSO_WIDEN * sd * body['shoulder_axis']
    top_left = xy[LEFT_SHOULDER] + widen - raise_
    top_right = xy[RIGHT_SHOULDER] - widen - raise_
    hip_widen = HIP_WIDEN * hd * body['hip_axis']
    hem = (BAND + BAND_BELOW) * torso_length * down
    far = body['far'] * down
    bottom_left = tf.where(body['hips'], xy[LEFT_HIP] + hip_widen + hem, top_left + far)
    bottom_right = tf.where(body['hips'], xy[RIGHT_HIP] - hip_widen + hem, top_right + far)
    torso = point_in_polygon(tf.stack([top_right, top_left, bottom_left, bottom_right]),
                             height, width)
    axis = body['hip_axis']
    envelope = tf.stack([
            xy[RIGHT_HIP] - hip_widen, xy[LEFT_HIP] + hip_widen,
            legs[0]['knee'] + KNEE_WIDEN * hd * axis, legs[0]['ankle'] + ANKLE_WIDEN * hd * axis,
            legs[1]['ankle'] - ANKLE_WIDEN * hd * axis, legs[1]['knee'] - KNEE_WIDEN * hd * axis])
    leg_distance = tf.minimum(legs[0]['leg'], legs[1]['leg'])
    pants = body['hips'] & (point_in_polygon(envelope, height, width) |
                            (leg_distance <= LEG_RADIUS * hd))

    def between(distance, limits):
        return (distance >= limits[0] * torso_length) & (distance <= limits[1] * torso_length)

    return {'lower': lower, 'torso': torso & ~lower, 'pants': pants & lower,
            'leg_distance': leg_distance, 'below_hips': below_hips / torso_length,
            'band': body['hips'] & between(below_hips, (-BAND_ABOVE, BAND_BELOW)) &
            (torso | pants),
            'upper_sample': torso & between(below_shoulders, UPPER_SAMPLE)}


def _head_regions(grid, head, body, oval, size):
    """The face oval, the head zone (above the chin's margin) and the neck quad."""
    height, width = size[0], size[1]
    present = head['present']
    face = present & point_in_polygon(oval, height, width)
    offset = grid - (head['centre'] - HEAD_RAISE * head['height'] * head['down'])
    along = tf.reduce_sum(offset * head['across'], axis=-1) / (HEAD_WIDTH * head['width'] / 2)
    up = tf.reduce_sum(offset * head['down'], axis=-1) / (HEAD_HEIGHT * head['height'] / 2)
    chin = tf.reduce_sum((grid - head['chin']) * head['down'], axis=-1)
    zone = present & (along ** 2 + up ** 2 <= 1.0) & (chin <= 0.0)
    normal = _facing(_across(body['shoulder_axis']), body['down'])
    drop = tf.where(body['shoulders'],
                    tf.reduce_sum((body["shoulder_mid"] - head["chin"]) * normal) +
                    0.05 * body["sd"],
                    0.5 * head['height'])
    base = head['chin'] + drop * normal
    top = head['chin'] - 0.1 * head['height'] * head['down']
    quad = tf.stack([top - NECK_TOP * head['width'] * head['across'],
                     top + NECK_TOP * head['width'] * head['across'],
                     base + NECK_BOTTOM * head['width'] * body['shoulder_axis'],
                     base - NECK_BOTTOM * head['width'] * body['shoulder_axis']])
    neck = present & point_in_polygon(quad, height, width)
    upper_neck = tf.reduce_sum((grid - head['chin']) * normal, axis=-1) <= drop / 2
    above_eyes = tf.reduce_sum((grid - head['eyes']) * head['down'], axis=-1) < 0
    return {'face': face, 'head_zone': zone, 'neck': neck, 'upper_neck': neck & upper_neck,
            'above_eyes': above_eyes, 'hair_sample': zone & ~face & above_eyes}


def _skin(ycrcb, person, oval, head, face_found, greyscale, above_eyes):
    """The skin map [h, w], whether there is a skin model (``skin_split``), its sample."""
    shrink = tf.where(face_found, SAMPLE_SHRINK_MESH, SAMPLE_SHRINK_ELLIPSE)
    centre = head['centre']
    inner = point_in_polygon(centre + shrink * (oval - centre), tf.shape(person)[0],
                             tf.shape(person)[1])
    sample = inner & person & head['present'] & ~above_eyes
    samples = tf.boolean_mask(ycrcb, sample)
    count = tf.shape(samples)[0]
    split = ~greyscale & (count >= MIN_SKIN_SAMPLE)
    safe = tf.cond(count > 0, lambda: samples, lambda: tf.constant([[128.0, 128.0, 128.0]]))
    mean, covariance = fit_skin(safe)
    skin = split & person & (mahalanobis2(ycrcb, mean, covariance) <= SKIN_THRESHOLD)
    return skin, split, sample


def _side(left_distance, right_distance, grid, origin, axis, reach):
    """True where the nearer limb is the left one; by the midline beyond ``reach`` of both."""
    by_midline = tf.reduce_sum((grid - origin) * axis, axis=-1) > 0
    far = tf.minimum(left_distance, right_distance) > reach
    return tf.where(far, by_midline, left_distance <= right_distance)


def _shoes(bins, legs, clothes, pants, hd):
    """Shoes near the feet, and which foot is nearer: below the ankle's margin, or up to
    ``FOOT_REACH`` above the ankle where the colour is likelier in the shoes (the foot zone's
    clothes well below the ankles) than in the pants (their clothes away from the feet)."""
    foot_left = legs[0]['foot'] <= legs[1]['foot']
    distance = tf.minimum(legs[0]['foot'], legs[1]['foot'])
    height = tf.where(foot_left, legs[0]['height'], legs[1]['height'])
    radius = FOOT_RADIUS * hd
    near = clothes & (distance <= radius)
    shoe_like, decided = two_colours(bins, clothes & pants & (distance > 1.5 * radius),
                                     near & (height >= SHOE_SAMPLE * radius))
    low = height >= -FOOT_ABOVE_ANKLE * radius
    reach = height >= -FOOT_REACH * radius
    # Dark shoes and dark trousers share some colour bins (and JPEG noise moves pixels between
    # them), so the colour alone speckles the trousers' hem with shoe pixels: the neighbours vote.
    zone = near & decided & reach
    shoe_like = majority(zone & shoe_like, zone & ~shoe_like)
    return near & tf.where(zone, shoe_like, low), foot_left


def majority(first, second, size=VOTE_WINDOW):
    """bool [h, w]: where ``first`` holds more pixels than ``second`` in the ``size``² window
    around each pixel (zero padding past the edges; a tie is False)."""
    def count(mask):
        x = tf.cast(mask, tf.float32)[tf.newaxis, ..., tf.newaxis]
        return tf.nn.avg_pool2d(tf.pad(x, [[0, 0], [size // 2] * 2, [size // 2] * 2, [0, 0]]),
                                size, 1, 'VALID')[0, ..., 0]
    return count(first) > count(second)


def label(rgb, person, landmarks, face_landmarks, face_found):
    """The rules (module docstring) at one resolution.

    Args:
        rgb: float32 [h, w, 3] in 0..255.
        person: bool [h, w].
        landmarks: float32 [33, 5] in these pixels.
        face_landmarks: float32 [468, 3] in these pixels.
        face_found: bool [] (False: ``face_landmarks`` is the fallback ellipse).

    Returns:
        (uint8 [h, w] LIP labels, bool [] skin_split).
    """
    size = tf.shape(person)
    xy, visible = landmarks[:, :2], landmarks[:, 3] >= VISIBLE
    oval = tf.gather(face_landmarks[:, :2], face.FACE_OVAL)
    rows, columns = tf.meshgrid(tf.range(size[0], dtype=tf.float32),
                                tf.range(size[1], dtype=tf.float32), indexing='ij')
    grid = tf.stack([columns, rows], axis=-1)
    r = _regions(grid, xy, visible, oval, face_found, size)
    head, body, arms, legs = r['head'], r['body'], r['arms'], r['legs']
    bins = colour_bins(rgb)
    skin, split, sample = _skin(rgb_to_ycrcb(rgb), person, oval, head, face_found,
                                is_greyscale(rgb), r['above_eyes'])
    # In the head, skin-coloured hair: likelier in the hair above the forehead than in the face.
    hairy, decided = two_colours(bins, sample, person & r['hair_sample'])
    skin = skin & ~((r['head_zone'] | r['face']) & decided & hairy)
    # Without a skin model (greyscale), the histograms alone tell hair from face.
    hair_colour = tf.where(split, ~skin, decided & hairy)
    # Near the hips, clothes likelier in the pants' colours (the legs' lowest clothes) than
    # the belly's are pants.
    clothes = person & ~skin
    lower_like, decided = two_colours(bins, clothes & r['upper_sample'],
                                      lower_sample(clothes & r['pants'], r['below_hips']))
    band = decided & clothes & r['band']
    sd, hd = body['sd'], body['hd']
    arm_distance = tf.minimum(arms[0]['all'], arms[1]['all'])
    arm_left = _side(arms[0]['all'], arms[1]['all'], grid, body['shoulder_mid'],
                     body['shoulder_axis'], SIDE_RADIUS * sd)
    arm_label = tf.where(arm_left, lip.LEFT_ARM, lip.RIGHT_ARM)
    leg_left = _side(legs[0]['leg'], legs[1]['leg'], grid, body['hip_mid'], body['hip_axis'],
                     SIDE_RADIUS * hd)
    leg_label = tf.where(leg_left, lip.LEFT_LEG, lip.RIGHT_LEG)
    shoes, foot_left = _shoes(bins, legs, clothes, r['pants'], hd)
    sleeve_distance = tf.minimum(arms[0]['sleeve'], arms[1]['sleeve'])
    sleeve = (sleeve_distance <= SLEEVE_RADIUS * sd) & (~r['lower'] |
                                                     (sleeve_distance < r['leg_distance']))
    hands = tf.minimum(arms[0]['hand'], arms[1]['hand']) <= ARM_RADIUS * sd
    near_arm = arm_distance <= ARM_RADIUS * sd
    hair_in_face = ~face_found & hair_colour & r['above_eyes']
    ears = r['head_zone'] & ~r['above_eyes'] & ~hair_colour
    neck = tf.where(split, r['neck'] & skin, r['upper_neck'])
    # Lowest priority first; each rule overwrites the ones before.
    rules = [
            (r['pants'], lip.PANTS),
            (r['torso'], lip.UPPER_CLOTHES),
            (band, tf.where(lower_like, lip.PANTS, lip.UPPER_CLOTHES)),
            (sleeve, lip.UPPER_CLOTHES),
            (r['head_zone'], lip.HAIR),
            (shoes, tf.where(foot_left, lip.LEFT_SHOE, lip.RIGHT_SHOE)),
            (skin & ~r['lower'] & (r['torso'] | (arm_distance <= 2 * ARM_RADIUS * sd)),
             arm_label),
            (skin & r['pants'], leg_label),
            ((skin & near_arm) | (~split & hands), arm_label),
            (neck | ears, lip.FACE),
            (r['face'], tf.where(hair_in_face, lip.HAIR, lip.FACE)),
    ]
    labels = tf.zeros(size, tf.int32)
    for where, value in rules:
        labels = tf.where(where, value, labels)
    return tf.cast(tf.where(person, labels, lip.BACKGROUND), tf.uint8), split


def lower_sample(legs, below_hips):
    """bool [h, w]: the pants' colour sample, the lowest ``LOWER_SAMPLE_DEPTH`` (in T) of
    ``legs`` (the clothes in the legs' region) that lies between ``LOWER_SAMPLE_NEAR`` and
    ``LOWER_SAMPLE_FAR`` below the hips (``below_hips``, float32 [h, w] in T). A photo cut
    above ``LOWER_SAMPLE_FAR`` gives its lowest rows of clothes, below a long top's hem where
    the pants show at all; a full-length one its thighs above the knees."""
    reach = tf.reduce_max(tf.where(legs, below_hips, 0.0))
    bottom = tf.minimum(reach, LOWER_SAMPLE_FAR)
    top = tf.maximum(LOWER_SAMPLE_NEAR, bottom - LOWER_SAMPLE_DEPTH)
    return legs & (below_hips >= top) & (below_hips <= bottom)


def _open(mask):
    """3×3 opening (erosion then dilation) of a bool mask [h, w]."""
    x = tf.cast(mask, tf.float32)[tf.newaxis, ..., tf.newaxis]
    eroded = -tf.nn.max_pool2d(-x, 3, 1, 'SAME')
    return tf.nn.max_pool2d(eroded, 3, 1, 'SAME')[0, ..., 0] > 0.5


class ParseModel(tf.Module):
    """LIP parse of a photo by rules (module docstring), in the graph, for any photo size.

    Calling it returns ``{'parse': uint8 [H, W] LIP ids, 'skin_split': bool []}``.
    """

    def __init__(self, limit=WORKING_SIZE):
        """Labels are computed at most ``limit`` pixels on the longer side."""
        super().__init__(name='parse_model')
        self.limit = limit

    @tf.function(input_signature=[
            tf.TensorSpec([None, None, 3], tf.uint8, name='image'),
            tf.TensorSpec([face.NUM_POSE_LANDMARKS, 5], tf.float32, name='landmarks'),
            tf.TensorSpec([None, None], tf.float32, name='mask'),
            tf.TensorSpec([face.NUM_FACE_LANDMARKS, 3], tf.float32, name='face_landmarks'),
            tf.TensorSpec([], tf.bool, name='face_found')])
    def __call__(self, image, landmarks, mask, face_landmarks, face_found):
        """The parse of ``image``.

        Args:
            image: uint8 [H, W, 3] RGB photo.
            landmarks: float32 [33, 5] BlazePose landmarks (x, y in photo pixels, z,
                visibility, presence).
            mask: float32 [H, W] person probability.
            face_landmarks: float32 [468, 3] face mesh in photo pixels (or ``face.head_ellipse``).
            face_found: bool [], whether ``face_landmarks`` is a face mesh.

        Returns:
            {'parse': uint8 [H, W] LIP label ids, 'skin_split': bool [] whether skin was told
            from clothes (false for greyscale photos)}.
        """
        shape = tf.shape(image)
        size = working_size(shape[0], shape[1], self.limit)
        same = tf.reduce_all(size == shape[:2])
        rgb = tf.cond(same, lambda: tf.cast(image, tf.float32),
                      lambda: tf.image.resize(image[tf.newaxis], size, method='area')[0])
        probability = tf.cond(
                same, lambda: mask,
                lambda: tf.image.resize(mask[tf.newaxis, ..., tf.newaxis], size,
                                        method='area')[0, ..., 0])
        scale = tf.cast(tf.stack([size[1], size[0]]), tf.float32) / tf.cast(
                tf.stack([shape[1], shape[0]]), tf.float32)
        landmarks = tf.concat([(landmarks[:, :2] + 0.5) * scale - 0.5, landmarks[:, 2:]], axis=-1)
        face_landmarks = tf.concat([(face_landmarks[:, :2] + 0.5) * scale - 0.5,
                                    face_landmarks[:, 2:]], axis=-1)
        labels, split = label(rgb, _open(probability >= MASK_THRESHOLD), landmarks,
                              face_landmarks, face_found)
        parse = tf.cond(same, lambda: labels,
                        lambda: tf.image.resize(labels[..., tf.newaxis], shape[:2],
                                                method='nearest')[..., 0])
        return {'parse': parse, 'skin_split': split}
