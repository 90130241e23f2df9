"""What each garment category may change, in one place. No TensorFlow.

- The composition rule between EDM and RM: for men's t-shirts the clothing mask given to RM is
  the union of the EDM mask and GMM's warped mask thresholded at 100/255 ("gmmask"), because
  short sleeves leave arm skin that EDM's mask misses; the other categories use the EDM mask
  alone (BUILD.md §2, from the Everywear document).
- The regions of the paste-back and of the composited evaluation: the old garment, the limbs it
  covers or bares, and the new clothing mask are replaced; the protected labels (the head, and
  for pants the shoes and whatever is worn over them) never are.
"""

import numpy as np

from everywear_tf import spec
from everywear_tf.data import lip

# The labels of the garment a category replaces (CP-VTON's cloth region).
GARMENT_LABELS = {category: labels[0] for category, labels in lip.CATEGORY_GARMENT.items()}
# What a new garment may change besides the old garment's pixels: the limbs it covers or bares.
LIMB_LABELS = {spec.MEN_TSHIRTS: (lip.LEFT_ARM, lip.RIGHT_ARM),
               spec.MEN_LONG: (lip.LEFT_ARM, lip.RIGHT_ARM),
               spec.MEN_PANTS: (lip.LEFT_LEG, lip.RIGHT_LEG)}
# Never repainted, whatever the networks' masks say: the head, and for pants the shoes and what
# is worn over them.
PROTECTED_LABELS = {
        spec.MEN_TSHIRTS: lip.VITON_HEAD,
        spec.MEN_LONG: lip.VITON_HEAD,
        spec.MEN_PANTS: lip.VITON_HEAD + (lip.UPPER_CLOTHES, lip.DRESS, lip.COAT, lip.LEFT_SHOE,
                                          lip.RIGHT_SHOE),
}


def gmm_mask(warped_mask: np.ndarray) -> np.ndarray:
    """uint8 {0, 255}: GMM's warped mask at or above 100/255."""
    return np.where(np.asarray(warped_mask) >= spec.GMM_MASK_THRESHOLD, 255, 0).astype(np.uint8)


def clothing_mask(category: str, edm_mask: np.ndarray, warped_mask: np.ndarray) -> np.ndarray:
    """uint8 [B,H,W] clothing mask for RM from EDM's mask and GMM's warped mask."""
    spec.check_category(category)
    edm_mask = np.asarray(edm_mask, np.uint8)
    if category == spec.MEN_TSHIRTS:
        return np.maximum(edm_mask, gmm_mask(warped_mask))
    return edm_mask


def protected(category: str, parse: np.ndarray) -> np.ndarray:
    """bool, parse's shape: pixels the try-on of ``category`` must leave as they are."""
    return np.isin(parse, PROTECTED_LABELS[spec.check_category(category)])


def replaced_region(category: str, parse: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """bool [B,H,W]: where the try-on replaces the photo.

    The old garment, the limbs it touches, and the new garment's clothing ``mask`` (≥ 128), but
    never a protected label; the paste-back and the composited evaluation both use it.
    """
    return ((np.isin(parse, GARMENT_LABELS[category] + LIMB_LABELS[category])
             | (np.asarray(mask) >= 128)) & ~protected(category, parse))


def composite(category: str, person: np.ndarray, parse: np.ndarray, outputs: dict) -> np.ndarray:
    """The try-on pasted into the input frame inside ``replaced_region`` (uint8)."""
    region = replaced_region(category, parse, outputs[spec.CLOTHING_MASK])[..., None]
    return np.where(region, outputs[spec.TRYON], person)
