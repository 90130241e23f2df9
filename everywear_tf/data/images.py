"""Image and mask files: any format OpenCV decodes → RGB (or grey) uint8; PNG written atomically.

Files are decoded with ``cv2.imdecode(np.fromfile(path))`` rather than ``cv2.imread`` so that
non-ASCII paths work everywhere. Before anything is decoded, the file's header is read with
Pillow (which parses it lazily, without the pixels) for two things:

- the size: an image of more than ``max_pixels`` pixels (``MAX_PHOTO_PIXELS`` by default) is an
  ImageError naming the file, its size and the limit, raised before any pixel is allocated (a
  1 MB PNG can declare 20000×20000 pixels). A format Pillow does not know but OpenCV decodes is
  checked after decoding;
- the EXIF orientation (JPEG, and PNG/WebP/TIFF that carry one): phones store the sensor's
  pixels and a tag saying how to turn them upright. The tag is applied on read
  (``orientation=True``), so an image comes back as every viewer shows it, and what is made
  from it (a try-on pasted into it) is written upright; ``orientation=False`` reads the stored
  pixels as they are. (OpenCV's IMREAD_UNCHANGED ignores the tag; the originals read with
  Pillow, which ignores it too.)
"""

import io
import os

import cv2
import numpy as np
from PIL import Image

from everywear_tf import errors
from everywear_tf import fileio
from everywear_tf.data import cloth_mask as cloth_masks

