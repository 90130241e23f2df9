"""LIP human-parsing label maps → uint8 [H,W] label ids.

Accepted encodings:
- palette ('P') PNGs: the index is the label (LIP/CIHP tools and CP-VTON's image-parse/, written
  by MATLAB's ``imwrite(seg, cmap)``, convert_data.m:103);
- grey PNGs: the value is the label (CP-VTON+'s image-parse-new/);
- RGB PNGs coloured with the LIP palette (lip.PALETTE, plus CP-VTON+'s neck colour for 20);
- VITON's ``segment`` .mat files: a 641×641 map of the photo padded to a square at the top-left,
  stored transposed. VITON turns it into the photo's frame in ``process_segment_map``
  (utils.py:83-92, the same as prepare_data/build_viton.py:144-153): ``segment.T`` as uint8,
  ``scipy.misc.imresize(..., (s, s), interp='nearest')`` with s = max(h, w), i.e. Pillow's
  NEAREST resize (imresize leaves uint8 data unscaled), then the crop ``[:, :w]`` when h ≥ w,
  else ``[:h, :]`` — in both cases ``[:h, :w]``.

Sizes are checked before decoding: an image map above ``max_pixels`` pixels (the photos' limit,
``images.MAX_PHOTO_PIXELS``) from its header, a ``.mat``'s declared shape through
``mat_files.load``.
"""

import io
import os

import numpy as np
from PIL import Image

from everywear_tf import errors
from everywear_tf import fileio
from everywear_tf import spec
from everywear_tf.data import images
from everywear_tf.data import lip
from everywear_tf.data import mat_files

# CP-VTON+'s colour for label 20, neck/skin (cp_dataset.py:92 of minar09/cp-vton-plus).
NECK_COLOUR = (170, 170, 50)
COLOURS = tuple(lip.PALETTE) + (NECK_COLOUR,)  # index = label
_COLOURS = np.asarray(COLOURS, np.uint8)


def _error(path, problem):
    return errors.ParseMapError(path, problem)


def _nearest_indices(size_in, size_out):
    """Pillow's NEAREST source indices along one axis.

    Pillow (ImagingScaleAffine) starts at x = in/out · 0.5 and adds in/out per output pixel in
    double precision, truncating each x. Accumulating decides exact ties differently from the
    closed form int((i + 0.5) · in/out) (e.g. 64 → 96), so the accumulation is reproduced.
    """
    step = size_in / size_out
    positions = np.cumsum(np.concatenate([[step * 0.5], np.full(size_out - 1, step)]))
    return np.minimum(positions.astype(np.int64), size_in - 1)


def nearest_resize(labels, size):
    """Pillow's NEAREST resize of a 2-D label map to ``size`` (h, w), index for index."""
    height, width = size
    rows = _nearest_indices(labels.shape[0], height)
    cols = _nearest_indices(labels.shape[1], width)
    return labels[rows][:, cols]


def _from_colours(path, rgb):
    """LIP-coloured RGB → labels; a colour outside the palette is an error naming a pixel."""
    codes = (rgb[..., 0].astype(np.int64) << 16) | (rgb[..., 1].astype(np.int64) << 8) | rgb[..., 2]
    palette = ((_COLOURS[:, 0].astype(np.int64) << 16) | (_COLOURS[:, 1].astype(np.int64) << 8)
               | _COLOURS[:, 2])
    lookup = {int(code): label for label, code in enumerate(palette)}
    unique, inverse = np.unique(codes, return_inverse=True)
    labels = np.empty(len(unique), np.uint8)
    for i, code in enumerate(unique):
        code = int(code)
        if code not in lookup:
            colour = (code >> 16, (code >> 8) & 255, code & 255)
            row, col = np.argwhere(codes == code)[0]
            count = int(np.count_nonzero(codes == code))
            raise _error(path, f'colour {colour} (at row {row}, column {col}, {count} pixels) '
                               'is not in the LIP palette')
        labels[i] = lookup[code]
    return labels[inverse.reshape(-1)].reshape(codes.shape)


def _read_image(path, max_pixels=images.MAX_PHOTO_PIXELS):
    """Labels (any integer dtype, possibly out of range) of a PNG or other Pillow image."""
    try:
        with Image.open(path) as image:
            if max_pixels is not None and image.size[0] * image.size[1] > max_pixels:
                raise _error(path, f'is {image.size[0]}x{image.size[1]} (WxH) = '
                                   f'{image.size[0] * image.size[1]} pixels, above the limit of '
                                   f'{max_pixels} pixels: refused before decoding')
            image.load()
            mode = image.mode
            if mode in ('PA', 'LA'):
                array = np.asarray(image.getchannel(0))
            elif mode in ('RGB', 'RGBA'):
                array = np.asarray(image.convert('RGB'), np.uint8)
            else:
                array = np.asarray(image)
    except errors.ParseMapError:
        raise
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        raise _error(path, f'not a readable image ({e})') from None
    if mode in ('P', 'PA', 'L', 'LA'):
        return array  # uint8 palette indices or grey values are the labels
    if mode in ('1', 'I', 'I;16', 'I;16B', 'I;16L'):
        return array.astype(np.int64)  # palette indices or grey values are the labels
    if mode in ('RGB', 'RGBA'):
        if np.array_equal(array[..., 0], array[..., 1]) and np.array_equal(array[..., 1],
                                                                           array[..., 2]):
            return array[..., 0]  # grey stored as RGB: values are labels
        return _from_colours(path, array)
    raise _error(path, f'unsupported image mode {mode!r} for a label map (expected a palette, '
                       'grey or LIP-coloured RGB image)')


