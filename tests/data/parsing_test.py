"""Label maps in every accepted encoding, VITON's transposed .mat, size rules and errors."""

import os

import cv2
import numpy as np
import pytest
import scipy.io
from PIL import Image

from everywear_tf import errors
from everywear_tf import fileio
from everywear_tf import spec
from everywear_tf.data import lip
from everywear_tf.data import parsing
from everywear_tf.data import synthetic

from tests.data.fixtures import path
from tests.testdata import make_fixtures


def _expected():
    return synthetic.render_person(np.random.default_rng(make_fixtures.SEED), sleeve=0.45,
                                   pattern='stripes').parse


EXPECTED = _expected()


def _viton_reference(segment, h, w):
    """VITON's process_segment_map (utils.py:83-92) with scipy.misc.imresize spelled out in
    Pillow: uint8 data goes to an 'L' image unscaled, Image.resize(NEAREST)."""
    seg = np.asarray(segment.T, dtype=np.uint8)
    if h >= w:
        return np.asarray(Image.fromarray(seg).resize((h, h), Image.NEAREST))[:, :w]
    return np.asarray(Image.fromarray(seg).resize((w, w), Image.NEAREST))[:h, :]


def test_expected_labels_match_the_stored_copy():
    np.testing.assert_array_equal(np.load(path('parse_expected.npy')), EXPECTED)
    assert set(np.unique(EXPECTED)) >= {0, 2, 5, 13, 14, 15}


@pytest.mark.parametrize('name', ['parse_palette.png', 'parse_grey.png', 'parse_lip_colours.png'])
def test_png_encodings_give_the_labels(name):
    for size in (None, spec.FRAME_SHAPE):
        labels = parsing.read_parse(path(name), image_size=size)
        assert labels.dtype == np.uint8 and labels.shape == spec.FRAME_SHAPE
        np.testing.assert_array_equal(labels, EXPECTED)


def test_fixture_encodings_are_what_they_claim():
    with Image.open(path('parse_palette.png')) as image:
        assert image.mode == 'P'
        palette = np.asarray(image.getpalette()[:3 * 21]).reshape(-1, 3)
    np.testing.assert_array_equal(palette[:20], lip.PALETTE)
    with Image.open(path('parse_grey.png')) as image:
        assert image.mode == 'L'
    with Image.open(path('parse_lip_colours.png')) as image:
        assert image.mode == 'RGB'
        np.testing.assert_array_equal(np.asarray(image), np.asarray(lip.PALETTE)[EXPECTED])


def test_viton_segment_mat_follows_process_segment_map():
    segment = scipy.io.loadmat(path('viton_segment.mat'))['segment']
    assert segment.shape == (641, 641)
    labels = parsing.read_parse(path('viton_segment.mat'), image_size=spec.FRAME_SHAPE)
    np.testing.assert_array_equal(labels, _viton_reference(segment, 256, 192))
    np.testing.assert_array_equal(parsing.read_parse(path('viton_segment.mat')), labels)
    # 256 → 641 → 256 nearest is not the identity everywhere, but nearly.
    assert (labels == EXPECTED).mean() > 0.99
    # Another photo size: VITON's rule at that size, not a resize of the 256×192 result.
    for h, w in ((512, 384), (100, 100), (150, 200)):
        labels = parsing.read_parse(path('viton_segment.mat'), image_size=(h, w))
        np.testing.assert_array_equal(labels, _viton_reference(segment, h, w))


def test_viton_segment_transpose_is_not_a_no_op(tmp_path):
    segment = np.zeros((641, 641), np.uint8)
    segment[:50, :10] = 5  # stored transposed: rows of the file are columns of the photo
    target = tmp_path / 's.mat'
    scipy.io.savemat(target, {'segment': segment})
    labels = parsing.read_parse(target, image_size=(641, 641))
    assert labels[:10, :50].min() == 5 and labels[10:, :].max() == 0


