"""The category rule between EDM and RM (DESIGN.md §4), shared by every backend. No TensorFlow.

For men's t-shirts the clothing mask given to RM is the union of the EDM mask and GMM's warped
mask thresholded at 100/255 ("gmmask"): short sleeves leave arm skin that EDM's mask misses. The
other categories use the EDM mask alone.
"""

import numpy as np

from everywear_tf import spec


def gmm_mask(warped_mask):
    """uint8 {0, 255}: GMM's warped mask at or above 100/255."""
    return np.where(np.asarray(warped_mask) >= spec.GMM_MASK_THRESHOLD, 255, 0).astype(np.uint8)


def clothing_mask(category, edm_mask, warped_mask):
    """uint8 [B,H,W] clothing mask for RM from EDM's mask and GMM's warped mask."""
    if category not in spec.CATEGORIES:
        raise ValueError(f'unknown category {category!r}; expected one of {spec.CATEGORIES}')
    edm_mask = np.asarray(edm_mask, np.uint8)
    if category == spec.MEN_TSHIRTS:
        return np.maximum(edm_mask, gmm_mask(warped_mask))
    return edm_mask
