"""The try-on inside the selection, relit by the photo and with the person's own skin. No
TensorFlow.

RM composes a flat product photo over EDM's coarse person, so left alone the new garment looks
printed on, and skin that a shorter sleeve uncovers comes out in EDM's grey. ``relight`` fixes
both in the 256×192 frame, before the paste-back:

- **Shading.** Within each region of the photo's parse that the try-on replaces (the old garment,
  each limb), the photo's luminance blurred at a fine scale over its blur at a coarse scale is
  its shading detail (folds, soft shadows) with the region's own colour divided out. The new
  garment is multiplied by it. The ratio is computed per label so the edge between a dark
  garment and light skin does not read as a shadow; its confidence falls to 0 on near-black
  regions (the ratio of noise), and it is clipped to ``SHADING_RANGE``.
- **Skin.** Where the old garment was and the new one is not: inside the limbs' corridors (the
  pose's shoulder → elbow → wrist, hip → knee → ankle; square at the shoulder and the hip, since
  every garment of these categories covers those, so what the new one uncovers beyond the
  shoulder is the old garment's outline, not skin) the person's skin tone, the median of
  their visible skin (the limbs the photo shows, else the face), rounded like a limb and shaded
  as above; outside them (a narrower garment than the old one), the photo's surroundings
  inpainted inwards.
- **Full-length hems fall to the old hem.** For pants, where the old trousers reach at most
  ``HEM_REACH`` of the frame's height below the new hem, the new leg is extended down to the
  old hem, each column in the colour of its last row inside the warped garment. The same person
  in the same shoes wears full-length trousers to the same place; without it, the strip between
  the two hems would be painted as ankle skin (the synthetic training people show their ankles,
  so the networks end a leg above the shoe).
- **No light seam.** RM blends the product photo's white background into the warp's soft edge,
  and the garment is taken two pixels beyond the warp's mask; that ring, and the edge up to
  ``EDGE_INSET`` pixels inside the mask, take the colour of the nearest pixel of the garment's
  interior.
- **Visible skin stays the photo's.** Limb pixels that the new garment does not cover are the
  photo's own, not RM's rendition of them. A t-shirt's sleeve ends above the elbow, so the
  photo's forearms and hands (its arm pixels nearer an elbow → wrist segment than a shoulder →
  elbow one) stay in front of a new t-shirt even where its warp lies under them: arms crossed
  or bent in front of the chest, hands on the hips.

The seam between the new garment and what borders it is softened over a pixel.
"""

import cv2
import numpy as np

from everywear_tf import spec
from everywear_tf.data import frames
from everywear_tf.data import keypoints as kp
from everywear_tf.data import lip
from everywear_tf.inference import categories

SHADING_FINE = 0.008  # σ of the shading detail, share of the frame's height (2 px at 256)
SHADING_COARSE = 0.05  # σ of the region's own colour (13 px at 256)
SHADING_RANGE = (0.7, 1.3)
CHROMA_TOLERANCE = 0.05  # chromaticity departure at which a pixel stops counting as light
DARK = (20.0, 60.0)  # coarse luminance where the shading's confidence goes from 0 to 1
LIMB_ROUNDING = 0.3  # a painted limb is this much darker at its edge than along its axis
MIN_SKIN_PIXELS = 30
HEM_REACH = 0.06  # pants: the new hem drops to an old one at most this share of the height lower
_HEM_DROPS = (spec.MEN_PANTS,)
_SHORT_SLEEVES = (spec.MEN_TSHIRTS,)  # the forearms stay in front of the new garment
EDGE_INSET = 1  # px: the edge this far inside the warp's mask takes the interior's colour

# (joint chain, corridor radius as a share of the distance between the two anchor joints)
_LIMBS = {
        spec.UPPER_FRAME: (((kp.R_SHOULDER, kp.R_ELBOW, kp.R_WRIST),
                            (kp.L_SHOULDER, kp.L_ELBOW, kp.L_WRIST)),
                           (kp.R_SHOULDER, kp.L_SHOULDER), 0.17),
        spec.BODY_FRAME: (((kp.R_HIP, kp.R_KNEE, kp.R_ANKLE), (kp.L_HIP, kp.L_KNEE, kp.L_ANKLE)),
                          (kp.R_HIP, kp.L_HIP), 0.5),
}