@pytest.mark.parametrize('arrays,problem', [
        ({'parse': np.zeros((4, 4))}, 'no "segment" array'),
        ({'segment': np.zeros((4, 4, 2))}, 'must be a 2-D map'),
        ({'segment': np.full((4, 4), 1.5)}, 'non-integer labels'),
        ({'segment': np.full((4, 4), 30.0)}, 'labels [30] are outside 0..19'),
])
def test_bad_viton_segments(tmp_path, arrays, problem):
    target = tmp_path / 's.mat'
    scipy.io.savemat(target, arrays)
    with pytest.raises(errors.ParseMapError) as raised:
        parsing.read_parse(target)
    assert str(raised.value).startswith(str(target) + ': ') and problem in str(raised.value)
    (tmp_path / 'junk.mat').write_bytes(b'\x00' * 200)
    with pytest.raises(errors.ParseMapError, match='not a readable .mat'):
        parsing.read_parse(tmp_path / 'junk.mat')


def test_labels_above_the_maximum_are_refused():
    with pytest.raises(errors.ParseMapError) as raised:
        parsing.read_parse(path('parse_label_25.png'))
    assert str(raised.value).startswith(path('parse_label_25.png') + ': labels [25] are outside '
                                                                     '0..19')
    labels = parsing.read_parse(path('parse_label_25.png'), max_label=25)
    assert labels.max() == 25 and (labels[:4, :4] == 25).all()
    np.testing.assert_array_equal(labels[4:], EXPECTED[4:])


def test_cpvton_plus_neck_label(tmp_path):
    labels = EXPECTED.copy()
    labels[100:104, 90:94] = lip.NECK
    colours = np.asarray(parsing.COLOURS, np.uint8)[labels]
    Image.fromarray(colours).save(tmp_path / 'neck.png')
    with pytest.raises(errors.ParseMapError, match=r'labels \[20\]'):
        parsing.read_parse(tmp_path / 'neck.png')
    np.testing.assert_array_equal(
            parsing.read_parse(tmp_path / 'neck.png', max_label=lip.MAX_LABEL_CPVTON_PLUS), labels)
    cv2.imwrite(str(tmp_path / 'neck_grey.png'), labels)  # CP-VTON+'s image-parse-new
    np.testing.assert_array_equal(parsing.read_parse(tmp_path / 'neck_grey.png', max_label=20),
                                  labels)


def test_other_grey_encodings(tmp_path):
    cv2.imwrite(str(tmp_path / 'deep.png'), EXPECTED.astype(np.uint16))  # 16-bit values
    np.testing.assert_array_equal(parsing.read_parse(tmp_path / 'deep.png'), EXPECTED)
    Image.fromarray(np.dstack([EXPECTED, np.full_like(EXPECTED, 255)]), 'LA').save(
            tmp_path / 'la.png')
    np.testing.assert_array_equal(parsing.read_parse(tmp_path / 'la.png'), EXPECTED)
    grey_rgb = np.repeat(EXPECTED[..., None], 3, -1)  # grey stored as RGB
    Image.fromarray(grey_rgb).save(tmp_path / 'grey_rgb.png')
    np.testing.assert_array_equal(parsing.read_parse(tmp_path / 'grey_rgb.png'), EXPECTED)


def test_size_rules(tmp_path):
    half = tmp_path / 'half.png'
    parsing.write_parse_png(half, EXPECTED[::2, ::2].copy())
    resized = parsing.read_parse(half, image_size=spec.FRAME_SHAPE)
    pillow = np.asarray(Image.fromarray(EXPECTED[::2, ::2].copy()).resize((192, 256),
                                                                           Image.NEAREST))
    np.testing.assert_array_equal(resized, pillow)
    np.testing.assert_array_equal(parsing.read_parse(half), EXPECTED[::2, ::2])
    square = tmp_path / 'square.png'
    parsing.write_parse_png(square, np.zeros((100, 100), np.uint8))
    with pytest.raises(errors.ParseMapError) as raised:
        parsing.read_parse(square, image_size=spec.FRAME_SHAPE)
    assert str(raised.value) == (f'{square}: is 100x100 (HxW) but the photo is 256x192: a '
                                 'different aspect ratio (another photo\'s parse?)')
    with pytest.raises(errors.ParseMapError, match='image_size must be'):
        parsing.read_parse(square, image_size=(100,))


