"""A product photo's garment mask when none is given, made the way CP-VTON made its cloth-mask/
files (convert_data.m:95-97 of sergeywong/cp-vton):

    mask = (R <= 250) & (G <= 250) & (B <= 250);  mask = imfill(mask);  mask = medfilt2(mask);

i.e. a pixel is garment only when all three channels are at most 250, enclosed background holes
(a white print) are filled (MATLAB's imfill on a numeric image: background 4-connected to the
border stays background), and a 3×3 median with zero padding (medfilt2's default) removes
specks. CP-VTON then stored the mask as JPEG; here it stays exact {0, 255}. Note the rule: a
garment pixel with any channel above 250 (pure red (255, 0, 0), say) counts as background unless
it is enclosed by garment. (VITON's shape-context step used ``none of R, G, B == 255`` instead,
shape_context_warp.m:35.)

The pipeline's product photos use the ``near_white`` rule instead: a pixel is background only
when all three channels are above 250, so saturated colours stay garment; holes and specks are
treated the same way.

``check_garment`` and ``check_mask`` refuse a product photo with (nearly) no garment on it (an
all-white picture) and a mask that marks (nearly) nothing: the networks would dress the person in
nothing and the run would look successful.
"""

import cv2
import numpy as np

from everywear_tf import errors

WHITE_THRESHOLD = 250  # a channel above this is "white"
CPVTON = 'cpvton'  # garment where every channel is at most the threshold (convert_data.m)
NEAR_WHITE = 'near_white'  # garment where any channel is at most the threshold
RULES = (CPVTON, NEAR_WHITE)
# A garment covering less of its product photo than this (or a mask marking less) is refused.
MIN_GARMENT_FRACTION = 0.01
_CHECK_SAMPLES = 1 << 20  # pixels looked at to measure a large photo's garment fraction


def _sampled(array):
    step = max(1, int(np.ceil(np.sqrt(array.shape[0] * array.shape[1] / _CHECK_SAMPLES))))
    return array[::step, ::step]


def check_garment(image, path='<memory>', min_fraction=MIN_GARMENT_FRACTION):
    """Raises an ImageError naming ``path`` when less than ``min_fraction`` of the uint8 RGB
    product photo ``image`` is garment by the ``near_white`` rule (any channel at most
    WHITE_THRESHOLD), e.g. an all-white picture."""
    sample = _sampled(np.asarray(image))
    fraction = float(np.mean(np.any(sample <= WHITE_THRESHOLD, axis=-1))) if sample.size else 0.0
    if fraction < min_fraction:
        raise errors.ImageError(path, f'has no garment: {fraction:.2%} of the product photo is '
                                      f'not white (channels above {WHITE_THRESHOLD}), less than '
                                      f'{min_fraction:.2%} (an empty or all-white picture?)')


def check_mask(mask, path='<memory>', min_fraction=MIN_GARMENT_FRACTION):
    """Raises an ImageError naming ``path`` when less than ``min_fraction`` of the uint8 garment
    mask ``mask`` is set (≥ 128)."""
    sample = _sampled(np.asarray(mask))
    fraction = float(np.mean(sample >= 128)) if sample.size else 0.0
    if fraction < min_fraction:
        raise errors.ImageError(path, f'is an empty garment mask: {fraction:.2%} of it is set '
                                      f'(>= 128), less than {min_fraction:.2%}')


def fill_holes(mask):
    """bool [H,W] with the background regions not 4-connected to the border filled."""
    height, width = mask.shape
    padded = np.pad(mask.astype(np.uint8), 1)  # a background ring so the fill reaches around
    flood_mask = np.zeros((height + 4, width + 4), np.uint8)
    cv2.floodFill(padded, flood_mask, (0, 0), 2, flags=4)
    return padded[1:-1, 1:-1] != 2


def median3(mask):
    """bool [H,W]: MATLAB medfilt2 (3×3, zero padding) of a binary mask: ≥ 5 of 9 set."""
    padded = np.pad(mask.astype(np.uint8), 1)
    height, width = mask.shape
    count = sum(padded[dy:dy + height, dx:dx + width] for dy in range(3) for dx in range(3))
    return count >= 5


def compute_cloth_mask(cloth, white_threshold=WHITE_THRESHOLD, rule=CPVTON):
    """uint8 [H,W,3] RGB product photo on white → uint8 {0, 255} [H,W] garment mask."""
    if rule not in RULES:
        raise ValueError(f'unknown cloth-mask rule {rule!r}; expected one of {RULES}')
    cloth = np.asarray(cloth)
    if cloth.dtype != np.uint8 or cloth.ndim != 3 or cloth.shape[2] != 3 or cloth.size == 0:
        raise errors.ImageError(None, f'a product photo must be uint8 [H,W,3], got {cloth.dtype} '
                                      f'{cloth.shape}')
    reduce = np.all if rule == CPVTON else np.any
    foreground = reduce(cloth <= white_threshold, axis=-1)
    return median3(fill_holes(foreground)).astype(np.uint8) * 255
