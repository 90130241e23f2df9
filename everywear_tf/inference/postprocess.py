"""Frames back into the photo: the try-on replaces the photo only inside the garment region
(plus a feathered margin); every other pixel of the photo is left exactly as it was.

The region is decided in the frame (where the old garment was, the limbs it touched, and the new
clothing mask, never the head), cleaned of stray islands, mapped back through the recorded
transform, and feathered outwards over a few photo pixels so the seam does not show; the
protected labels of the photo's own parse (categories.PROTECTED_LABELS) are then left exactly as
they were, at full resolution. What is pasted is the frame with the try-on inside the selection,
so the feathered margin blends the photo with its own resampled pixels, not with regenerated ones.
"""

import cv2
import numpy as np

from everywear_tf.inference import categories

FEATHER = 0.02  # of the photo's shorter side, outside the region only
MIN_ISLAND = 0.002  # components smaller than this share of the frame are dropped
TILE = 1024  # paste works on pieces of at most this many photo pixels a side (bounded memory)


def clean_mask(mask: np.ndarray, min_fraction: float = MIN_ISLAND) -> np.ndarray:
    """uint8 {0,255}: ``mask`` (bool or uint8) without connected islands smaller than
    ``min_fraction`` of the image, holes of that size filled."""
    original = (np.asarray(mask) > 0).astype(np.uint8)
    binary = original.copy()
    limit = min_fraction * binary.size
    for target, value in ((original, 1), (1 - original, 0)):
        _, labels, stats, _ = cv2.connectedComponentsWithStats(target, connectivity=8)
        small = stats[:, cv2.CC_STAT_AREA] < limit
        small[0] = False  # label 0 is the other value's pixels
        binary[small[labels]] = 1 - value
    return binary * 255


def selection_mask(category: str, frame_parse: np.ndarray,
                   clothing_mask: np.ndarray) -> np.ndarray:
    """uint8 {0,255} [256,192]: where the try-on replaces the frame (``_sel_mask``)."""
    return clean_mask(categories.replaced_region(category, frame_parse[None],
                                               clothing_mask[None])[0])


def compose(frame_image: np.ndarray, tryon: np.ndarray, selection: np.ndarray) -> np.ndarray:
    """uint8 [256,192,3]: the frame with the try-on inside ``selection`` (what is pasted back)."""
    return np.where(selection[..., None] > 0, tryon, frame_image).astype(np.uint8)


def paste(photo: np.ndarray, frame_image: np.ndarray, selection: np.ndarray,
          transform: np.ndarray, feather: float = FEATHER,
          protect: np.ndarray | None = None, tile: int = TILE) -> tuple:
    """``photo`` with ``frame_image`` pasted where ``selection`` maps to; returns (result,
    alpha: uint8 at photo size, 0 where the pixel is the photo's own, 255 where the frame
    replaced it, the feather between). Pixels with alpha 0 are the photo's own, bit for bit; so
    are the pixels of ``protect`` (bool, photo size), feather included.

    The seam is feathered outwards from the region over ``feather`` of the photo's shorter side;
    where the frame ends inside the photo (an upper-body crop), alpha fades to 0 at the frame's
    edge instead, so no frame border is smeared outwards. Work is confined to the bounding box
    of the selection's footprint in the photo, in pieces of ``tile``² photo pixels (each with a
    margin wider than the feather, so the pieces join without a seam): memory stays bounded
    whatever the photo's size, and no OpenCV call sees more than a piece.
    """
    height, width = photo.shape[:2]
    inverse = cv2.invertAffineTransform(np.asarray(transform, np.float64))
    radius = max(1, int(round(feather * min(height, width))))
    result = photo.copy()
    alpha = np.zeros((height, width), np.uint8)
    box = _footprint(selection, inverse, radius + 2, (height, width))
    if box is None:
        return result, alpha
    x0, y0, x1, y1 = box
    # Distances under the radius are found within this margin (OpenCV's 5×5 chamfer distance
    # is within a few percent of the Euclidean one).
    margin = radius + radius // 8 + 3
    for top in range(y0, y1, tile):
        for left in range(x0, x1, tile):
            core = (left, top, min(left + tile, x1), min(top + tile, y1))
            _paste_piece(photo, frame_image, selection, np.asarray(transform, np.float64),
                         radius, protect, core, margin, result, alpha)
    return result, alpha