def test_unknown_colour_missing_corrupt_and_odd_modes(tmp_path):
    rgb = np.zeros((8, 8, 3), np.uint8)
    rgb[2, 5] = (1, 2, 3)
    Image.fromarray(rgb).save(tmp_path / 'odd.png')
    with pytest.raises(errors.ParseMapError) as raised:
        parsing.read_parse(tmp_path / 'odd.png')
    assert str(raised.value) == (f'{tmp_path / "odd.png"}: colour (1, 2, 3) (at row 2, column '
                                 '5, 1 pixels) is not in the LIP palette')
    with pytest.raises(errors.InputNotFoundError, match='none.png: no such file'):
        parsing.read_parse(tmp_path / 'none.png')
    (tmp_path / 'bad.png').write_bytes(b'\x89PNG\r\n\x1a\nbroken')
    with pytest.raises(errors.ParseMapError, match='not a readable image') as raised:
        parsing.read_parse(tmp_path / 'bad.png')
    assert raised.value.path == str(tmp_path / 'bad.png')
    (tmp_path / 'empty.png').write_bytes(b'')
    with pytest.raises(errors.ParseMapError, match='empty.png: not a readable image'):
        parsing.read_parse(tmp_path / 'empty.png')
    Image.new('F', (4, 4)).save(tmp_path / 'float.tiff')
    with pytest.raises(errors.ParseMapError, match="unsupported image mode 'F'"):
        parsing.read_parse(tmp_path / 'float.tiff')


def test_nearest_resize_equals_pillow_including_ties():
    rng = np.random.default_rng(0)
    # 64 → 96 and 8 → 12 are sizes where int((i + 0.5)·in/out) differs from Pillow.
    for shape, size in (((641, 641), (256, 256)), ((192, 192), (641, 641)),
                        ((256, 192), (641, 641)), ((13, 97), (300, 1000)), ((64, 8), (96, 12)),
                        ((512, 568), (192, 12))):
        labels = rng.integers(0, 20, shape).astype(np.uint8)
        pillow = np.asarray(Image.fromarray(labels).resize(size[::-1], Image.NEAREST))
        np.testing.assert_array_equal(parsing.nearest_resize(labels, size), pillow)


def test_write_round_trip_is_a_palette_png(tmp_path):
    target = tmp_path / 'sub' / 'p.png'
    parsing.write_parse_png(target, EXPECTED)
    with Image.open(target) as image:
        assert image.mode == 'P'
        np.testing.assert_array_equal(np.asarray(image), EXPECTED)
        assert image.getpalette()[3 * 5:3 * 6] == list(lip.PALETTE[5])
    np.testing.assert_array_equal(parsing.read_parse(target), EXPECTED)
    assert os.listdir(target.parent) == ['p.png']


def test_failed_writes_leave_the_old_file(tmp_path, monkeypatch):
    target = tmp_path / 'p.png'
    parsing.write_parse_png(target, EXPECTED)
    before = target.read_bytes()
    for bad in (EXPECTED.astype(np.int32), EXPECTED[..., None], np.zeros((0, 4), np.uint8)):
        with pytest.raises(errors.ParseMapError) as raised:
            parsing.write_parse_png(target, bad)
        assert str(target) in str(raised.value)
    monkeypatch.setattr(fileio.os, 'fsync', lambda fd: (_ for _ in ()).throw(OSError('EIO')))
    with pytest.raises(OSError, match='EIO'):
        parsing.write_parse_png(target, np.zeros((4, 4), np.uint8))
    monkeypatch.undo()
    assert target.read_bytes() == before
    assert os.listdir(tmp_path) == ['p.png']


def test_reading_changes_nothing():
    names = ['parse_palette.png', 'parse_grey.png', 'parse_lip_colours.png', 'viton_segment.mat']
    before = [open(path(name), 'rb').read() for name in names]
    for name in names:
        parsing.read_parse(path(name), image_size=spec.FRAME_SHAPE)
    assert [open(path(name), 'rb').read() for name in names] == before
