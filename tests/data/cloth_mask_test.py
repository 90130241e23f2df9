"""Computed cloth masks against drawn garments whose masks are known."""

import numpy as np
import pytest

from everywear_tf.data import cloth_mask
from everywear_tf.data import synthetic


@pytest.mark.parametrize('pattern', ['plain', 'checks', 'print'])
def test_matches_the_drawn_mask(pattern):
    garment = synthetic.render_top(np.random.default_rng(1), (120, 60, 200), pattern=pattern)
    mask = cloth_mask.compute_cloth_mask(garment.image)
    assert set(np.unique(mask)) <= {0, 255}
    assert (mask != garment.mask).mean() < 0.002


def test_white_hole_is_filled_and_specks_removed():
    image = np.full((40, 40, 3), 255, np.uint8)
    image[5:35, 5:35] = (200, 30, 30)
    image[15:20, 15:20] = 255  # a white print inside the garment
    image[1, 38] = 0  # a speck of dust
    mask = cloth_mask.compute_cloth_mask(image)
    assert mask[17, 17] == 255 and mask[1, 38] == 0 and mask[2, 2] == 0


def test_bad_input():
    with pytest.raises(ValueError, match='uint8'):
        cloth_mask.compute_cloth_mask(np.zeros((4, 4), np.float32))
