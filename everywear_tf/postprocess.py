"""Frames back into the photo: the try-on replaces the photo only inside the garment region
(plus a feathered margin); every other pixel of the photo is left exactly as it was.

The region is decided in the frame (where the old garment was, the limbs it touched, and the new
clothing mask, never the head), cleaned of stray islands, mapped back through the recorded
transform, and feathered outwards over a few photo pixels so the seam does not show; the
protected labels of the photo's own parse (evaluate.PROTECTED_LABELS) are then left exactly as
they were, at full resolution. What is pasted is the frame with the try-on inside the selection,
so the feathered margin blends the photo with its own resampled pixels, not with regenerated ones.
"""

import cv2
import numpy as np

from everywear_tf import evaluate

FEATHER = 0.02  # of the photo's shorter side, outside the region only
MIN_ISLAND = 0.002  # components smaller than this share of the frame are dropped


def clean_mask(mask, min_fraction=MIN_ISLAND):
    """uint8 {0,255}: ``mask`` (bool or uint8) without connected islands smaller than
    ``min_fraction`` of the image, holes of that size filled."""
    binary = (np.asarray(mask) > 0).astype(np.uint8)
    limit = min_fraction * binary.size
    for target, value in ((binary, 1), (1 - binary, 0)):
        count, labels, stats, _ = cv2.connectedComponentsWithStats(target, connectivity=8)
        for component in range(1, count):
            if stats[component, cv2.CC_STAT_AREA] < limit:
                binary[labels == component] = 1 - value
    return binary * 255


def selection_mask(category, frame_parse, clothing_mask):
    """uint8 {0,255} [256,192]: where the try-on replaces the frame (``_sel_mask``)."""
    return clean_mask(evaluate.replaced_region(category, frame_parse[None],
                                               clothing_mask[None])[0])


def compose(frame_image, tryon, selection):
    """uint8 [256,192,3]: the frame with the try-on inside ``selection`` (what is pasted back)."""
    return np.where(selection[..., None] > 0, tryon, frame_image).astype(np.uint8)


def paste(photo, frame_image, selection, transform, feather=FEATHER, protect=None):
    """``photo`` with ``frame_image`` pasted where ``selection`` maps to; returns (result,
    alpha in [0,1] at photo size). Pixels with alpha 0 are the photo's own, bit for bit; so are
    the pixels of ``protect`` (bool, photo size), feather included."""
    height, width = photo.shape[:2]
    inverse = cv2.invertAffineTransform(np.asarray(transform, np.float64))
    warped = cv2.warpAffine(frame_image, inverse, (width, height), flags=cv2.INTER_LINEAR,
                            borderMode=cv2.BORDER_REPLICATE)
    region = cv2.warpAffine(selection, inverse, (width, height), flags=cv2.INTER_LINEAR,
                            borderMode=cv2.BORDER_CONSTANT, borderValue=0) >= 128
    alpha = region.astype(np.float32)
    radius = max(1, int(round(feather * min(height, width))))
    if radius > 1 and region.any():
        outside = cv2.distanceTransform((~region).astype(np.uint8), cv2.DIST_L2, 5)
        alpha = np.clip(1.0 - outside / radius, 0.0, 1.0).astype(np.float32)
    if protect is not None:
        alpha[protect] = 0.0
    blended = photo.astype(np.float32) * (1 - alpha[..., None]) + warped * alpha[..., None]
    result = np.where(alpha[..., None] > 0, np.round(blended), photo).astype(np.uint8)
    return result, alpha