# The largest photo read by default (pixels): 50 MP is a 8660×5773 photo, about 150 MB decoded.
MAX_PHOTO_PIXELS = 50_000_000
EXIF_ORIENTATION = 0x0112
# 16-bit → 8-bit by table, rounding to nearest (65535 → 255, 32896 → 128), so no wide copy of a
# large image is made.
_DEEP_TO_8 = ((np.arange(65536, dtype=np.uint32) * 255 + 32767) // 65535).astype(np.uint8)


def _header(path, data):
    """(height, width, EXIF orientation 1..8) from the file's header, or None if Pillow does
    not know the format. Pillow's own decompression-bomb check (in Image.open) is bypassed: the
    size is checked here, against the caller's limit."""
    Image.init()
    stream = io.BytesIO(data)
    prefix = bytes(data[:16])
    for name in Image.ID:
        factory, accept = Image.OPEN[name]
        if accept is not None and not accept(prefix):
            continue
        stream.seek(0)
        try:
            image = factory(stream, path)
        except (OSError, SyntaxError, ValueError, IndexError, TypeError, EOFError):
            continue  # not this format (or a header Pillow cannot read: OpenCV may)
        try:
            width, height = image.size
            orientation = 1
            try:
                if 'exif' in image.info:  # JPEG, MPO, WebP, PNG with eXIf before the pixels
                    exif = Image.Exif()
                    exif.load(image.info['exif'])
                    orientation = exif.get(EXIF_ORIENTATION, 1)
                elif name == 'TIFF':
                    orientation = image.getexif().get(EXIF_ORIENTATION, 1)
            except (OSError, SyntaxError, ValueError, IndexError, TypeError, KeyError,
                    EOFError):
                orientation = 1  # an unreadable EXIF block says nothing about orientation
            if not isinstance(orientation, int) or not 1 <= orientation <= 8:
                orientation = 1
            return int(height), int(width), orientation
        finally:
            image.close()
    return None


def _check_pixels(path, height, width, max_pixels):
    if max_pixels is not None and height * width > max_pixels:
        raise errors.ImageError(path, f'is {width}x{height} (WxH) = {height * width} pixels, '
                                      f'above the limit of {max_pixels} pixels (raise '
                                      'max_pixels, the commands\' --max_photo_pixels, to read '
                                      'it)')


def orient(image, orientation):
    """``image`` [H,W,...] turned the way EXIF ``orientation`` (1..8) says it is displayed."""
    if orientation == 2:
        image = image[:, ::-1]
    elif orientation == 3:
        image = image[::-1, ::-1]
    elif orientation == 4:
        image = image[::-1]
    elif orientation == 5:
        image = image.swapaxes(0, 1)
    elif orientation == 6:
        image = np.rot90(image, -1)
    elif orientation == 7:
        image = image[::-1, ::-1].swapaxes(0, 1)
    elif orientation == 8:
        image = np.rot90(image, 1)
    return np.ascontiguousarray(image)


def _decode(path, max_pixels=MAX_PHOTO_PIXELS, orientation=True):
    """The file's samples as OpenCV gives them (BGR order), 16-bit brought to 8-bit, turned
    upright by its EXIF orientation unless ``orientation`` is False."""
    path = errors.require_file(path)
    try:
        data = np.fromfile(path, np.uint8)
    except OSError as e:
        raise errors.ImageError(path, f'cannot be read ({e.strerror or e})') from None
    if data.size == 0:
        raise errors.ImageError(path, 'empty file')
    header = _header(path, memoryview(data))
    if header is not None:
        _check_pixels(path, header[0], header[1], max_pixels)
    try:
        image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    except cv2.error as e:
        raise errors.ImageError(path, f'not a decodable image ({e.msg.strip()})') from None
    del data
    if image is None or image.size == 0:
        raise errors.ImageError(path, 'not a decodable image (corrupt, truncated or unsupported '
                                      'format)')
    _check_pixels(path, image.shape[0], image.shape[1], max_pixels)
    if image.dtype == np.uint16:
        image = _DEEP_TO_8[image]
    elif image.dtype != np.uint8:
        raise errors.ImageError(path, f'has {image.dtype} samples; only 8- and 16-bit images '
                                      'are supported')
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[..., 0]
    if image.ndim == 3 and image.shape[2] not in (2, 3, 4):
        raise errors.ImageError(path, f'has {image.shape[2]} channels; expected 1 to 4')
    # (Only when OpenCV decoded the stored pixels Pillow's header describes.)
    if (orientation and header is not None and header[2] != 1
            and (image.shape[0], image.shape[1]) == header[:2]):
        image = orient(image, header[2])
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


def read_image(path, expected_size=None, *, max_pixels=MAX_PHOTO_PIXELS, orientation=True):
    """uint8 [H,W,3] RGB of an image file, upright (see the module docstring).

    Grey is replicated to three channels, transparency is composited onto white (garments are
    shot on white), 16-bit samples are scaled to 8-bit. ``expected_size`` (h, w), when given, must
    match; otherwise an ImageError names both sizes. An image of more than ``max_pixels`` pixels
    (None: no limit) is an ImageError raised before it is decoded; ``orientation=False`` ignores
    the EXIF orientation.
    """
    image = _decode(path, max_pixels, orientation)
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


def read_mask(path, expected_size=None, *, max_pixels=MAX_PHOTO_PIXELS, orientation=True):
    """uint8 [H,W] of a mask file.

    Grey is taken as is and colour is converted to grey (ITU-R 601 luma, as OpenCV does). A mask
    with transparency whose colour is the same everywhere (an "alpha-only" PNG, e.g. a white
    shape on a transparent background) is its alpha; any other transparent mask is its grey
    composited onto black, since a mask's background is 0. ``max_pixels`` and ``orientation`` as
    in ``read_image``.
    """
    image = _decode(path, max_pixels, orientation)
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


def read_garment(path, mask_path=None, *, max_pixels=MAX_PHOTO_PIXELS, orientation=True,
                 min_fraction=cloth_masks.MIN_GARMENT_FRACTION):
    """(uint8 [H,W,3] RGB, uint8 [H,W] mask or None) of a product photo and its optional mask file.

    Refused with an ImageError naming the file at fault: a mask whose size is not the photo's
    (after both are turned upright), a mask that marks (nearly) nothing, and, without a mask, a
    photo with (nearly) no garment on its white (``cloth_mask.check_garment``).
    """
    image = read_image(path, max_pixels=max_pixels, orientation=orientation)
    if mask_path is None:
        cloth_masks.check_garment(image, path, min_fraction)
        return image, None
    mask = read_mask(mask_path, expected_size=image.shape[:2], max_pixels=max_pixels,
                     orientation=orientation)
    cloth_masks.check_mask(mask, mask_path, min_fraction)
    return image, mask


# zlib level 1 with run-length matching, still lossless: the four image inputs of a demo try-on
# (256x192) encode in 9.7 ms against 12.0 ms filtered at level 1 and 13.6 ms with Pillow at
# level 1, and come out 15% smaller (2-core AMD EPYC, median of 15, under load).
_FAST_PNG = [cv2.IMWRITE_PNG_COMPRESSION, 1, cv2.IMWRITE_PNG_STRATEGY, cv2.IMWRITE_PNG_STRATEGY_RLE]


def encode_png(array, path='<memory>', fast=False):
    """PNG bytes of uint8 [H,W] (grey) or [H,W,3] (RGB); ``path`` names the target in errors.
    ``fast``: the quickest lossless setting (for files on the wire rather than on disk)."""
    array = np.asarray(array)
    if array.dtype != np.uint8 or not (array.ndim == 2 or (array.ndim == 3 and
                                                           array.shape[2] in (1, 3))):
        raise errors.ImageError(path, f'cannot write a PNG of {array.dtype} {array.shape}: '
                                      'expected uint8 [H,W] or [H,W,3]')
    if array.size == 0:
        raise errors.ImageError(path, f'cannot write an empty image of shape {array.shape}')
    if array.ndim == 3 and array.shape[2] == 3:
        array = cv2.cvtColor(array, cv2.COLOR_RGB2BGR)
    ok, encoded = cv2.imencode('.png', np.ascontiguousarray(array), _FAST_PNG if fast else [])
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
