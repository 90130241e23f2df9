"""Pose files → one in-memory form: float32 [18,3] (x, y, confidence) in OpenPose COCO-18 order,
a missing point having confidence 0 (and x = y = 0).

Readers: OpenPose JSON (``pose_keypoints_2d`` or the legacy ``pose_keypoints``; COCO-18 or
BODY_25; several people → the most confident), VITON's pose ``.mat`` / pickled dict
(``candidate`` / ``subset`` from the Realtime Multi-Person Pose Estimation demo), and Everywear
pose files. ``to_signature`` gives the networks' form: [18,2] with missing points at -1.
"""

import json
import os

import numpy as np
import scipy.io

from everywear_tf import errors
from everywear_tf import fileio
from everywear_tf import spec
from everywear_tf.data import safe_pickle

COCO18 = 'coco18'
# BODY_25 index of each COCO-18 point (BODY_25 inserts MidHip at 8 and adds feet from 19).
BODY25_TO_COCO18 = (0, 1, 2, 3, 4, 5, 6, 7, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18)
EVERYWEAR_FORMAT = 'everywear-pose'
EVERYWEAR_VERSION = 1


def _error(path, problem):
    return errors.KeypointsError(path, problem)


def _finite(path, array, what):
    bad = ~np.isfinite(array)
    if bad.any():
        raise _error(path, f'{what} has non-finite values (NaN or infinity) at index '
                           f'{int(np.argwhere(bad)[0][0])}')


def from_flat(values, path='<memory>', where='keypoints'):
    """[18·3] or [25·3] flat (x, y, c) values → [18,3]; missing points zeroed.

    ``where`` names the values inside the file in error messages.
    """
    try:
        array = np.asarray(values, np.float64).reshape(-1)
    except (TypeError, ValueError):
        raise _error(path, f'{where} must be numbers') from None
    if array.size == 18 * 3:
        points = array.reshape(18, 3)
    elif array.size == 25 * 3:
        points = array.reshape(25, 3)[list(BODY25_TO_COCO18)]
    else:
        raise _error(path, f'{where}: expected 54 (COCO-18) or 75 (BODY_25) values, got '
                           f'{array.size}')
    _finite(path, points, where)
    points = points.astype(np.float32)
    points[points[:, 2] <= 0] = 0.0
    return points


def read_openpose_json(path):
    path = errors.require_file(path)
    try:
        with open(path, 'rb') as f:
            document = json.loads(f.read().decode('utf-8'))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise _error(path, f'not valid JSON ({e})') from None
    if not isinstance(document, dict) or not isinstance(document.get('people'), list):
        raise _error(path, 'no "people" list: not an OpenPose keypoints file')
    if not document['people']:
        raise _error(path, 'no person detected ("people" is empty)')
    candidates = []
    for i, person in enumerate(document['people']):
        if not isinstance(person, dict):
            raise _error(path, f'people[{i}] is not an object')
        key = 'pose_keypoints_2d' if 'pose_keypoints_2d' in person else 'pose_keypoints'
        if key not in person:
            raise _error(path, f'people[{i}] has neither pose_keypoints_2d nor pose_keypoints')
        candidates.append(from_flat(person[key], path, f'people[{i}].{key}'))
    return max(candidates, key=lambda points: float(points[:, 2].sum()))


def _from_candidate_subset(path, candidate, subset):
    """VITON's extract_pose_keypoints: the first person of ``subset`` (build_viton.py), with
    candidate rows (x, y, score, id); a -1 index is a missing point."""
    candidate = np.asarray(candidate, np.float64)
    subset = np.asarray(subset, np.float64)
    if subset.ndim == 1:
        subset = subset[None]
    if subset.size == 0:
        raise _error(path, 'no person detected ("subset" is empty)')
    if subset.ndim != 2 or subset.shape[1] < 18:
        raise _error(path, f'"subset" must be [people, 20], got shape {subset.shape}')
    if candidate.ndim != 2 or candidate.shape[1] < 3:
        raise _error(path, f'"candidate" must be [N, 4], got shape {candidate.shape}')
    _finite(path, candidate[:, :3], '"candidate"')
    points = np.zeros((spec.NUM_KEYPOINTS, 3), np.float32)
    for k, index in enumerate(subset[0, :18]):
        if index < 0:
            continue
        if int(index) >= len(candidate):
            raise _error(path, f'keypoint {k} refers to candidate {int(index)} of '
                               f'{len(candidate)}')
        x, y, score = candidate[int(index), :3]
        points[k] = (x, y, score if score > 0 else 1.0)
    return points


