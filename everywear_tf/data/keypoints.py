"""Pose files → one in-memory form: float32 [18,3] (x, y, confidence) in OpenPose COCO-18 order
(nose, neck, r-shoulder, r-elbow, r-wrist, l-shoulder, l-elbow, l-wrist, r-hip, r-knee, r-ankle,
l-hip, l-knee, l-ankle, r-eye, l-eye, r-ear, l-ear); a missing point has confidence 0 and
x = y = 0, as OpenPose writes it.

Readers:
- OpenPose JSON: ``people[i].pose_keypoints_2d`` (OpenPose ≥ 1.3) or the legacy
  ``pose_keypoints`` (what CP-VTON's convert_data.m wrote); COCO-18 (54 values) or BODY_25
  (75 values, mapped to COCO-18); with several people, the one with the largest summed
  confidence (CP-VTON's cp_dataset.py simply takes ``people[0]``).
- VITON's pose ``.mat`` (test set) and pickled dicts (``data/pose.pkl``, train set), written by
  the Realtime Multi-Person Pose Estimation demo: ``candidate`` [N,4] (x, y, score, id) and
  ``subset`` [P,20] (18 candidate indices, -1 for missing, then total score, part count).
  VITON reads row 0 and truncates x, y to int (utils.py:30-35); here coordinates stay float
  (the pose maps truncate them anyway) and the row is chosen by ``person``.
- Everywear pose files (JSON, see ``write_everywear_pose``).

``to_signature`` gives the networks' form: float32 [..., 18, 2] with missing points at -1.

Inputs are bounded before they are parsed: a JSON file larger than ``MAX_JSON_BYTES`` is refused
unread, a ``.mat`` is read through ``mat_files.load`` (declared sizes checked first), a pickle
through the restricted unpickler. Given the photo's size, ``read_keypoints`` also refuses a pose
that cannot be the photo's (``check_in_photo``): a point present but far outside it (x = 1e30,
all coordinates negative...) would otherwise draw garbage with no error.
"""

import json
import math
import numbers
import os

import numpy as np

from everywear_tf import errors
from everywear_tf import fileio
from everywear_tf import spec
from everywear_tf.data import mat_files
from everywear_tf.data import safe_pickle

COCO18 = 'coco18'
# COCO-18 indices.
NOSE, NECK, R_SHOULDER, R_ELBOW, R_WRIST, L_SHOULDER, L_ELBOW, L_WRIST = range(8)
R_HIP, R_KNEE, R_ANKLE, L_HIP, L_KNEE, L_ANKLE, R_EYE, L_EYE, R_EAR, L_EAR = range(8, 18)
# BODY_25 index of each COCO-18 point: BODY_25 is COCO-18 with MidHip inserted at 8 (so COCO
# 8..17 are BODY_25 9..18) and six foot points appended at 19..24.
BODY25_TO_COCO18 = (0, 1, 2, 3, 4, 5, 6, 7, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18)
EVERYWEAR_FORMAT = 'everywear-pose'
EVERYWEAR_VERSION = 1

# Which person of a VITON ``subset`` to read.
BEST = 'best'  # the highest total score, subset[:, 18]
FIRST = 'first'  # row 0, as VITON's utils.extract_pose_keypoints (utils.py:33) does

# A pose JSON larger than this is refused before it is parsed (OpenPose writes ~2 kB a person,
# ~10 kB with face and hands).
MAX_JSON_BYTES = 8 << 20
# How far outside the photo a present point may lie, as a fraction of the photo's larger side
# (a cropped photo's hips or ankles can lie a little below its edge).
OUTSIDE_MARGIN = 0.5


def _error(path, problem):
    return errors.KeypointsError(path, problem)


def _is_number(value):
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def from_flat(values, path='<memory>', where='keypoints'):
    """A flat list of 54 (COCO-18) or 75 (BODY_25) numbers, (x, y, c) per point → [18,3].

    Points with confidence ≤ 0 become (0, 0, 0). ``where`` names the values in error messages.
    """
    if isinstance(values, np.ndarray):
        if values.dtype.kind not in 'iuf':
            raise _error(path, f'{where} must be numbers, got {values.dtype} values')
        values = values.reshape(-1).tolist()
    if not isinstance(values, (list, tuple)):
        raise _error(path, f'{where} must be a list of numbers, got {type(values).__name__}')
    floats = []
    for i, value in enumerate(values):
        if not _is_number(value):
            raise _error(path, f'{where}[{i}] is {value!r}, not a number')
        try:
            value = float(value)
        except OverflowError:
            value = math.inf
        if not math.isfinite(value):
            raise _error(path, f'{where}[{i}] is {value!r}, a non-finite value (coordinates '
                               'and confidences must be finite)')
        floats.append(value)
    if len(floats) == 18 * 3:
        points = np.asarray(floats, np.float64).reshape(18, 3)
    elif len(floats) == 25 * 3:
        points = np.asarray(floats, np.float64).reshape(25, 3)[list(BODY25_TO_COCO18)]
    else:
        raise _error(path, f'{where}: expected 54 (COCO-18) or 75 (BODY_25) values, got '
                           f'{len(values)}')
    if np.any(np.abs(points) > np.finfo(np.float32).max):
        raise _error(path, f'{where}: values beyond float32 range')
    points = points.astype(np.float32)
    points[points[:, 2] <= 0] = 0.0
    return points


