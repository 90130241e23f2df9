"""Image and mask files: formats, channel handling, sizes, errors, atomic writes."""

import os

import cv2
import numpy as np
import pytest
from PIL import Image

from everywear_tf import errors
from everywear_tf import fileio
from everywear_tf.data import images
from everywear_tf.data import synthetic

from tests.data.fixtures import path
from tests.testdata import make_fixtures


def _rgb(shape=(6, 5), seed=0):
    return np.random.default_rng(seed).integers(0, 256, shape + (3,), dtype=np.uint8)


def test_the_person_fixture_is_the_drawn_person():
    person = synthetic.render_person(np.random.default_rng(make_fixtures.SEED), sleeve=0.45,
                                     pattern='stripes')
    image = images.read_image(path('person.png'), expected_size=(256, 192))
    assert image.dtype == np.uint8 and image.shape == (256, 192, 3)
    np.testing.assert_array_equal(image, person.image)


def test_rgb_png_and_jpeg_come_back_in_rgb_order(tmp_path):
    rgb = _rgb()
    images.write_png(tmp_path / 'rgb.png', rgb)
    np.testing.assert_array_equal(images.read_image(tmp_path / 'rgb.png'), rgb)
    red = np.zeros((16, 16, 3), np.uint8)
    red[..., 0] = 250
    ok, jpeg = cv2.imencode('.jpg', cv2.cvtColor(red, cv2.COLOR_RGB2BGR))
    (tmp_path / 'red.jpg').write_bytes(jpeg.tobytes())
    out = images.read_image(tmp_path / 'red.jpg')
    assert out[..., 0].min() > 240 and out[..., 2].max() < 10