def read_viton_pose_mat(path):
    path = errors.require_file(path)
    try:
        mat = scipy.io.loadmat(path)
    except (ValueError, OSError, TypeError, scipy.io.matlab.MatReadError) as e:
        raise _error(path, f'not a readable .mat file ({e})') from None
    if 'candidate' not in mat or 'subset' not in mat:
        raise _error(path, 'needs "candidate" and "subset" (VITON pose .mat)')
    return _from_candidate_subset(path, mat['candidate'], mat['subset'])


def read_viton_pose_pickle(path, key=None):
    """A pickled {'candidate', 'subset'} dict, or VITON's pose.pkl {image_id: {...}} with ``key``."""
    data = safe_pickle.load(path, encoding='latin1')
    if isinstance(data, dict) and key is not None:
        if key not in data:
            raise _error(path, f'no entry {key!r}')
        data = data[key]
    if not isinstance(data, dict) or 'candidate' not in data or 'subset' not in data:
        raise _error(path, 'needs a dict with "candidate" and "subset" (VITON pose pickle)')
    return _from_candidate_subset(path, data['candidate'], data['subset'])


def write_everywear_pose(path, keypoints, image_size):
    """Writes an Everywear pose file (JSON) atomically."""
    keypoints = np.asarray(keypoints, np.float32)
    if keypoints.shape != (spec.NUM_KEYPOINTS, 3):
        raise ValueError(f'keypoints must be [18,3], got {keypoints.shape}')
    document = {'format': EVERYWEAR_FORMAT, 'version': EVERYWEAR_VERSION, 'order': COCO18,
                'image_size': [int(image_size[0]), int(image_size[1])],
                'keypoints': [[round(float(v), 3) for v in point] for point in keypoints]}
    fileio.atomic_write_bytes(path, json.dumps(document, indent=1).encode())


def read_everywear_pose(path, document=None):
    """(keypoints [18,3], image_size (h, w)) of an Everywear pose file."""
    path = os.fspath(path)
    if document is None:
        errors.require_file(path)
        try:
            with open(path, 'rb') as f:
                document = json.loads(f.read().decode('utf-8'))
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise _error(path, f'not valid JSON ({e})') from None
    if document.get('format') != EVERYWEAR_FORMAT:
        raise _error(path, f'"format" must be {EVERYWEAR_FORMAT!r}')
    if document.get('version') != EVERYWEAR_VERSION:
        raise _error(path, f'unsupported version {document.get("version")!r}; this reader '
                           f'knows version {EVERYWEAR_VERSION}')
    if document.get('order') != COCO18:
        raise _error(path, f'"order" must be {COCO18!r}')
    size = document.get('image_size')
    if (not isinstance(size, list) or len(size) != 2 or
            not all(isinstance(v, int) and v > 0 for v in size)):
        raise _error(path, f'"image_size" must be [height, width], got {size!r}')
    points = document.get('keypoints')
    if not isinstance(points, list) or len(points) != spec.NUM_KEYPOINTS or not all(
            isinstance(p, list) and len(p) == 3 for p in points):
        raise _error(path, 'expected "keypoints": 18 [x, y, confidence] triples')
    return from_flat(points, path), tuple(size)


def read_keypoints(path):
    """Any supported pose file → [18,3], chosen by extension (and content for .json)."""
    path = errors.require_file(path)
    lower = path.lower()
    if lower.endswith('.mat'):
        return read_viton_pose_mat(path)
    if lower.endswith(('.pkl', '.pickle')):
        return read_viton_pose_pickle(path)
    if lower.endswith('.json'):
        try:
            with open(path, 'rb') as f:
                document = json.loads(f.read().decode('utf-8'))
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise _error(path, f'not valid JSON ({e})') from None
        if isinstance(document, dict) and 'format' in document:
            return read_everywear_pose(path, document)[0]
        return read_openpose_json(path)
    raise _error(path, 'unknown pose format: expected .json (OpenPose or Everywear), .mat or '
                       '.pkl (VITON)')


def to_signature(keypoints):
    """[..., 18, 3] → float32 [..., 18, 2] with missing (confidence ≤ 0) points at -1."""
    keypoints = np.asarray(keypoints, np.float32)
    if keypoints.shape[-2:] != (spec.NUM_KEYPOINTS, 3):
        raise ValueError(f'keypoints must be [..., 18, 3], got {keypoints.shape}')
    missing = keypoints[..., 2:] <= 0
    return np.where(missing, np.float32(spec.MISSING_KEYPOINT), keypoints[..., :2])