def luminance(image: np.ndarray) -> np.ndarray:
    """float64 [H,W]: Rec. 601 luma of an RGB image, 0..255."""
    image = np.asarray(image, np.float64)
    return image[..., 0] * 0.299 + image[..., 1] * 0.587 + image[..., 2] * 0.114


def masked_blur(values: np.ndarray, weight: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur of ``values`` [H,W] counting only where ``weight`` (bool or [0,1]) is set
    (normalised convolution); 0 where no weight is near."""
    weight = np.asarray(weight, np.float64)
    blur = lambda x: cv2.GaussianBlur(x, (0, 0), sigma, borderType=cv2.BORDER_REPLICATE)  # noqa: E731
    total = blur(weight)
    return np.where(total > 1e-6, blur(np.asarray(values, np.float64) * weight)
                    / np.maximum(total, 1e-6), 0.0)


def shading(image: np.ndarray, regions: list) -> np.ndarray:
    """float64 [H,W]: the photo's shading detail inside each bool region of ``regions`` (1 outside
    them), each region's own colour divided out (module docstring).

    What is print rather than light is left out: a pixel whose chromaticity departs from its
    region's local mean (a patch, a logo, a stripe of another colour), or whose luminance ratio
    is beyond what soft light does, gets no weight, and the weighted ratio is spread over the
    region at the fine scale (normalised convolution), so it fills such holes smoothly.
    """
    height = image.shape[0]
    pixels = np.asarray(image, np.float64)
    luma = luminance(pixels) + 1.0
    chroma = pixels / (pixels.sum(axis=-1, keepdims=True) + 3.0)
    log_shading = np.zeros(luma.shape)
    low, high = np.log(SHADING_RANGE[0]), np.log(SHADING_RANGE[1])
    fine_sigma, coarse_sigma = SHADING_FINE * height, SHADING_COARSE * height
    for region in regions:
        if not region.any():
            continue
        coarse = masked_blur(luma, region, coarse_sigma)
        ratio = np.log(np.maximum(masked_blur(luma, region, fine_sigma), 1e-3)
                       / np.maximum(coarse, 1e-3))
        local_chroma = np.stack([masked_blur(chroma[..., c], region, coarse_sigma)
                                 for c in range(3)], axis=-1)
        departure = np.linalg.norm(chroma - local_chroma, axis=-1)
        weight = (np.clip(1.0 - departure / CHROMA_TOLERANCE, 0.0, 1.0)
                  * np.clip((high - np.abs(ratio)) / (0.5 * high), 0.0, 1.0)
                  * np.clip((coarse - DARK[0]) / (DARK[1] - DARK[0]), 0.0, 1.0) * region)
        spread = masked_blur(ratio, weight, 2 * fine_sigma)
        support = masked_blur(weight, region, 2 * fine_sigma)  # how much of the region weighs
        log_shading[region] = np.clip(spread * np.minimum(1.0, 2.0 * support), low, high)[region]
    return np.exp(log_shading)


def skin_tone(image: np.ndarray, parse: np.ndarray, limb_labels: tuple) -> np.ndarray | None:
    """float64 [3]: the median colour of the person's visible limbs, else of the face; None when
    neither shows enough pixels."""
    for labels in (limb_labels, (lip.FACE,)):
        skin = np.isin(parse, labels)
        if skin.sum() >= MIN_SKIN_PIXELS:
            return np.median(np.asarray(image, np.float64)[skin], axis=0)
    return None


def _pixel_points(shape: tuple) -> np.ndarray:
    """float64 [H*W,2]: every pixel's (x, y), row by row."""
    rows, cols = np.mgrid[:shape[0], :shape[1]]
    return np.stack([cols.ravel(), rows.ravel()], axis=1).astype(np.float64)


def _segment_distance(points: np.ndarray, a: np.ndarray, b: np.ndarray,
                      flat_start: bool = False) -> np.ndarray:
    """Distance of each of ``points`` [N,2] to the segment a–b; ``flat_start``: inf for the
    points behind ``a`` (projecting before it), so the corridor ends square at ``a``."""
    direction = b - a
    length = float(direction @ direction)
    if length <= 0:  # no direction: a point, and no side of it is "behind"
        return np.linalg.norm(points - a, axis=-1)
    t = ((points - a) @ direction) / length
    nearest = a + np.clip(t, 0.0, 1.0)[..., None] * direction
    distance = np.linalg.norm(points - nearest, axis=-1)
    return np.where(t < 0, np.inf, distance) if flat_start else distance


