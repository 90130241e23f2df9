"""Image and mask files: read any common format into RGB uint8, write PNG atomically."""

import os

import cv2
import numpy as np

from everywear_tf import errors
from everywear_tf import fileio


def _decode(path):
    path = errors.require_file(path)
    data = np.fromfile(path, np.uint8)  # np.fromfile + imdecode: non-ASCII paths work
    if data.size == 0:
        raise errors.ImageError(path, 'empty file')
    image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    if image is None:
        raise errors.ImageError(path, 'not a decodable image (corrupt, truncated or unsupported '
                                      'format)')
    if image.dtype == np.uint16:
        image = (image.astype(np.uint32) * 255 + 32767) // 65535
    elif image.dtype != np.uint8:
        raise errors.ImageError(path, f'unsupported sample type {image.dtype}')
    return image.astype(np.uint8)


def _check_size(path, array, expected_size):
    if expected_size is not None and tuple(array.shape[:2]) != tuple(expected_size):
        raise errors.ImageError(path, f'is {array.shape[0]}x{array.shape[1]} (HxW), expected '
                                      f'{expected_size[0]}x{expected_size[1]}')


def read_image(path, expected_size=None):
    """uint8 [H,W,3] RGB. Grey is replicated, alpha composited onto white, 16-bit scaled to 8."""
    image = _decode(path)
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=-1)
    elif image.shape[2] == 4:
        alpha = image[..., 3:].astype(np.float64) / 255.0
        rgb = cv2.cvtColor(image[..., :3], cv2.COLOR_BGR2RGB).astype(np.float64)
        image = np.round(rgb * alpha + 255.0 * (1.0 - alpha)).astype(np.uint8)
    elif image.shape[2] == 3:
        image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    elif image.shape[2] == 1:
        image = np.repeat(image, 3, axis=-1)
    else:
        raise errors.ImageError(path, f'has {image.shape[2]} channels')
    _check_size(path, image, expected_size)
    return np.ascontiguousarray(image)


def read_mask(path, expected_size=None):
    """uint8 [H,W]: a grey mask; colour is converted to grey; an RGBA mask uses its alpha."""
    image = _decode(path)
    if image.ndim == 3:
        if image.shape[2] == 4 and np.any(image[..., 3] < 255):
            image = image[..., 3]
        elif image.shape[2] == 1:
            image = image[..., 0]
        else:
            image = cv2.cvtColor(image[..., :3], cv2.COLOR_BGR2GRAY)
    _check_size(path, image, expected_size)
    return np.ascontiguousarray(image)


def encode_png(array):
    """PNG bytes of uint8 [H,W] (grey) or [H,W,3] (RGB)."""
    array = np.asarray(array)
    if array.dtype != np.uint8 or not (array.ndim == 2 or (array.ndim == 3 and
                                                           array.shape[2] in (1, 3))):
        raise ValueError(f'a PNG needs uint8 [H,W] or [H,W,3], got {array.dtype} {array.shape}')
    if array.ndim == 3 and array.shape[2] == 3:
        array = cv2.cvtColor(array, cv2.COLOR_RGB2BGR)
    ok, encoded = cv2.imencode('.png', array)
    if not ok:
        raise ValueError(f'PNG encoding failed for an array of shape {array.shape}')
    return encoded.tobytes()


def write_png(path, array):
    """Writes uint8 [H,W] or [H,W,3] RGB as PNG, atomically, creating parent directories."""
    fileio.atomic_write_bytes(os.fspath(path), encode_png(array))
