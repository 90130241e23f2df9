"""LIP human-parsing label maps → uint8 [H,W] label ids at the photo's size.

Accepted: palette PNGs (the index is the label; LIP and CIHP tools write these), grayscale PNGs
(the value is the label; CP-VTON+'s image-parse-new), RGB PNGs coloured with the LIP palette, and
VITON's ``segment`` .mat files: a 641×641 map stored transposed, of the photo padded to a square
at the top-left, which VITON turns into a frame by transposing, nearest-resizing to
max(h, w)² and cropping [:h, :w] (utils.py process_segment_map).
"""

import io
import os

import numpy as np
import scipy.io
from PIL import Image

from everywear_tf import errors
from everywear_tf import fileio
from everywear_tf.data import lip

_PALETTE = np.asarray(lip.PALETTE, np.uint8).reshape(-1, 3)


def _error(path, problem):
    return errors.ParseMapError(path, problem)


def _nearest_indices(size_in, size_out):
    """Pillow's NEAREST source indices: x = in/out · 0.5, then x += in/out per output pixel,
    accumulated in double precision and truncated (the accumulation decides exact ties)."""
    step = size_in / size_out
    positions = np.cumsum(np.concatenate([[step * 0.5], np.full(size_out - 1, step)]))
    return np.minimum(positions.astype(np.int64), size_in - 1)


def nearest_resize(labels, size):
    """Pillow's NEAREST resize of a label map, index for index."""
    height, width = size
    return labels[_nearest_indices(labels.shape[0], height)][:, _nearest_indices(labels.shape[1],
                                                                                 width)]


def _from_colours(path, rgb):
    codes = (rgb[..., 0].astype(np.int64) << 16) | (rgb[..., 1].astype(np.int64) << 8) | rgb[..., 2]
    palette = (_PALETTE[:, 0].astype(np.int64) << 16) | (_PALETTE[:, 1].astype(np.int64) << 8) \
        | _PALETTE[:, 2]
    lookup = {int(code): label for label, code in enumerate(palette)}
    unique, inverse = np.unique(codes, return_inverse=True)
    labels = np.empty(len(unique), np.uint8)
    for i, code in enumerate(unique):
        if int(code) not in lookup:
            colour = (int(code) >> 16, (int(code) >> 8) & 255, int(code) & 255)
            raise _error(path, f'colour {colour} is not in the LIP palette')
        labels[i] = lookup[int(code)]
    return labels[inverse].reshape(codes.shape)


def _read_png(path):
    try:
        with Image.open(path) as image:
            image.load()
            mode = image.mode
            if mode == 'P':
                return np.asarray(image, np.uint8)
            if mode in ('L', 'I', 'I;16'):
                return np.asarray(image).astype(np.int64)
            if mode in ('RGB', 'RGBA'):
                rgb = np.asarray(image.convert('RGB'), np.uint8)
                if np.all(rgb[..., 0] == rgb[..., 1]) and np.all(rgb[..., 1] == rgb[..., 2]):
                    return rgb[..., 0]  # grey stored as RGB
                return _from_colours(path, rgb)
            raise _error(path, f'unsupported image mode {mode!r} for a label map')
    except (OSError, SyntaxError) as e:
        raise _error(path, f'not a readable image ({e})') from None


def read_viton_segment(path, image_size):
    """VITON's transposed ``segment`` .mat → labels at ``image_size`` (h, w), as VITON does it."""
    try:
        mat = scipy.io.loadmat(path)
    except (ValueError, OSError, TypeError, scipy.io.matlab.MatReadError) as e:
        raise _error(path, f'not a readable .mat file ({e})') from None
    if 'segment' not in mat:
        raise _error(path, 'no "segment" array (VITON parse .mat)')
    segment = np.asarray(mat['segment'])
    if segment.ndim != 2:
        raise _error(path, f'"segment" must be 2-D, got shape {segment.shape}')
    if not np.all(np.isfinite(segment)) or np.any(segment != np.round(segment)):
        raise _error(path, '"segment" holds non-integer labels')
    height, width = image_size
    side = max(height, width)
    return nearest_resize(segment.T, (side, side))[:height, :width]


def read_parse(path, image_size=None, max_label=lip.MAX_LABEL):
    """uint8 [H,W] LIP labels; with ``image_size`` the map is brought to that size.

    A map of another size with the same aspect ratio is nearest-resized; any other size is an
    error (the map does not belong to the photo). Labels above ``max_label`` are an error.
    """
    path = errors.require_file(path)
    if path.lower().endswith('.mat'):
        if image_size is None:
            raise _error(path, 'a VITON segment .mat needs the photo size (image_size)')
        labels = read_viton_segment(path, image_size)
    else:
        labels = _read_png(path)
    labels = np.asarray(labels)
    if labels.size == 0:
        raise _error(path, 'empty label map')
    if labels.min() < 0 or labels.max() > max_label:
        bad = sorted(int(v) for v in np.unique(labels) if v < 0 or v > max_label)
        raise _error(path, f'labels {bad[:10]} are outside LIP\'s 0..{max_label}')
    labels = labels.astype(np.uint8)
    if image_size is not None and labels.shape != tuple(image_size):
        h, w = labels.shape
        if h * image_size[1] != w * image_size[0]:
            raise _error(path, f'is {h}x{w} but the photo is {image_size[0]}x{image_size[1]} '
                               '(a different aspect ratio: not this photo\'s parse?)')
        labels = nearest_resize(labels, image_size)
    return np.ascontiguousarray(labels)


def encode_parse_png(labels):
    """Palette PNG bytes of a label map (LIP colours; indices are the labels)."""
    labels = np.asarray(labels)
    if labels.dtype != np.uint8 or labels.ndim != 2:
        raise ValueError(f'a label map must be uint8 [H,W], got {labels.dtype} {labels.shape}')
    image = Image.fromarray(labels, mode='P')
    palette = np.zeros((256, 3), np.uint8)
    palette[:len(_PALETTE)] = _PALETTE
    image.putpalette(palette.reshape(-1).tolist())
    buffer = io.BytesIO()
    image.save(buffer, format='PNG')
    return buffer.getvalue()


def write_parse_png(path, labels):
    """Writes a palette PNG with the LIP colours, atomically."""
    fileio.atomic_write_bytes(os.fspath(path), encode_parse_png(labels))
