"""Image and mask files: any format OpenCV decodes → RGB (or grey) uint8; PNG written atomically.

Files are decoded with ``cv2.imdecode(np.fromfile(path))`` rather than ``cv2.imread`` so that
non-ASCII paths work everywhere. EXIF orientation is not applied (the originals read with Pillow,
which does not apply it either).
"""

import os

import cv2
import numpy as np

from everywear_tf import errors
from everywear_tf import fileio


def _decode(path):
    """The file's samples as OpenCV gives them (BGR order), 16-bit brought to 8-bit."""
    path = errors.require_file(path)
    try:
        data = np.fromfile(path, np.uint8)
    except OSError as e:
        raise errors.ImageError(path, f'cannot be read ({e.strerror or e})') from None
    if data.size == 0:
        raise errors.ImageError(path, 'empty file')
    try:
        image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    except cv2.error as e:
        raise errors.ImageError(path, f'not a decodable image ({e.msg.strip()})') from None
    if image is None or image.size == 0:
        raise errors.ImageError(path, 'not a decodable image (corrupt, truncated or unsupported '
                                      'format)')
    if image.dtype == np.uint16:
        # Round to nearest: 65535 → 255, 32896 → 128.
        image = ((image.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)
    elif image.dtype != np.uint8:
        raise errors.ImageError(path, f'has {image.dtype} samples; only 8- and 16-bit images '
                                      'are supported')
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[..., 0]
    if image.ndim == 3 and image.shape[2] not in (2, 3, 4):
        raise errors.ImageError(path, f'has {image.shape[2]} channels; expected 1 to 4')
    return image


def _check_size(path, array, expected_size):
    if expected_size is None:
        return
    expected = tuple(int(v) for v in expected_size)
    if tuple(array.shape[:2]) != expected:
        raise errors.ImageError(path, f'is {array.shape[0]}x{array.shape[1]} (HxW), expected '
                                      f'{expected[0]}x{expected[1]}')


def _over_white(colour, alpha):
    """uint8 colour composited onto white through uint8 alpha, rounded."""
    a = alpha.astype(np.float64)[..., None] / 255.0
    return np.round(colour.astype(np.float64) * a + 255.0 * (1.0 - a)).astype(np.uint8)


def read_image(path, expected_size=None):
    """uint8 [H,W,3] RGB of an image file.

    Grey is replicated to three channels, transparency is composited onto white (garments are
    shot on white), 16-bit samples are scaled to 8-bit. ``expected_size`` (h, w), when given, must
    match; otherwise an ImageError names both sizes.
    """
    image = _decode(path)
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=-1)
    elif image.shape[2] == 2:  # grey + alpha
        image = np.repeat(_over_white(image[..., :1], image[..., 1]), 3, axis=-1)
    elif image.shape[2] == 4:
        image = _over_white(cv2.cvtColor(image[..., :3], cv2.COLOR_BGR2RGB), image[..., 3])
    else:
        image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    _check_size(path, image, expected_size)
    return np.ascontiguousarray(image)


def read_mask(path, expected_size=None):
    """uint8 [H,W] of a mask file.

    Grey is taken as is and colour is converted to grey (ITU-R 601 luma, as OpenCV does). A mask
    with transparency whose colour is the same everywhere (an "alpha-only" PNG, e.g. a white
    shape on a transparent background) is its alpha; any other transparent mask is its grey
    composited onto black, since a mask's background is 0.
    """
    image = _decode(path)
    if image.ndim == 3:
        if image.shape[2] in (2, 4):
            colour, alpha = image[..., :-1], image[..., -1]
            grey = colour[..., 0] if colour.shape[2] == 1 else cv2.cvtColor(colour,
                                                                           cv2.COLOR_BGR2GRAY)
            if np.all(alpha == 255):
                image = grey
            elif np.all(colour == colour.reshape(-1, colour.shape[2])[0]):
                image = alpha
            else:
                image = np.round(grey.astype(np.float64) * alpha / 255.0).astype(np.uint8)
        else:
            image = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    _check_size(path, image, expected_size)
    return np.ascontiguousarray(image)


def encode_png(array, path='<memory>'):
    """PNG bytes of uint8 [H,W] (grey) or [H,W,3] (RGB); ``path`` names the target in errors."""
    array = np.asarray(array)
    if array.dtype != np.uint8 or not (array.ndim == 2 or (array.ndim == 3 and
                                                           array.shape[2] in (1, 3))):
        raise errors.ImageError(path, f'cannot write a PNG of {array.dtype} {array.shape}: '
                                      'expected uint8 [H,W] or [H,W,3]')
    if array.size == 0:
        raise errors.ImageError(path, f'cannot write an empty image of shape {array.shape}')
    if array.ndim == 3 and array.shape[2] == 3:
        array = cv2.cvtColor(array, cv2.COLOR_RGB2BGR)
    ok, encoded = cv2.imencode('.png', np.ascontiguousarray(array))
    if not ok:
        raise errors.ImageError(path, f'PNG encoding failed for shape {array.shape}')
    return encoded.tobytes()


def write_png(path, array):
    """Writes uint8 [H,W] or [H,W,3] RGB as PNG, atomically, creating parent directories.

    The array is checked and encoded before anything touches the disk, so a bad array leaves
    an existing file as it was.
    """
    path = os.fspath(path)
    fileio.atomic_write_bytes(path, encode_png(array, path))