def test_grey_is_replicated_and_16_bit_is_rounded(tmp_path):
    grey = _rgb()[..., 0]
    cv2.imwrite(str(tmp_path / 'grey.png'), grey)
    np.testing.assert_array_equal(images.read_image(tmp_path / 'grey.png'),
                                  np.repeat(grey[..., None], 3, -1))
    deep = np.array([[0, 65535, 257 * 7, 128], [32767, 32768, 32896, 65278]], np.uint16)
    cv2.imwrite(str(tmp_path / 'deep.png'), deep)
    expected = np.array([[0, 255, 7, 0], [127, 128, 128, 254]], np.uint8)
    np.testing.assert_array_equal(images.read_image(tmp_path / 'deep.png')[..., 0], expected)
    np.testing.assert_array_equal(images.read_mask(tmp_path / 'deep.png'), expected)
    deep_rgb = np.stack([deep, deep // 2, np.full_like(deep, 65535)], -1)  # as RGB
    cv2.imwrite(str(tmp_path / 'deep_rgb.png'), deep_rgb[..., ::-1])
    out = images.read_image(tmp_path / 'deep_rgb.png')
    np.testing.assert_array_equal(out[..., 0], expected)
    assert out[..., 2].tolist() == [[255] * 4] * 2


def test_transparency_is_composited_onto_white(tmp_path):
    bgra = np.zeros((2, 3, 4), np.uint8)
    bgra[0, 0] = (0, 0, 255, 255)  # opaque red
    bgra[0, 1] = (0, 0, 0, 0)  # transparent black → white
    bgra[0, 2] = (0, 0, 0, 128)  # half-transparent black → 255·(1 − 128/255) = 127
    bgra[1] = (255, 0, 0, 255)  # opaque blue
    cv2.imwrite(str(tmp_path / 'alpha.png'), bgra)
    out = images.read_image(tmp_path / 'alpha.png')
    assert out[0].tolist() == [[255, 0, 0], [255, 255, 255], [127, 127, 127]]
    assert out[1].tolist() == [[0, 0, 255]] * 3
    la = np.zeros((1, 2, 2), np.uint8)
    la[0, 1] = (0, 255)
    Image.fromarray(la, 'LA').save(tmp_path / 'la.png')
    assert images.read_image(tmp_path / 'la.png').tolist() == [[[255] * 3, [0] * 3]]


def test_masks_grey_colour_and_alpha(tmp_path):
    grey = np.array([[0, 255, 17]], np.uint8)
    cv2.imwrite(str(tmp_path / 'grey.png'), grey)
    np.testing.assert_array_equal(images.read_mask(tmp_path / 'grey.png'), grey)
    rgb = np.array([[[255, 0, 0], [0, 255, 0], [255, 255, 255]]], np.uint8)
    images.write_png(tmp_path / 'colour.png', rgb)
    assert images.read_mask(tmp_path / 'colour.png').tolist() == [[76, 150, 255]]  # BT.601
    # Alpha-only: the same colour everywhere, the shape in the alpha channel.
    shape = np.zeros((3, 4, 4), np.uint8)
    shape[..., :3] = 255
    shape[1, 1:3, 3] = 255
    shape[2, 0, 3] = 90
    cv2.imwrite(str(tmp_path / 'alpha_only.png'), shape)
    np.testing.assert_array_equal(images.read_mask(tmp_path / 'alpha_only.png'), shape[..., 3])
    # Varying colour and alpha: grey composited onto black.
    mixed = np.zeros((1, 2, 4), np.uint8)
    mixed[0, 0] = (200, 200, 200, 255)
    mixed[0, 1] = (100, 100, 100, 51)  # 100 · 51/255 = 20
    cv2.imwrite(str(tmp_path / 'mixed.png'), mixed)
    assert images.read_mask(tmp_path / 'mixed.png').tolist() == [[200, 20]]
    # Opaque RGBA: its grey.
    opaque = np.dstack([np.full((1, 2, 3), 50, np.uint8), np.full((1, 2), 255, np.uint8)])
    cv2.imwrite(str(tmp_path / 'opaque.png'), opaque)
    assert images.read_mask(tmp_path / 'opaque.png').tolist() == [[50, 50]]
    assert images.read_mask(path('person.png')).shape == (256, 192)


def test_size_mismatch_names_the_file_and_both_sizes():
    with pytest.raises(errors.ImageError) as raised:
        images.read_image(path('person.png'), expected_size=(100, 90))
    assert str(raised.value) == f'{path("person.png")}: is 256x192 (HxW), expected 100x90'
    with pytest.raises(errors.ImageError, match='expected 256x191'):
        images.read_mask(path('person.png'), expected_size=(256, 191))


def test_missing_empty_and_undecodable_files(tmp_path):
    for reader in (images.read_image, images.read_mask):
        with pytest.raises(errors.InputNotFoundError) as raised:
            reader(tmp_path / 'missing.png')
        assert str(raised.value) == f'{tmp_path / "missing.png"}: no such file'
        with pytest.raises(errors.InputNotFoundError, match='not a file'):
            reader(tmp_path)
    (tmp_path / 'empty.jpg').write_bytes(b'')
    ok, jpeg = cv2.imencode('.jpg', _rgb((64, 64)))
    (tmp_path / 'cut.jpg').write_bytes(jpeg.tobytes()[:40])
    (tmp_path / 'text.png').write_text('not an image at all')
    for name, problem in (('empty.jpg', 'empty file'), ('cut.jpg', 'not a decodable image'),
                          ('text.png', 'not a decodable image')):
        for reader in (images.read_image, images.read_mask):
            with pytest.raises(errors.ImageError) as raised:
                reader(tmp_path / name)
            assert str(raised.value).startswith(str(tmp_path / name) + ': ' + problem)


def test_unsupported_sample_type(tmp_path):
    target = tmp_path / 'float.tiff'
    cv2.imwrite(str(target), np.zeros((4, 4), np.float32))
    with pytest.raises(errors.ImageError, match='float32 samples'):
        images.read_image(target)


def test_non_ascii_paths(tmp_path):
    target = tmp_path / 'чёлка ü 画像' / 'p.png'
    rgb = _rgb()
    images.write_png(target, rgb)
    np.testing.assert_array_equal(images.read_image(target), rgb)
    np.testing.assert_array_equal(images.read_mask(target), cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY))


def test_reading_changes_nothing():
    before = (os.stat(path('person.png')).st_mtime_ns, open(path('person.png'), 'rb').read())
    images.read_image(path('person.png'))
    images.read_mask(path('person.png'))
    assert (os.stat(path('person.png')).st_mtime_ns, open(path('person.png'), 'rb').read()) \
        == before


@pytest.mark.parametrize('array', [np.zeros((3, 3), np.float32), np.zeros((3, 3, 4), np.uint8),
                                   np.zeros(5, np.uint8), np.zeros((0, 3), np.uint8),
                                   np.zeros((3, 3), bool)])
def test_bad_arrays_are_refused_before_writing(tmp_path, array):
    target = tmp_path / 'keep.png'
    images.write_png(target, np.full((2, 2), 9, np.uint8))
    before = target.read_bytes()
    with pytest.raises(errors.ImageError) as raised:
        images.write_png(target, array)
    assert str(target) in str(raised.value)
    assert target.read_bytes() == before
    assert os.listdir(tmp_path) == ['keep.png']


def test_writes_are_atomic(tmp_path, monkeypatch):
    target = tmp_path / 'a' / 'b' / 'keep.png'  # parents created
    images.write_png(target, np.full((2, 2, 3), 7, np.uint8))
    before = target.read_bytes()

    def crash(*args):
        raise OSError('disk full')

    monkeypatch.setattr(fileio.os, 'replace', crash)  # the last step of every atomic write
    with pytest.raises(OSError, match='disk full'):
        images.write_png(target, np.zeros((5, 5), np.uint8))
    monkeypatch.undo()
    assert target.read_bytes() == before
    assert os.listdir(target.parent) == ['keep.png']
    with pytest.raises(RuntimeError):
        with fileio.atomic_writer(target) as f:
            f.write(b'partial')
            raise RuntimeError('crash mid-write')
    assert target.read_bytes() == before
    assert os.listdir(target.parent) == ['keep.png']
    np.testing.assert_array_equal(images.read_image(target), np.full((2, 2, 3), 7, np.uint8))


def _oriented_jpeg(target, upright, orientation):
    """A JPEG whose stored pixels are ``upright`` turned the other way, tagged with EXIF
    ``orientation`` (a phone's file: sensor pixels plus how to show them)."""
    stored = Image.fromarray(upright).transpose({
            1: Image.Transpose.ROTATE_90, 2: Image.Transpose.FLIP_LEFT_RIGHT,
            3: Image.Transpose.ROTATE_180, 4: Image.Transpose.FLIP_TOP_BOTTOM,
            5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_90,
            7: Image.Transpose.TRANSVERSE, 8: Image.Transpose.ROTATE_270}[orientation]) \
        if orientation != 1 else Image.fromarray(upright)
    exif = Image.Exif()
    exif[images.EXIF_ORIENTATION] = orientation
    stored.save(target, quality=100, subsampling=0, exif=exif.tobytes())
    return np.asarray(stored)


@pytest.mark.parametrize('orientation', range(1, 9))
def test_exif_orientation_is_applied_on_read(tmp_path, orientation):
    upright = np.full((48, 32, 3), 255, np.uint8)  # a tall photo: a red head, a blue foot
    upright[:12, 8:24] = (255, 0, 0)
    upright[40:, 20:] = (0, 0, 255)
    stored = _oriented_jpeg(tmp_path / 'phone.jpg', upright, orientation)
    out = images.read_image(tmp_path / 'phone.jpg')
    assert out.shape == upright.shape
    assert np.abs(out.astype(int) - upright).max() < 40  # JPEG's error only
    as_stored = images.read_image(tmp_path / 'phone.jpg', orientation=False)
    assert as_stored.shape == stored.shape
    assert np.abs(as_stored.astype(int) - stored).max() < 40
    # A mask file turns the same way as the photo it belongs to.
    assert images.read_mask(tmp_path / 'phone.jpg').shape == upright.shape[:2]


def test_orient_matches_pillows_exif_transpose(tmp_path):
    from PIL import ImageOps
    stored = _rgb((5, 7), seed=3)
    for orientation in range(1, 9):
        exif = Image.Exif()
        exif[images.EXIF_ORIENTATION] = orientation
        Image.fromarray(stored).save(tmp_path / 'o.png', exif=exif.tobytes())
        with Image.open(tmp_path / 'o.png') as image:
            expected = np.asarray(ImageOps.exif_transpose(image))
        np.testing.assert_array_equal(images.read_image(tmp_path / 'o.png'), expected)


def test_garment_mask_errors_name_the_mask_file(tmp_path):
    garment = np.full((40, 30, 3), 255, np.uint8)
    garment[5:35, 5:25] = (30, 60, 200)
    images.write_png(tmp_path / 'shirt.png', garment)
    mask = np.zeros((40, 30), np.uint8)
    mask[5:35, 5:25] = 255
    images.write_png(tmp_path / 'shirt_mask.png', mask)
    image, read = images.read_garment(tmp_path / 'shirt.png', tmp_path / 'shirt_mask.png')
    np.testing.assert_array_equal(image, garment)
    np.testing.assert_array_equal(read, mask)
    images.write_png(tmp_path / 'wrong_mask.png', mask[:20])
    with pytest.raises(errors.ImageError) as raised:
        images.read_garment(tmp_path / 'shirt.png', tmp_path / 'wrong_mask.png')
    assert raised.value.path == str(tmp_path / 'wrong_mask.png')
    assert 'is 20x30 (HxW), expected 40x30' in str(raised.value)
    images.write_png(tmp_path / 'empty_mask.png', np.zeros((40, 30), np.uint8))
    with pytest.raises(errors.ImageError, match='empty garment mask') as raised:
        images.read_garment(tmp_path / 'shirt.png', tmp_path / 'empty_mask.png')
    assert raised.value.path == str(tmp_path / 'empty_mask.png')


def test_an_all_white_garment_is_refused_naming_its_file(tmp_path):
    images.write_png(tmp_path / 'white.png', np.full((40, 30, 3), 255, np.uint8))
    with pytest.raises(errors.ImageError, match='has no garment') as raised:
        images.read_garment(tmp_path / 'white.png')
    assert raised.value.path == str(tmp_path / 'white.png')
    nearly = np.full((400, 300, 3), 255, np.uint8)
    nearly[:5, :5] = 0  # 25 pixels of 120000
    images.write_png(tmp_path / 'nearly.png', nearly)
    with pytest.raises(errors.ImageError, match='has no garment'):
        images.read_garment(tmp_path / 'nearly.png')