def _footprint(selection, inverse, grow, shape):
    """(x0, y0, x1, y1): the photo pixels the selection can reach (its bounding box in the frame,
    one frame pixel wider for the bilinear warp, mapped to the photo), grown by ``grow`` and
    clamped to the photo; None when the selection is empty or outside the photo."""
    rows = np.flatnonzero(np.asarray(selection).any(axis=1))
    columns = np.flatnonzero(np.asarray(selection).any(axis=0))
    if not rows.size:
        return None
    corners = np.array([[columns[0] - 1.0, rows[0] - 1.0], [columns[-1] + 1.0, rows[0] - 1.0],
                        [columns[0] - 1.0, rows[-1] + 1.0], [columns[-1] + 1.0, rows[-1] + 1.0]])
    corners = corners @ inverse[:, :2].T + inverse[:, 2]
    height, width = shape
    x0 = max(0, int(np.floor(corners[:, 0].min())) - grow)
    y0 = max(0, int(np.floor(corners[:, 1].min())) - grow)
    x1 = min(width, int(np.ceil(corners[:, 0].max())) + grow + 1)
    y1 = min(height, int(np.ceil(corners[:, 1].max())) + grow + 1)
    return (x0, y0, x1, y1) if x1 > x0 and y1 > y0 else None


def _paste_piece(photo, frame_image, selection, forward, radius, protect, core, margin, result,
                 alpha):
    """Pastes the ``core`` box (x0, y0, x1, y1) of the photo into ``result`` and ``alpha``; the
    distances are measured on the core grown by ``margin``."""
    height, width = photo.shape[:2]
    x0, y0, x1, y1 = core
    wx0, wy0 = max(0, x0 - margin), max(0, y0 - margin)
    wx1, wy1 = min(width, x1 + margin), min(height, y1 + margin)

    def to_photo(image, box, border_mode=cv2.BORDER_CONSTANT):
        # Frame coordinates of every photo pixel of the box from its global position, so a
        # pixel gets the same value whichever piece it is in.
        xs = np.arange(box[0], box[2], dtype=np.float64)[None, :]
        ys = np.arange(box[1], box[3], dtype=np.float64)[:, None]
        map_x = (forward[0, 0] * xs + forward[0, 1] * ys + forward[0, 2]).astype(np.float32)
        map_y = (forward[1, 0] * xs + forward[1, 1] * ys + forward[1, 2]).astype(np.float32)
        return cv2.remap(image, map_x, map_y, cv2.INTER_LINEAR, borderMode=border_mode,
                         borderValue=0)

    work = (wx0, wy0, wx1, wy1)
    region = to_photo(selection, work) >= 128
    if not region.any():  # nothing within the margin: every core pixel stays the photo's
        return
    inside = to_photo(np.full(selection.shape, 255, np.uint8), work) >= 128
    patch = region.astype(np.float32)
    if radius > 1:
        outside = cv2.distanceTransform((~region).astype(np.uint8), cv2.DIST_L2, 5)
        patch = np.clip(1.0 - outside / radius, 0.0, 1.0).astype(np.float32)
        del outside
        if not inside.all():  # distance to the frame's edge (the photo's own edges don't count)
            edge = cv2.distanceTransform(inside.astype(np.uint8), cv2.DIST_L2, 5)
            patch *= np.clip(edge / radius, 0.0, 1.0)
    patch[~inside] = 0.0
    patch = patch[y0 - wy0:y1 - wy0, x0 - wx0:x1 - wx0]
    if protect is not None:
        patch[protect[y0:y1, x0:x1]] = 0.0
    if not patch.any():
        return
    alpha[y0:y1, x0:x1] = np.where(patch > 0, np.maximum(1, np.round(patch * 255)), 0)
    warped = to_photo(frame_image, core, cv2.BORDER_REPLICATE).astype(np.float32)
    original = photo[y0:y1, x0:x1]
    weight = patch[..., None]
    blended = original.astype(np.float32) * (1 - weight) + warped * weight
    result[y0:y1, x0:x1] = np.where(weight > 0, np.round(blended), original).astype(np.uint8)
