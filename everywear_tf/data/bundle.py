"""Everywear bundles: the ``body_pickle`` / ``upper_pickle`` files of ARCHITECTURE.md §5.

A bundle is a pickled dict recording one preprocessed frame of a photo, so that postprocessing
can map results back onto the photo:

===============  ==================  ========================================================
key              dtype, shape        meaning
===============  ==================  ========================================================
``image``        uint8 [256,192,3]   the frame's RGB pixels
``parse``        uint8 [256,192]     LIP labels of the frame (0..20; 20 = CP-VTON+'s neck)
``keypoints``    float32 [18,3]      COCO-18 (x, y, confidence) in frame pixels, missing = 0
``transform``    float64 [2,3]       affine map from photo pixels to frame pixels
``source_size``  int64 [2]           (height, width) of the photo, both positive
``frame``        str                 ``'body'`` (whole body) or ``'upper'`` (crop)
===============  ==================  ========================================================

Value-preserving dtype differences are accepted and converted (float64 keypoints, float32
transform, int32 sizes, integer images within 0..255); anything else, a wrong shape, a missing
or unknown key, NaN or infinity is a BundleError naming the file and the key. Bundles hold arrays
and a string only, and are read through the restricted unpickler: a pickle from elsewhere cannot
run code here.
"""

import os

import numpy as np

from everywear_tf import errors
from everywear_tf import spec
from everywear_tf.data import lip
from everywear_tf.data import safe_pickle

FIELDS = {
        'image': (np.uint8, spec.FRAME_SHAPE + (3,)),
        'parse': (np.uint8, spec.FRAME_SHAPE),
        'keypoints': (np.float32, (spec.NUM_KEYPOINTS, 3)),
        'transform': (np.float64, (2, 3)),
        'source_size': (np.int64, (2,)),
}
KEYS = tuple(FIELDS) + ('frame',)


def _cast(path, key, value, dtype):
    """``value`` as ``dtype`` when no value changes, else a BundleError."""
    target = np.dtype(dtype)
    kind = value.dtype.kind
    problem = f'{key!r} must be {target.name}, got {value.dtype}'
    if target.kind == 'f':
        if kind not in 'iuf':
            raise errors.BundleError(path, problem)
        if not np.all(np.isfinite(value)):
            raise errors.BundleError(path, f'{key!r} holds NaN or infinity')
        if kind == 'f' and np.any(np.abs(value) > np.finfo(target).max):
            raise errors.BundleError(path, f'{key!r} has values beyond {target.name} range')
        return value.astype(target)
    if kind == 'b' or kind not in 'iu':
        raise errors.BundleError(path, problem)
    info = np.iinfo(target)
    if value.size and (value.min() < info.min or value.max() > info.max):
        raise errors.BundleError(path, f'{problem} with values outside {info.min}..{info.max}')
    return value.astype(target)


def validate(bundle, path='<memory>'):
    """A checked copy of ``bundle`` with the exact dtypes; a BundleError names what is wrong."""
    if not isinstance(bundle, dict):
        raise errors.BundleError(path, f'a bundle is a dict, got {type(bundle).__name__}')
    missing = [key for key in KEYS if key not in bundle]
    if missing:
        raise errors.BundleError(path, f'missing keys {missing}')
    unknown = sorted(repr(key) for key in bundle if key not in KEYS)
    if unknown:
        raise errors.BundleError(path, f'unknown keys [{", ".join(unknown)}]; a bundle has '
                                       f'{list(KEYS)}')
    out = {}
    for key, (dtype, shape) in FIELDS.items():
        value = bundle[key]
        if not isinstance(value, np.ndarray):
            raise errors.BundleError(path, f'{key!r} must be a numpy array, got '
                                           f'{type(value).__name__}')
        if value.shape != shape:
            raise errors.BundleError(path, f'{key!r} must have shape {shape}, got {value.shape}')
        out[key] = np.ascontiguousarray(_cast(path, key, value, dtype))
    if out['parse'].max() > lip.MAX_LABEL_CPVTON_PLUS:
        bad = sorted(int(v) for v in np.unique(out['parse']) if v > lip.MAX_LABEL_CPVTON_PLUS)
        raise errors.BundleError(path, f"'parse' has labels {bad[:10]} above "
                                       f'{lip.MAX_LABEL_CPVTON_PLUS}')
    if np.any(out['source_size'] <= 0):
        raise errors.BundleError(path, f"'source_size' must be positive (height, width), got "
                                       f"{out['source_size'].tolist()}")
    frame = bundle['frame']
    if isinstance(frame, np.str_):
        frame = str(frame)
    if not isinstance(frame, str) or frame not in spec.FRAMES:
        raise errors.BundleError(path, f"'frame' must be one of {spec.FRAMES}, got {frame!r}")
    out['frame'] = frame
    return out


def read_bundle(path):
    """The checked bundle dict of a bundle pickle (restricted unpickler; latin1 for Python 2)."""
    path = os.fspath(path)
    return validate(safe_pickle.load(path, encoding='latin1'), path)


def write_bundle(path, bundle):
    """Checks ``bundle`` (raising before anything is written), then pickles it atomically."""
    path = os.fspath(path)
    safe_pickle.dump(path, validate(bundle, path))
