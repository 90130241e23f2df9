"""Computed cloth masks: CP-VTON's rule (convert_data.m:95-97) against an independent SciPy
reference, and against drawn garments whose masks are known."""

import numpy as np
import pytest
import scipy.ndimage
import scipy.signal

from everywear_tf import errors
from everywear_tf.data import cloth_mask
from everywear_tf.data import synthetic


def _reference(cloth, reduce=np.all):
    """all(RGB ≤ 250) → imfill (4-connected background) → medfilt2 (3×3, zero padding)."""
    mask = reduce(cloth <= 250, axis=-1)
    mask = scipy.ndimage.binary_fill_holes(mask)  # default structure: 4-connected
    return (scipy.signal.medfilt2d(mask.astype(np.float64), 3) > 0.5).astype(np.uint8) * 255


@pytest.mark.parametrize('pattern', ['plain', 'checks', 'print', 'stripes'])
def test_matches_the_drawn_mask_and_the_reference(pattern):
    garment = synthetic.render_top(np.random.default_rng(1), (120, 60, 200), pattern=pattern)
    mask = cloth_mask.compute_cloth_mask(garment.image)
    assert mask.dtype == np.uint8 and mask.shape == garment.image.shape[:2]
    assert set(np.unique(mask)) == {0, 255}
    np.testing.assert_array_equal(mask, _reference(garment.image))
    assert (mask != garment.mask).mean() < 0.002


def test_random_blobs_match_the_reference():
    rng = np.random.default_rng(7)
    for _ in range(5):
        noise = scipy.ndimage.gaussian_filter(rng.normal(size=(60, 50)), 2.0)
        cloth = np.full((60, 50, 3), 255, np.uint8)
        cloth[noise > 0.05] = rng.integers(0, 256, 3)
        cloth[rng.random((60, 50)) < 0.05] = (251, 10, 10)  # specks with a bright channel
        np.testing.assert_array_equal(cloth_mask.compute_cloth_mask(cloth), _reference(cloth))


def test_all_channels_must_be_at_most_250():
    cloth = np.full((9, 12, 3), 255, np.uint8)
    cloth[2:7, 1:4] = (250, 250, 250)  # garment
    cloth[2:7, 5:8] = (251, 100, 100)  # one channel above 250: background (CP-VTON's rule)
    cloth[2:7, 9:11] = (255, 0, 0)  # pure red: background too
    mask = cloth_mask.compute_cloth_mask(cloth)
    assert mask[3:6, 2].tolist() == [255] * 3
    assert not mask[:, 5:].any()


def test_near_white_rule_keeps_saturated_colours():
    cloth = np.full((9, 12, 3), 255, np.uint8)
    cloth[2:7, 1:4] = (251, 251, 251)  # near white: background
    cloth[2:7, 5:8] = (251, 100, 100)
    cloth[2:7, 9:11] = (255, 0, 0)
    mask = cloth_mask.compute_cloth_mask(cloth, rule=cloth_mask.NEAR_WHITE)
    assert not mask[:, :4].any()
    assert mask[3:6, 6].tolist() == [255] * 3 and mask[3:6, 9:11].all()
    rng = np.random.default_rng(8)
    for _ in range(5):
        noise = scipy.ndimage.gaussian_filter(rng.normal(size=(60, 50)), 2.0)
        cloth = np.full((60, 50, 3), 255, np.uint8)
        cloth[noise > 0.05] = rng.integers(0, 256, 3)
        cloth[rng.random((60, 50)) < 0.05] = (251, 10, 255)
        cloth[rng.random((60, 50)) < 0.05] = (252, 251, 255)
        np.testing.assert_array_equal(
                cloth_mask.compute_cloth_mask(cloth, rule=cloth_mask.NEAR_WHITE),
                _reference(cloth, np.any))
    with pytest.raises(ValueError, match='unknown cloth-mask rule'):
        cloth_mask.compute_cloth_mask(cloth, rule='grabcut')


def test_holes_are_filled_with_4_connectivity_and_specks_removed():
    image = np.full((40, 40, 3), 255, np.uint8)
    image[5:35, 5:35] = (200, 30, 30)
    image[15:20, 15:20] = 255  # a white print inside the garment: filled
    image[25:30, 30:35] = 255  # a white notch open to the outside: stays background
    image[1, 38] = 0  # a speck of dust: removed
    # A white pocket touching the outside only diagonally (through the cut corner at (5, 5))
    # is a hole under 4-connectivity, MATLAB imfill's default.
    image[5, 5] = 255
    image[6:8, 6:8] = 255
    mask = cloth_mask.compute_cloth_mask(image)
    assert mask[17, 17] == 255 and mask[1, 38] == 0 and mask[2, 2] == 0
    assert mask[27, 33] == 0
    assert mask[6:8, 6:8].tolist() == [[255, 255], [255, 255]] and mask[5, 5] == 0


def test_median_pads_with_zeros_like_medfilt2():
    mask = cloth_mask.compute_cloth_mask(np.zeros((4, 5, 3), np.uint8))  # all garment
    # Corners see 4 of 9 set (zero padding): cleared; edges see 6: kept.
    assert mask.tolist() == [[0, 255, 255, 255, 0], [255] * 5, [255] * 5, [0, 255, 255, 255, 0]]


@pytest.mark.parametrize('bad', [np.zeros((4, 4), np.uint8), np.zeros((4, 4, 3), np.float32),
                                 np.zeros((4, 4, 4), np.uint8), np.zeros((0, 4, 3), np.uint8)])
def test_bad_input(bad):
    with pytest.raises(errors.ImageError, match=r'<memory>: a product photo must be uint8'):
        cloth_mask.compute_cloth_mask(bad)