def _load_json(path, max_bytes=MAX_JSON_BYTES):
    path = errors.require_file(path)
    try:
        size = os.path.getsize(path)
        if size > max_bytes:
            raise _error(path, f'is {size} bytes, above the limit of {max_bytes} bytes for a '
                               'pose file: refused before parsing')
        with open(path, 'rb') as f:
            data = f.read(max_bytes + 1)
    except OSError as e:
        raise _error(path, f'cannot be read ({e.strerror or e})') from None
    if len(data) > max_bytes:  # grew while being read
        raise _error(path, f'is above the limit of {max_bytes} bytes for a pose file')
    try:
        return path, json.loads(data.decode('utf-8'))
    except UnicodeDecodeError as e:
        raise _error(path, f'not valid JSON (not UTF-8 text: {e.reason} at byte {e.start})') \
            from None
    except json.JSONDecodeError as e:
        raise _error(path, f'not valid JSON ({e.msg} at line {e.lineno} column {e.colno}; '
                           'truncated?)') from None
    except RecursionError:
        raise _error(path, 'not valid JSON (nested too deeply)') from None
    except ValueError as e:  # e.g. an integer of more digits than Python converts
        raise _error(path, f'not valid JSON ({e})') from None


def _from_openpose(path, document):
    if not isinstance(document, dict) or 'people' not in document:
        raise _error(path, 'no "people" list: not an OpenPose keypoints file')
    people = document['people']
    if not isinstance(people, list):
        raise _error(path, f'"people" must be a list, got {type(people).__name__}')
    if not people:
        raise _error(path, 'no person detected ("people" is empty)')
    candidates = []
    for i, person in enumerate(people):
        if not isinstance(person, dict):
            raise _error(path, f'people[{i}] is not an object')
        key = 'pose_keypoints_2d' if 'pose_keypoints_2d' in person else 'pose_keypoints'
        if key not in person:
            raise _error(path, f'people[{i}] has neither "pose_keypoints_2d" nor '
                               '"pose_keypoints"')
        candidates.append(from_flat(person[key], path, f'people[{i}].{key}'))
    # max keeps the first of equally confident people.
    return max(candidates, key=lambda points: float(points[:, 2].astype(np.float64).sum()))


def read_openpose_json(path):
    """[18,3] of an OpenPose JSON file (COCO-18 or BODY_25; the most confident person)."""
    path, document = _load_json(path)
    return _from_openpose(path, document)


def _numeric_array(path, value, name):
    try:
        array = np.asarray(value)
        if array.dtype.kind not in 'iuf':
            raise TypeError(array.dtype)
        return array.astype(np.float64)
    except (TypeError, ValueError):
        raise _error(path, f'"{name}" must be a numeric array') from None


def from_viton_pose(pose, path='<memory>', person=BEST):
    """[18,3] of a VITON pose dict {'candidate': [N,4], 'subset': [P,20]}.

    ``person``: BEST (highest total score, subset[:, 18]) or FIRST (row 0, VITON's own rule).
    The confidence is the candidate's score; a present point whose score is not positive gets
    confidence 1 so that it does not read as missing (VITON itself ignores scores).
    """
    if person not in (BEST, FIRST):
        raise ValueError(f'person must be {BEST!r} or {FIRST!r}, got {person!r}')
    if not isinstance(pose, dict) or 'candidate' not in pose or 'subset' not in pose:
        raise _error(path, 'needs "candidate" and "subset" (a VITON pose)')
    candidate = _numeric_array(path, pose['candidate'], 'candidate')
    subset = _numeric_array(path, pose['subset'], 'subset')
    if subset.size == 0:
        raise _error(path, 'no person detected ("subset" is empty)')
    if subset.ndim == 1:
        subset = subset[None]
    if subset.ndim != 2 or subset.shape[1] != 20:
        raise _error(path, f'"subset" must be [people, 20], got shape {subset.shape}')
    if candidate.size == 0:
        candidate = np.zeros((0, 4))
    if candidate.ndim == 1:
        candidate = candidate[None]
    if candidate.ndim != 2 or candidate.shape[1] < 3:
        raise _error(path, f'"candidate" must be [N, 4], got shape {candidate.shape}')
    for name, array in (('candidate', candidate[:, :3]), ('subset', subset)):
        if not np.all(np.isfinite(array)):
            raise _error(path, f'"{name}" has non-finite values (NaN or infinity)')
    row = 0 if person == FIRST else int(np.argmax(subset[:, 18]))  # argmax: first of ties
    points = np.zeros((spec.NUM_KEYPOINTS, 3), np.float32)
    for k, index in enumerate(subset[row, :18]):
        if index < 0:
            continue
        if index != int(index) or int(index) >= len(candidate):
            raise _error(path, f'subset[{row}, {k}] = {index:g} is not an index into the '
                               f'{len(candidate)} candidates')
        x, y, score = candidate[int(index), :3]
        points[k] = (x, y, score if score > 0 else 1.0)
    if not np.all(np.isfinite(points)):
        raise _error(path, '"candidate" has values beyond float32 range')
    return points