def limb_distance(keypoints: np.ndarray, frame: str, shape: tuple) -> tuple:
    """(distance [H,W] of each pixel to the nearest limb axis, in units of the corridor radius;
    inf where the pose shows no limb) for the limbs of ``frame`` (arms on the upper-body crop,
    legs on the body frame)."""
    chains, (anchor_a, anchor_b), share = _LIMBS[frame]
    keypoints = np.asarray(keypoints, np.float64)
    found = keypoints[:, 2] > 0
    distance = np.full(shape, np.inf)
    if not (found[anchor_a] and found[anchor_b]):
        return distance
    radius = share * np.linalg.norm(keypoints[anchor_a, :2] - keypoints[anchor_b, :2])
    if radius < 1.0:
        return distance
    pixels = _pixel_points(shape)
    for chain in chains:
        for start, end in zip(chain[:-1], chain[1:]):
            if found[start] and found[end]:
                d = _segment_distance(pixels, keypoints[start, :2], keypoints[end, :2],
                                      flat_start=start == chain[0])
                distance = np.minimum(distance, d.reshape(shape) / radius)
    return distance


def forearms(parse: np.ndarray, keypoints: np.ndarray) -> np.ndarray:
    """bool [H,W]: the parse's arm pixels nearer a forearm (elbow → wrist, either arm) than an
    upper arm (shoulder → elbow); nothing where the pose shows no elbow and wrist."""
    keypoints = np.asarray(keypoints, np.float64)
    found = keypoints[:, 2] > 0
    arms = np.isin(parse, (lip.LEFT_ARM, lip.RIGHT_ARM))
    shape = arms.shape
    pixels = _pixel_points(shape)
    nearest = {'fore': np.full(shape, np.inf), 'upper': np.full(shape, np.inf)}
    for shoulder, elbow, wrist in _LIMBS[spec.UPPER_FRAME][0]:
        for part, (a, b) in (('fore', (elbow, wrist)), ('upper', (shoulder, elbow))):
            if found[a] and found[b]:
                d = _segment_distance(pixels, keypoints[a, :2], keypoints[b, :2]).reshape(shape)
                nearest[part] = np.minimum(nearest[part], d)
    return arms & (nearest['fore'] < nearest['upper'])


def hem_drop(core: np.ndarray, new: np.ndarray, old: np.ndarray, reach: int) -> tuple:
    """Where a full-length garment's hem falls to the old one: (bool [H,W] of the pixels to
    fill, from each column's source row down; int [W] of the source rows, -1 where none).

    In each column the source row is the lowest row of ``core`` (the new garment's interior);
    below it run the pixels of ``new`` (the new garment with its edge) or ``old`` (the old
    garment). The run is extended when it goes past ``new``, i.e. the old hem is lower, and ends
    within ``reach`` rows of the source row. A run that goes on further is another garment's
    length, not a hem, and is left alone.
    """
    core = np.asarray(core, bool)
    new = np.asarray(new, bool) | core
    cover = new | np.asarray(old, bool)
    height = core.shape[0]
    rows = np.arange(height)[:, None]
    has_core = core.any(axis=0)
    source = np.where(has_core, height - 1 - np.argmax(core[::-1], axis=0), -1)
    gap = (rows > source[None, :]) & ~cover
    run_end = np.where(gap.any(axis=0), np.argmax(gap, axis=0), height) - 1
    new_end = np.where(new.any(axis=0), height - 1 - np.argmax(new[::-1], axis=0), -1)
    keep = has_core & (run_end > new_end) & (run_end - source <= reach)
    drop = (rows >= source[None, :]) & (rows <= run_end[None, :]) & keep[None, :]
    return drop, np.where(keep, source, -1)


