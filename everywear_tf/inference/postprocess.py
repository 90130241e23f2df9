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
          protect: np.ndarray | None = None) -> tuple:
    """``photo`` with ``frame_image`` pasted where ``selection`` maps to; returns (result,
    alpha in [0,1] at photo size). Pixels with alpha 0 are the photo's own, bit for bit; so are
    the pixels of ``protect`` (bool, photo size), feather included.

    The seam is feathered outwards from the region over ``feather`` of the photo's shorter side;
    where the frame ends inside the photo (an upper-body crop), alpha fades to 0 at the frame's
    edge instead, so no frame border is smeared outwards. Work is confined to the frame's
    footprint in the photo.
    """
    height, width = photo.shape[:2]
    frame_height, frame_width = selection.shape
    inverse = cv2.invertAffineTransform(np.asarray(transform, np.float64))
    radius = max(1, int(round(feather * min(height, width))))
    corners = (np.array([[-0.5, -0.5], [frame_width - 0.5, -0.5], [-0.5, frame_height - 0.5],
                         [frame_width - 0.5, frame_height - 0.5]]) @ inverse[:, :2].T
               + inverse[:, 2])
    x0, y0 = (max(0, int(np.floor(v)) - radius - 1) for v in corners.min(axis=0))
    x1 = min(width, int(np.ceil(corners[:, 0].max())) + radius + 2)
    y1 = min(height, int(np.ceil(corners[:, 1].max())) + radius + 2)
    alpha = np.zeros((height, width), np.float32)
    result = photo.copy()
    if x1 <= x0 or y1 <= y0:
        return result, alpha
    local = inverse.copy()
    local[:, 2] -= (x0, y0)
    size = (x1 - x0, y1 - y0)

    def to_photo(image, border_mode=cv2.BORDER_CONSTANT):
        return cv2.warpAffine(image, local, size, flags=cv2.INTER_LINEAR, borderMode=border_mode,
                              borderValue=0)

    region = to_photo(selection) >= 128
    inside = to_photo(np.full(selection.shape, 255, np.uint8)) >= 128
    patch = region.astype(np.float32)
    if radius > 1 and region.any():
        outside = cv2.distanceTransform((~region).astype(np.uint8), cv2.DIST_L2, 5)
        patch = np.clip(1.0 - outside / radius, 0.0, 1.0).astype(np.float32)
        if not inside.all():  # distance to the frame's edge (the photo's own edges don't count)
            edge = cv2.distanceTransform(inside.astype(np.uint8), cv2.DIST_L2, 5)
            patch *= np.clip(edge / radius, 0.0, 1.0)
    patch[~inside] = 0.0
    if protect is not None:
        patch[protect[y0:y1, x0:x1]] = 0.0
    alpha[y0:y1, x0:x1] = patch
    warped = to_photo(frame_image, cv2.BORDER_REPLICATE).astype(np.float32)
    original = photo[y0:y1, x0:x1]
    blended = original.astype(np.float32) * (1 - patch[..., None]) + warped * patch[..., None]
    result[y0:y1, x0:x1] = np.where(patch[..., None] > 0, np.round(blended),
                                    original).astype(np.uint8)
    return result, alpha
