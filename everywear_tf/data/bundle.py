"""Everywear bundles: the ``body_pickle`` / ``upper_pickle`` files of DESIGN.md §7.

A bundle records one preprocessed frame of a photo, so postprocessing can map results back:

===============  ==================  ========================================================
key              dtype, shape        meaning
===============  ==================  ========================================================
``image``        uint8 [256,192,3]   the frame's RGB pixels
``parse``        uint8 [256,192]     LIP labels of the frame
``keypoints``    float32 [18,3]      COCO-18 (x, y, confidence) in frame pixels, missing = 0
``transform``    float64 [2,3]       affine map from photo pixels to frame pixels
``source_size``  int64 [2]           (height, width) of the photo
``frame``        str                 ``'body'`` (letterboxed photo) or ``'upper'`` (crop)
===============  ==================  ========================================================

Bundles hold arrays and strings only, and are read through the restricted unpickler: a pickle
from elsewhere cannot run code here.
"""

import numpy as np

from everywear_tf import errors
from everywear_tf import spec
from everywear_tf.data import safe_pickle

BODY = 'body'
UPPER = 'upper'
FRAMES = (BODY, UPPER)
FIELDS = {
        'image': (np.uint8, spec.FRAME_SHAPE + (3,)),
        'parse': (np.uint8, spec.FRAME_SHAPE),
        'keypoints': (np.float32, (spec.NUM_KEYPOINTS, 3)),
        'transform': (np.float64, (2, 3)),
        'source_size': (np.int64, (2,)),
}


def validate(bundle, path='<memory>'):
    """A checked copy of ``bundle`` with exact dtypes; a BundleError names what is wrong."""
    if not isinstance(bundle, dict):
        raise errors.BundleError(path, f'a bundle is a dict, got {type(bundle).__name__}')
    missing = sorted((set(FIELDS) | {'frame'}) - set(bundle))
    if missing:
        raise errors.BundleError(path, f'missing keys {missing}')
    out = {}
    for key, (dtype, shape) in FIELDS.items():
        value = bundle[key]
        if not isinstance(value, np.ndarray):
            raise errors.BundleError(path, f'{key!r} must be a numpy array, got '
                                           f'{type(value).__name__}')
        if value.shape != shape:
            raise errors.BundleError(path, f'{key!r} must have shape {shape}, got {value.shape}')
        if not np.can_cast(value.dtype, dtype, casting='same_kind'):
            raise errors.BundleError(path, f'{key!r} must be {np.dtype(dtype).name}, got '
                                           f'{value.dtype}')
        if value.dtype.kind == 'f' and not np.all(np.isfinite(value)):
            raise errors.BundleError(path, f'{key!r} holds NaN or infinity')
        out[key] = value.astype(dtype)
    if bundle['frame'] not in FRAMES:
        raise errors.BundleError(path, f"'frame' must be one of {FRAMES}, got "
                                       f"{bundle['frame']!r}")
    out['frame'] = str(bundle['frame'])
    return out


def read_bundle(path):
    return validate(safe_pickle.load(path, encoding='latin1'), path)


def write_bundle(path, bundle):
    """Validates, then writes atomically (arrays and strings only)."""
    safe_pickle.dump(path, validate(bundle))
