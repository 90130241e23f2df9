"""Label maps in every accepted encoding, VITON's transposed .mat, and the errors."""

import numpy as np
import pytest
from PIL import Image

from everywear_tf import errors
from everywear_tf import spec
from everywear_tf.data import parsing
from tests.data.fixtures import path

EXPECTED = np.load(path('parse_expected.npy'))


@pytest.mark.parametrize('name', ['parse_palette.png', 'parse_grey.png', 'parse_lip_colours.png'])
def test_png_encodings_give_the_labels(name):
    labels = parsing.read_parse(path(name), image_size=spec.FRAME_SHAPE)
    assert labels.dtype == np.uint8
    np.testing.assert_array_equal(labels, EXPECTED)


def test_viton_segment_mat_is_transposed_resized_and_cropped():
    labels = parsing.read_parse(path('viton_segment.mat'), image_size=spec.FRAME_SHAPE)
    assert labels.shape == spec.FRAME_SHAPE
    # 256 → 641 → 256 nearest is not the identity everywhere, but nearly.
    assert (labels == EXPECTED).mean() > 0.99


def test_labels_above_19_are_refused():
    with pytest.raises(errors.ParseMapError, match=r'labels \[25\] are outside'):
        parsing.read_parse(path('parse_label_25.png'))
    labels = parsing.read_parse(path('parse_label_25.png'), max_label=25)
    assert labels.max() == 25


def test_size_rules(tmp_path):
    half = tmp_path / 'half.png'
    parsing.write_parse_png(str(half), EXPECTED[::2, ::2].copy())
    assert parsing.read_parse(str(half), image_size=spec.FRAME_SHAPE).shape == spec.FRAME_SHAPE
    square = tmp_path / 'square.png'
    parsing.write_parse_png(str(square), np.zeros((100, 100), np.uint8))
    with pytest.raises(errors.ParseMapError, match='different aspect ratio'):
        parsing.read_parse(str(square), image_size=spec.FRAME_SHAPE)


def test_unknown_colour_missing_and_corrupt(tmp_path):
    rgb = np.zeros((8, 8, 3), np.uint8)
    rgb[0, 0] = (1, 2, 3)
    Image.fromarray(rgb).save(tmp_path / 'odd.png')
    with pytest.raises(errors.ParseMapError, match=r'colour \(1, 2, 3\)'):
        parsing.read_parse(str(tmp_path / 'odd.png'))
    with pytest.raises(errors.InputNotFoundError):
        parsing.read_parse(str(tmp_path / 'none.png'))
    (tmp_path / 'bad.png').write_bytes(b'\x89PNG\r\n\x1a\nbroken')
    with pytest.raises(errors.ParseMapError, match='bad.png'):
        parsing.read_parse(str(tmp_path / 'bad.png'))


def test_nearest_resize_equals_pillow():
    rng = np.random.default_rng(0)
    for shape, size in (((641, 641), (256, 256)), ((192, 192), (641, 641)),
                        ((256, 192), (641, 641)), ((13, 97), (300, 1000))):
        labels = rng.integers(0, 20, shape).astype(np.uint8)
        pillow = np.asarray(Image.fromarray(labels).resize(size[::-1], Image.NEAREST))
        np.testing.assert_array_equal(parsing.nearest_resize(labels, size), pillow)


def test_write_round_trip_is_atomic(tmp_path):
    target = tmp_path / 'p.png'
    parsing.write_parse_png(str(target), EXPECTED)
    np.testing.assert_array_equal(parsing.read_parse(str(target)), EXPECTED)
    with pytest.raises(ValueError):
        parsing.write_parse_png(str(target), EXPECTED.astype(np.int32))
    np.testing.assert_array_equal(parsing.read_parse(str(target)), EXPECTED)  # old file intact
    assert sorted(p.name for p in tmp_path.iterdir()) == ['p.png']