def fill_from_nearest(image: np.ndarray, source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """``image`` with each ``target`` pixel set to the colour of its nearest ``source`` pixel
    (Euclidean); unchanged where ``source`` is empty."""
    source = np.asarray(source, bool)
    target = np.asarray(target, bool) & ~source
    out = np.array(image, copy=True)
    if not source.any() or not target.any():
        return out
    _, labels = cv2.distanceTransformWithLabels((~source).astype(np.uint8), cv2.DIST_L2,
                                                cv2.DIST_MASK_PRECISE,
                                                labelType=cv2.DIST_LABEL_PIXEL)
    # each source pixel has its own label; map the labels back to their pixels
    rows, cols = np.nonzero(source)
    lookup = np.zeros(labels.max() + 1, np.int64)
    lookup[labels[rows, cols]] = np.arange(len(rows))
    nearest = lookup[labels[target]]
    out[target] = out[rows[nearest], cols[nearest]]
    return out


def relight(category: str, frame: frames.Frame, tryon: np.ndarray, clothing_mask: np.ndarray,
            warped_mask: np.ndarray, selection: np.ndarray,
            warped_cloth: np.ndarray | None = None) -> np.ndarray:
    """uint8 [256,192,3]: ``tryon`` (RM's output for ``frame``) relit and with the person's skin
    inside ``selection``; outside it, ``tryon`` unchanged (the paste-back does not use it).

    The new garment is where GMM's ``warped_mask`` is (≥ 100/255, grown by two pixels), inside
    the selection: where RM's ``clothing_mask`` (EDM's) reaches beyond it, RM renders EDM's
    coarse person, and that is treated like skin or surroundings the garment uncovers; holes in
    the clothing mask inside the warped garment (EDM's is often ragged on photos) are not.
    ``warped_cloth`` (GMM's warped garment, uint8 [256,192,3]) colours a dropped hem; RM often
    fades its last rows into the coarse person, so without it the hem takes ``tryon``'s colour.
    """
    spec.check_category(category)
    image = np.asarray(frame.image)
    parse = np.asarray(frame.parse)
    selected = np.asarray(selection) >= 128
    warped = cv2.dilate(np.asarray(warped_mask, np.uint8), np.ones((5, 5), np.uint8))
    garment = (warped >= spec.GMM_MASK_THRESHOLD) & selected
    old = np.isin(parse, categories.GARMENT_LABELS[category]) & selected
    if category in _SHORT_SLEEVES:
        garment &= ~forearms(parse, frame.keypoints)
    out = np.asarray(tryon, np.float64).copy()
    if category in _HEM_DROPS:
        # the interior: two rows above the warp's soft lower edge, whose colour is blended
        core = cv2.erode(((np.asarray(warped_mask) >= spec.GMM_MASK_THRESHOLD) & selected)
                         .astype(np.uint8), np.ones((5, 1), np.uint8)) > 0
        drop, source = hem_drop(core, garment, old, int(round(HEM_REACH * parse.shape[0])))
        cols = np.nonzero(drop)[1]
        hem = out if warped_cloth is None else np.asarray(warped_cloth, np.float64)
        out[drop] = hem[source[cols], cols]
        garment |= drop
    # RM blends the product photo's background into the warp's soft edge: a light seam round
    # the garment. The edge takes the colour of the garment just inside it.
    interior = (np.asarray(warped_mask) >= 128) & selected
    if EDGE_INSET:
        interior = cv2.erode(interior.astype(np.uint8), np.ones((3, 3), np.uint8),
                             iterations=EDGE_INSET) > 0
    out = fill_from_nearest(out, interior, garment & ~interior)
    limb_labels = categories.LIMB_LABELS[category]
    regions = [old] + [(parse == label) & selected for label in limb_labels]
    light = shading(image, regions)[..., None]
    out[garment] = (out * light)[garment]

    visible_skin = np.isin(parse, limb_labels) & selected & ~garment
    out[visible_skin] = image[visible_skin]

    uncovered = (old | (np.asarray(clothing_mask) >= 128)) & selected & ~garment & ~visible_skin
    if uncovered.any():
        distance = limb_distance(frame.keypoints, spec.frame_of(category), parse.shape)
        tone = skin_tone(image, parse, limb_labels)
        limb = uncovered & (distance < 1.0) if tone is not None else np.zeros_like(uncovered)
        if limb.any():
            rounding = 1.0 - LIMB_ROUNDING * np.minimum(distance, 1.0) ** 2
            painted = tone * (rounding[..., None] * light)
            out[limb] = painted[limb]
        rest = uncovered & ~limb
        if rest.any():
            # The photo's surroundings flowed in over what the old garment and the new one hide.
            hidden = (old | garment).astype(np.uint8)
            filled = cv2.inpaint(image, hidden * 255, 5, cv2.INPAINT_TELEA)
            out[rest] = filled[rest]
    # A one-pixel soft edge between the new garment and what borders it.
    edge = (cv2.dilate(garment.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0) & ~(
            cv2.erode(garment.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0) & selected
    out[edge] = cv2.GaussianBlur(out, (3, 3), 0)[edge]
    return np.clip(np.round(out), 0, 255).astype(np.uint8)