def read_viton_segment(path, image_size=spec.FRAME_SHAPE):
    """VITON's transposed ``segment`` .mat → labels [h, w] for a photo of ``image_size`` (h, w),
    exactly as VITON's process_segment_map computes them (see the module docstring)."""
    path = errors.require_file(path)
    segment = mat_files.load(path, ('segment',), errors.ParseMapError)['segment']
    if segment.ndim != 2 or segment.size == 0:
        raise _error(path, f'"segment" must be a 2-D map, got shape {segment.shape}')
    if segment.dtype.kind not in 'iuf':
        raise _error(path, f'"segment" must hold numbers, got {segment.dtype}')
    if segment.dtype.kind == 'f' and (not np.all(np.isfinite(segment)) or
                                      np.any(segment != np.round(segment))):
        raise _error(path, '"segment" holds non-integer labels')
    height, width = image_size
    side = max(height, width)
    labels = segment.T.astype(np.int64)
    if labels.min() >= np.iinfo(np.int16).min and labels.max() <= np.iinfo(np.int16).max:
        labels = labels.astype(np.int16)  # the photo-sized map: 2 bytes a pixel, not 8
    # nearest_resize to (side, side), then [:height, :width], without the square.
    rows = _nearest_indices(labels.shape[0], side)[:height]
    cols = _nearest_indices(labels.shape[1], side)[:width]
    return labels[rows][:, cols]


def read_parse(path, image_size=None, max_label=lip.MAX_LABEL, *,
               max_pixels=images.MAX_PHOTO_PIXELS):
    """uint8 [H,W] LIP labels of a label-map file.

    ``image_size`` (h, w) is the photo's size: a map of that size is returned as is, a map of
    another size with the same aspect ratio is nearest-resized (Pillow's rule), any other size
    is a ParseMapError (the map belongs to another photo). A VITON .mat is always brought to
    ``image_size`` by VITON's own rule; without one, the 256×192 frame. Labels above
    ``max_label`` (19 for LIP, 20 with CP-VTON+'s neck) are a ParseMapError naming them.
    """
    path = errors.require_file(path)
    if image_size is not None:
        image_size = errors.checked_size(path, image_size, errors.ParseMapError)
    if path.lower().endswith('.mat'):
        labels = read_viton_segment(path, image_size or spec.FRAME_SHAPE)
    else:
        labels = _read_image(path, max_pixels)
    if labels.size == 0:
        raise _error(path, 'empty label map')
    if labels.min() < 0 or labels.max() > max_label:
        values = np.unique(labels)
        bad = [int(v) for v in values if v < 0 or v > max_label]
        shown = ', '.join(str(v) for v in bad[:10]) + (', ...' if len(bad) > 10 else '')
        raise _error(path, f'labels [{shown}] are outside 0..{max_label} (LIP has 20 labels, '
                           'CP-VTON+ adds 20 for the neck)')
    labels = labels.astype(np.uint8)
    if image_size is not None and labels.shape != image_size:
        h, w = labels.shape
        if h * image_size[1] != w * image_size[0]:
            raise _error(path, f'is {h}x{w} (HxW) but the photo is {image_size[0]}x'
                               f'{image_size[1]}: a different aspect ratio (another photo\'s '
                               'parse?)')
        labels = nearest_resize(labels, image_size)
    return np.ascontiguousarray(labels)


def encode_parse_png(labels, path='<memory>'):
    """Palette PNG bytes of a uint8 [H,W] label map (the indices are the labels, LIP colours)."""
    labels = np.asarray(labels)
    if labels.dtype != np.uint8 or labels.ndim != 2 or labels.size == 0:
        raise _error(path, f'cannot write a label map of {labels.dtype} {labels.shape}: '
                           'expected uint8 [H,W]')
    image = Image.frombytes('P', (labels.shape[1], labels.shape[0]), labels.tobytes())
    palette = np.zeros((256, 3), np.uint8)
    palette[:len(_COLOURS)] = _COLOURS
    image.putpalette(palette.reshape(-1).tolist())
    buffer = io.BytesIO()
    image.save(buffer, format='PNG')
    return buffer.getvalue()


def write_parse_png(path, parse):
    """Writes a label map as a palette PNG with the LIP colours, atomically (checked first)."""
    path = os.fspath(path)
    fileio.atomic_write_bytes(path, encode_parse_png(parse, path))