def read_viton_pose_mat(path, person=BEST):
    """[18,3] of a VITON pose .mat (``candidate`` / ``subset``); see ``from_viton_pose``."""
    path = errors.require_file(path)
    mat = mat_files.load(path, ('candidate', 'subset'), errors.KeypointsError,
                         missing_problem='needs "candidate" and "subset" (a VITON pose)')
    return from_viton_pose(mat, path, person)


def read_viton_pose_pickle(path, key=None, person=BEST):
    """[18,3] of a pickled VITON pose, read with the restricted unpickler (latin1 for Python 2).

    The pickle is either one {'candidate', 'subset'} dict or, like VITON's ``data/pose.pkl``, a
    dict of them keyed by image id (``key``, e.g. '000001_0').
    """
    data = safe_pickle.load(path, encoding='latin1')
    if key is not None:
        if not isinstance(data, dict) or key not in data:
            raise _error(path, f'no entry {key!r}')
        return from_viton_pose(data[key], f'{os.fspath(path)}[{key!r}]', person)
    if isinstance(data, dict) and 'candidate' not in data and data and all(
            isinstance(v, dict) for v in data.values()):
        raise _error(path, f'holds the poses of {len(data)} images (like VITON\'s pose.pkl); '
                           'pass key=<image id>')
    return from_viton_pose(data, path, person)


def openpose_json(keypoints) -> str:
    """OpenPose's JSON for one person's COCO-18 keypoints [18,3] (``pose_keypoints_2d``, values
    rounded to 1/1000 px; missing points 0, 0, 0)."""
    points = np.asarray(keypoints, np.float64).copy()
    points[points[:, 2] <= 0] = 0.0
    flat = [round(float(v), 3) for v in points.reshape(-1)]
    return json.dumps({'version': 1.3, 'people': [{'pose_keypoints_2d': flat}]})


def write_openpose_json(path, keypoints) -> None:
    """Writes one person's COCO-18 keypoints [18,3] as an OpenPose JSON file, atomically (what
    ``read_openpose_json`` reads back, to the 1/1000 px)."""
    path = os.fspath(path)
    fileio.atomic_write_bytes(path, (openpose_json(_writable(path, keypoints)) + '\n').encode())


def _writable(path, keypoints):
    """``keypoints`` as an array, or KeypointsError naming ``path`` if they are not finite
    numbers [18,3]."""
    keypoints = np.asarray(keypoints)
    if keypoints.shape != (spec.NUM_KEYPOINTS, 3) or keypoints.dtype.kind not in 'iuf':
        raise _error(path, f'cannot write keypoints of {keypoints.dtype} {keypoints.shape}: '
                           'expected numbers [18,3]')
    if not np.all(np.isfinite(keypoints)):
        raise _error(path, 'cannot write non-finite keypoints (NaN or infinity)')
    return keypoints


def write_everywear_pose(path, keypoints, image_size):
    """Writes an Everywear pose file atomically:

    {"format": "everywear-pose", "version": 1, "order": "coco18", "image_size": [h, w],
     "keypoints": [[x, y, c], ... 18 ...]}   (pixels of that image; missing = [0, 0, 0])
    """
    path = os.fspath(path)
    keypoints = _writable(path, keypoints)
    size = errors.checked_size(path, image_size, errors.KeypointsError)
    points = keypoints.astype(np.float64)
    points[points[:, 2] <= 0] = 0.0
    document = {'format': EVERYWEAR_FORMAT, 'version': EVERYWEAR_VERSION, 'order': COCO18,
                'image_size': list(size),
                'keypoints': [[round(float(v), 3) for v in point] for point in points]}
    fileio.atomic_write_bytes(path, (json.dumps(document, indent=1) + '\n').encode())


