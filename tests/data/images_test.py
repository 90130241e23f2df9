"""Image and mask files: formats, sizes, errors, atomic writes."""

import cv2
import numpy as np
import pytest

from everywear_tf import errors
from everywear_tf import fileio
from everywear_tf.data import images
from tests.data.fixtures import path


def test_rgb_grey_alpha_and_16_bit(tmp_path):
    rgb = np.random.default_rng(0).integers(0, 256, (6, 5, 3), dtype=np.uint8)
    images.write_png(str(tmp_path / 'rgb.png'), rgb)
    np.testing.assert_array_equal(images.read_image(str(tmp_path / 'rgb.png')), rgb)
    cv2.imwrite(str(tmp_path / 'grey.png'), rgb[..., 0])
    np.testing.assert_array_equal(images.read_image(str(tmp_path / 'grey.png')),
                                  np.repeat(rgb[..., :1], 3, -1))
    rgba = np.zeros((6, 5, 4), np.uint8)
    rgba[..., 3] = 0  # fully transparent → white
    rgba[0, 0] = (0, 0, 255, 255)  # opaque red (BGRA)
    cv2.imwrite(str(tmp_path / 'alpha.png'), rgba)
    out = images.read_image(str(tmp_path / 'alpha.png'))
    assert out[0, 0].tolist() == [255, 0, 0] and out[1, 1].tolist() == [255, 255, 255]
    cv2.imwrite(str(tmp_path / 'deep.png'), np.full((4, 4), 65535, np.uint16))
    assert images.read_image(str(tmp_path / 'deep.png')).max() == 255
    np.testing.assert_array_equal(images.read_mask(str(tmp_path / 'alpha.png'))[1, 1], 0)


def test_size_check_and_errors(tmp_path):
    with pytest.raises(errors.ImageError, match=r'is 256x192 \(HxW\), expected 100x100'):
        images.read_image(path('person.png'), expected_size=(100, 100))
    with pytest.raises(errors.InputNotFoundError):
        images.read_image(str(tmp_path / 'missing.png'))
    (tmp_path / 'empty.jpg').write_bytes(b'')
    with pytest.raises(errors.ImageError, match='empty file'):
        images.read_image(str(tmp_path / 'empty.jpg'))
    data = (tmp_path / 'x.jpg')
    ok, jpeg = cv2.imencode('.jpg', np.zeros((64, 64, 3), np.uint8))
    data.write_bytes(jpeg.tobytes()[:40])
    with pytest.raises(errors.ImageError, match='not a decodable image'):
        images.read_image(str(data))


def test_non_ascii_path(tmp_path):
    target = tmp_path / 'чёлка ü.png'
    images.write_png(str(target), np.zeros((3, 3, 3), np.uint8))
    assert images.read_image(str(target)).shape == (3, 3, 3)


def test_failed_write_leaves_the_old_file(tmp_path):
    target = tmp_path / 'keep.png'
    images.write_png(str(target), np.zeros((3, 3), np.uint8))
    before = target.read_bytes()
    with pytest.raises(ValueError):
        images.write_png(str(target), np.zeros((3, 3), np.float32))
    with pytest.raises(RuntimeError):
        with fileio.atomic_writer(str(target)) as f:
            f.write(b'partial')
            raise RuntimeError('crash mid-write')
    assert target.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ['keep.png']