def _from_everywear(path, document):
    if document.get('format') != EVERYWEAR_FORMAT:
        raise _error(path, f'"format" is {document.get("format")!r}; expected '
                           f'{EVERYWEAR_FORMAT!r}')
    if document.get('version') != EVERYWEAR_VERSION:
        raise _error(path, f'unsupported version {document.get("version")!r}; this reader '
                           f'knows version {EVERYWEAR_VERSION}')
    if document.get('order') != COCO18:
        raise _error(path, f'"order" is {document.get("order")!r}; expected {COCO18!r}')
    size = document.get('image_size')
    if (not isinstance(size, list) or len(size) != 2 or
            not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in size)):
        raise _error(path, f'"image_size" must be [height, width], got {size!r}')
    points = document.get('keypoints')
    if not isinstance(points, list) or len(points) != spec.NUM_KEYPOINTS or not all(
            isinstance(p, list) and len(p) == 3 for p in points):
        raise _error(path, '"keypoints" must be 18 [x, y, confidence] triples')
    return from_flat([v for p in points for v in p], path, 'keypoints'), tuple(size)


def read_everywear_pose(path):
    """(keypoints [18,3], image_size (h, w)) of an Everywear pose file."""
    path, document = _load_json(path)
    if not isinstance(document, dict):
        raise _error(path, 'not an Everywear pose file (not a JSON object)')
    return _from_everywear(path, document)


def read_keypoints(path, image_size=None):
    """[18,3] of any supported pose file, by extension: .json (Everywear if it has a "format"
    key, else OpenPose), .mat (VITON), .pkl / .pickle (VITON, one pose dict).

    With ``image_size`` (h, w), the photo's, the pose is checked against it
    (``check_in_photo``).
    """
    path = errors.require_file(path)
    lower = path.lower()
    if lower.endswith('.mat'):
        points = read_viton_pose_mat(path)
    elif lower.endswith(('.pkl', '.pickle')):
        points = read_viton_pose_pickle(path)
    elif lower.endswith('.json'):
        path, document = _load_json(path)
        if isinstance(document, dict) and 'format' in document:
            points = _from_everywear(path, document)[0]
        else:
            points = _from_openpose(path, document)
    else:
        raise _error(path, 'unknown pose format: expected .json (OpenPose or Everywear), .mat '
                           'or .pkl (VITON)')
    if image_size is not None:
        check_in_photo(points, image_size, path)
    return points


def check_in_photo(keypoints, image_size, path='<memory>', margin=OUTSIDE_MARGIN):
    """Raises a KeypointsError naming ``path`` unless the [18,3] pose can be the photo's.

    A present point (confidence > 0) must lie within ``margin`` × the photo's larger side of
    the photo, and at least one present point must lie inside it. Returns ``keypoints``.
    """
    height, width = errors.checked_size(path, image_size, errors.KeypointsError)
    points = np.asarray(keypoints, np.float64)
    if points.shape != (spec.NUM_KEYPOINTS, 3) or not np.all(np.isfinite(points)):
        raise _error(path, f'keypoints must be finite [18,3], got {points.dtype} {points.shape}')
    present = points[:, 2] > 0
    if not np.any(present):
        raise _error(path, 'no keypoint is present (every confidence is 0)')
    slack = margin * max(height, width)
    x, y = points[:, 0], points[:, 1]
    far = present & ((x < -slack) | (x > width - 1 + slack) | (y < -slack) |
                     (y > height - 1 + slack))
    if np.any(far):
        k = int(np.argmax(far))
        raise _error(path, f'keypoint {k} is at ({x[k]:.6g}, {y[k]:.6g}), more than '
                           f'{margin:g} x the photo\'s side outside the {width}x{height} '
                           '(WxH) photo: not a pose of this photo')
    inside = present & (x >= 0) & (x <= width - 1) & (y >= 0) & (y <= height - 1)
    if not np.any(inside):
        raise _error(path, f'no present keypoint lies inside the {width}x{height} (WxH) photo: '
                           'not a pose of this photo')
    return keypoints


def to_signature(keypoints):
    """[..., 18, 3] → float32 [..., 18, 2] (x, y) with missing (confidence ≤ 0) points at
    spec.MISSING_KEYPOINT for both x and y."""
    keypoints = np.asarray(keypoints, np.float32)
    if keypoints.ndim < 2 or keypoints.shape[-2:] != (spec.NUM_KEYPOINTS, 3):
        raise errors.KeypointsError(None, f'keypoints must be [..., 18, 3], got shape '
                                          f'{keypoints.shape}')
    missing = keypoints[..., 2:] <= 0
    return np.where(missing, np.float32(spec.MISSING_KEYPOINT), keypoints[..., :2])
