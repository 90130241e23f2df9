"""The face front end against NumPy float64 references and MediaPipe's own holistic graph.

The references are written from MediaPipe's calculators (SsdAnchors, TensorsToDetections,
NonMaxSuppression WEIGHTED, DetectionsToRects, RectTransformation in normalised coordinates of
a non-square photo, LandmarkProjection, OpenCV-style bilinear warps), not from face.py. The
whole model is checked against ``mediapipe.solutions.holistic`` on scikit-image's photos: it
runs the same graph (pose → face ROI → short-range detector → face mesh) in a subprocess, which
also gives the other tests their pose inputs (``mediapipe_photo``).
"""

import base64
import functools
import importlib.util
import io
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf
from tensorflow.python.framework import op_def_registry

from everywear_tf.convert import tflite
from everywear_tf.inference.frontend import face

from tests import graph_ops

_RNG = np.random.default_rng(20241201)


# ---------------------------------------------------------------------------------------------
# References.

def reference_anchors(input_size=128, strides=(8, 16, 16, 16), offset=0.5, aspect_ratios=(1.0,),
                      interpolated_scale_aspect_ratio=1.0):
    """SsdAnchorsCalculator's loops with fixed_anchor_size: (x, y) centres [N, 2]."""
    anchors = []
    layer = 0
    while layer < len(strides):
        count = 0
        last = layer
        while last < len(strides) and strides[last] == strides[layer]:
            count += len(aspect_ratios) + (1 if interpolated_scale_aspect_ratio > 0 else 0)
            last += 1
        rows = int(np.ceil(input_size / strides[layer]))
        columns = int(np.ceil(input_size / strides[layer]))
        for y in range(rows):
            for x in range(columns):
                for _ in range(count):
                    anchors.append(((x + offset) / columns, (y + offset) / rows))
        layer = last
    return np.array(anchors, np.float64)


def reference_decode(raw_boxes, raw_scores, anchors, scale=128.0):
    """TensorsToDetections (XYWH order, 6 keypoints, sigmoid of scores clipped to ±100)."""
    raw_boxes = raw_boxes.astype(np.float64)
    batch, count, _ = raw_boxes.shape
    boxes = np.zeros((batch, count, 4))
    keypoints = np.zeros((batch, count, 6, 2))
    for b in range(batch):
        for i in range(count):
            r, (ax, ay) = raw_boxes[b, i], anchors[i]
            x, y = r[0] / scale + ax, r[1] / scale + ay
            w, h = r[2] / scale, r[3] / scale
            boxes[b, i] = (x - w / 2, y - h / 2, x + w / 2, y + h / 2)
            for k in range(6):
                keypoints[b, i, k] = (r[4 + 2 * k] / scale + ax, r[5 + 2 * k] / scale + ay)
    scores = 1 / (1 + np.exp(-np.clip(raw_scores[..., 0].astype(np.float64), -100, 100)))
    return boxes, keypoints, scores


def _reference_iou(a, b):
    width = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    height = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    intersection = width * height
    union = ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - intersection)
    return intersection / union if union > 0 else 0.0


def reference_first_weighted_nms(boxes, keypoints, scores, min_score=0.5, threshold=0.3):
    """The first output of NonMaxSuppressionCalculator's WeightedNonMaxSuppression, per item,
    on the detections TensorsToDetections keeps (score ≥ min_score); None when none is kept."""
    out = []
    for b in range(len(boxes)):
        kept = [i for i in np.argsort(-scores[b], kind='stable') if scores[b, i] >= min_score]
        if not kept:
            out.append(None)
            continue
        first = kept[0]
        candidates = [i for i in kept if _reference_iou(boxes[b, i], boxes[b, first]) > threshold]
        weights = scores[b, candidates]
        out.append(((weights[:, None] * boxes[b, candidates]).sum(0) / weights.sum(),
                    (weights[:, None, None] * keypoints[b, candidates]).sum(0) / weights.sum(),
                    scores[b, first]))
    return out


def reference_roi(points, width, height, start, end, scale, shift_y=0.0):
    """DetectionsToRects then RectTransformation, in MediaPipe's normalised coordinates of a
    width × height photo, given back in pixels as (x_centre, y_centre, side, angle)."""
    out = []
    for item in np.asarray(points, np.float64):
        normalised = item / (width, height)
        low, high = normalised.min(0), normalised.max(0)
        x_centre, y_centre = (low + high) / 2
        rect_width, rect_height = high - low
        x0, y0 = normalised[start] * (width, height)
        x1, y1 = normalised[end] * (width, height)
        rotation = 0.0 - np.arctan2(-(y1 - y0), x1 - x0)
        rotation = rotation - 2 * np.pi * np.floor((rotation + np.pi) / (2 * np.pi))
        x_shift = (-height * rect_height * shift_y * np.sin(rotation)) / width
        y_shift = (height * rect_height * shift_y * np.cos(rotation)) / height
        x_centre, y_centre = x_centre + x_shift, y_centre + y_shift
        long_side = max(rect_width * width, rect_height * height)
        side_x = long_side / width * scale
        side_y = long_side / height * scale
        assert np.isclose(side_x * width, side_y * height)
        out.append((x_centre * width, y_centre * height, side_x * width, rotation))
    return np.array(out)


def reference_projection(points, roi, width, height):
    """LandmarkProjectionCalculator on normalised crop points [K, 2] for a pixel ROI."""
    x_centre, y_centre, side, angle = roi
    rect_width, rect_height = side / width, side / height
    x, y = points[:, 0] - 0.5, points[:, 1] - 0.5
    new_x = (np.cos(angle) * x - np.sin(angle) * y) * rect_width + x_centre / width
    new_y = (np.sin(angle) * x + np.cos(angle) * y) * rect_height + y_centre / height
    return np.stack([new_x * width, new_y * height], -1)


def reference_crop(image, roi, size, replicate):
    """A warpAffine-style crop: output pixel (i, j) samples the ROI at (j / size, i / size),
    bilinear with pixel centres at integer coordinates, rounded to whole values."""
    image = image.astype(np.float64)
    height, width = image.shape[:2]
    x_centre, y_centre, side, angle = roi
    out = np.zeros((size, size, 3))
    for i in range(size):
        for j in range(size):
            u, v = (j / size - 0.5) * side, (i / size - 0.5) * side
            x = x_centre + np.cos(angle) * u - np.sin(angle) * v
            y = y_centre + np.sin(angle) * u + np.cos(angle) * v
            if replicate:
                x, y = min(max(x, 0), width - 1), min(max(y, 0), height - 1)
            x0, y0 = np.floor(x), np.floor(y)
            value = np.zeros(3)
            for xs in (x0, x0 + 1):
                for ys in (y0, y0 + 1):
                    weight = (1 - abs(x - xs)) * (1 - abs(y - ys))
                    if 0 <= xs <= width - 1 and 0 <= ys <= height - 1:
                        value += weight * image[int(ys), int(xs)]
                    elif replicate:
                        value += weight * image[int(min(ys, height - 1)), int(min(xs, width - 1))]
            out[i, j] = value
    return np.round(out)


def reference_head_ellipse(landmarks):
    """face.head_ellipse's documented layout, from the pose's eyes, ears and shoulders."""
    landmarks = np.asarray(landmarks, np.float64)
    xy, visible = landmarks[:, :2], landmarks[:, 3] >= 0.5
    left_eye, right_eye, left_ear, right_ear = xy[2], xy[5], xy[7], xy[8]
    ears = visible[7] and visible[8]
    width = max(np.linalg.norm(left_ear - right_ear) if ears else 0.0,
                2 * np.linalg.norm(left_eye - right_eye))
    if visible[11] and visible[12]:
        width = max(width, 0.35 * np.linalg.norm(xy[11] - xy[12]))
    width = max(width, 1.0)
    direction = (left_eye - right_eye) / np.linalg.norm(left_eye - right_eye)
    down = np.array([-direction[1], direction[0]])
    centre = ((left_ear + right_ear) / 2 if ears
              else (left_eye + right_eye) / 2 + 0.15 * width * down)
    out = np.tile(np.append(centre, 0.0), (468, 1))
    for k, index in enumerate(face.FACE_OVAL):
        t = 2 * np.pi * k / 36
        out[index, :2] = (centre + np.sin(t) * 0.54 * width * direction -
                          np.cos(t) * 0.71 * width * down)
    return out


# ---------------------------------------------------------------------------------------------
# Pieces against the references.

def test_anchors_are_the_calculators():
    anchors = face.ssd_anchors()
    assert anchors.shape == (face.NUM_ANCHORS, 2) == (896, 2)
    np.testing.assert_allclose(anchors, reference_anchors(), atol=1e-7)


def _raw_detections(batch, rng):
    regressors = rng.normal(0, 20, (batch, 896, 16)).astype(np.float32)
    classificators = rng.normal(0, 3, (batch, 896, 1)).astype(np.float32)
    classificators[0, :5, 0] = (150.0, -150.0, 0.0, 100.0, -100.0)  # the clipping's edges
    return regressors, classificators


def test_decoding_matches_numpy():
    regressors, classificators = _raw_detections(3, _RNG)
    boxes, keypoints, scores = face.decode_detections(regressors, classificators,
                                                      face.ssd_anchors())
    expected = reference_decode(regressors, classificators, reference_anchors())
    for got, want in zip((boxes, keypoints, scores), expected):
        np.testing.assert_allclose(got.numpy(), want, atol=1e-5)


def _clustered_boxes(batch, count, rng):
    """Boxes around a few centres so that clusters overlap, with keypoints and scores."""
    centres = rng.uniform(0.2, 0.8, (batch, 3, 2))
    pick = rng.integers(0, 3, (batch, count))
    centre = np.take_along_axis(centres, pick[..., None], axis=1) + rng.normal(0, 0.03,
                                                                                (batch, count, 2))
    size = rng.uniform(0.1, 0.3, (batch, count, 1))
    boxes = np.concatenate([centre - size / 2, centre + size / 2], -1)
    keypoints = centre[:, :, None] + rng.normal(0, 0.05, (batch, count, 6, 2))
    scores = rng.uniform(0, 1, (batch, count))
    scores[-1] = rng.uniform(0, 0.49, count)  # the last item finds nothing
    return boxes.astype(np.float32), keypoints.astype(np.float32), scores.astype(np.float32)


def test_best_detection_is_the_first_of_weighted_nms():
    boxes, keypoints, scores = _clustered_boxes(5, 40, _RNG)
    box, points, score, found = (t.numpy() for t in face.best_detection(boxes, keypoints, scores))
    expected = reference_first_weighted_nms(boxes.astype(np.float64),
                                            keypoints.astype(np.float64), scores)
    assert [e is not None for e in expected] == list(found) == [True] * 4 + [False]
    for b, want in enumerate(expected):
        if want is None:
            continue
        np.testing.assert_allclose(box[b], want[0], atol=1e-5)
        np.testing.assert_allclose(points[b], want[1], atol=1e-5)
        assert score[b] == pytest.approx(want[2], abs=1e-6)


@pytest.mark.parametrize('which', ['pose', 'detection'])
def test_rois_match_the_calculators_on_a_non_square_photo(which):
    width, height = 640, 480
    if which == 'pose':
        landmarks = np.zeros((4, 33, 5), np.float32)
        landmarks[:, :11, :2] = _RNG.uniform((100, 50), (500, 400), (4, 11, 2))
        got = face.pose_face_roi(landmarks).numpy()
        want = reference_roi(landmarks[:, :11, :2], width, height, 5, 2, 3.0)
    else:
        points = _RNG.uniform((100, 50), (500, 400), (4, 6, 2)).astype(np.float32)
        got = face.detection_face_roi(points).numpy()
        want = reference_roi(points, width, height, 0, 1, 2.0, shift_y=-0.1)
    np.testing.assert_allclose(got[:, :3], want[:, :3], rtol=1e-5, atol=1e-3)
    np.testing.assert_allclose(np.exp(1j * got[:, 3]), np.exp(1j * want[:, 3]), atol=1e-5)


def test_projection_matches_landmark_projection():
    rois = np.stack([_RNG.uniform(50, 600, 3), _RNG.uniform(50, 400, 3), _RNG.uniform(20, 300, 3),
                     _RNG.uniform(-np.pi, np.pi, 3)], -1).astype(np.float32)
    points = _RNG.uniform(-0.2, 1.2, (3, 17, 2)).astype(np.float32)
    got = face.project(points, rois).numpy()
    for b in range(3):
        np.testing.assert_allclose(got[b], reference_projection(points[b].astype(np.float64),
                                                                rois[b], 640, 480), atol=2e-3)


@pytest.mark.parametrize('replicate', [False, True])
def test_crop_matches_numpy(replicate):
    image = _RNG.integers(0, 256, (37, 53, 3), dtype=np.uint8)
    rois = np.array([[26.3, 18.1, 30.7, 0.0], [5.2, 30.4, 25.3, 0.7], [40.1, 10.6, 60.9, -2.5]],
                    np.float32)
    got = face.crop(tf.constant(image), rois, 12, replicate).numpy()
    for b, roi in enumerate(rois):
        want = reference_crop(image, roi.astype(np.float64), 12, replicate)
        difference = np.abs(got[b] - want)
        assert difference.max() <= 1.0, b  # float32 against float64 at a rounding tie
        assert (difference > 0).mean() < 0.01, b


def test_head_ellipse_matches_numpy():
    for visible_ears in (True, False):
        landmarks = np.zeros((3, 33, 5), np.float32)
        landmarks[..., :2] = _RNG.uniform(50, 400, (3, 33, 2))
        landmarks[..., 3] = 1.0
        landmarks[:, 7:9, 3] = 1.0 if visible_ears else 0.2
        landmarks[1, 11:13, 3] = 0.0
        got = face.head_ellipse(landmarks).numpy()
        for b in range(3):
            np.testing.assert_allclose(got[b], reference_head_ellipse(landmarks[b]), atol=2e-3)


def _mediapipe_file(relative):
    try:
        directory = os.path.dirname(os.path.dirname(os.path.dirname(
                tflite.mediapipe_model_path('face_landmark'))))
    except tflite.MediapipeNotInstalledError as e:
        pytest.skip(f'{e} (the face models are read from the mediapipe wheel)')
    return os.path.join(directory, relative)


def test_face_oval_is_mediapipes_ring():
    # Read the connections module by path: importing mediapipe takes seconds.
    path = _mediapipe_file(os.path.join('python', 'solutions', 'face_mesh_connections.py'))
    spec = importlib.util.spec_from_file_location('face_mesh_connections', path)
    connections = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(connections)
    ring = face.FACE_OVAL
    assert len(set(ring)) == len(ring) == 36
    assert {(a, b) for a, b in zip(ring, ring[1:] + ring[:1])} == set(
            connections.FACEMESH_FACE_OVAL)
    assert ring[18] == face.CHIN


# ---------------------------------------------------------------------------------------------
# The model with stand-in networks (no mediapipe needed).

_KEYPOINTS = ((-12, -8), (12, -8), (0, 2), (0, 14), (-25, -4), (25, -4))  # input pixels


class _Detector(tf.Module):
    """One face at the crop's anchor nearest (x, y), eyes level, or nothing."""

    def __init__(self, score):
        super().__init__()
        self.score = score

    def __call__(self, x):
        batch = tf.shape(x)[0]
        anchors = face.ssd_anchors()
        best = int(np.argmin(np.linalg.norm(anchors - (0.5, 0.45), axis=1)))
        keypoints = np.array(_KEYPOINTS, np.float32)
        raw = np.zeros((896, 16), np.float32)
        raw[best] = np.concatenate([(0.0, 0.0, 40.0, 40.0), keypoints.ravel()])
        logits = np.full((896, 1), -50.0, np.float32)
        logits[best] = self.score
        return {'regressors': tf.tile(tf.constant(raw)[None], [batch, 1, 1]),
                'classificators': tf.tile(tf.constant(logits)[None], [batch, 1, 1])}


class _Landmarker(tf.Module):
    """A mesh of every point at the crop's centre but the oval on a circle, and a face flag."""

    def __init__(self, flag):
        super().__init__()
        self.flag = flag

    def __call__(self, x):
        batch = tf.shape(x)[0]
        mesh = np.tile([96.0, 96.0, 3.0], (468, 1)).astype(np.float32)
        for k, index in enumerate(face.FACE_OVAL):
            mesh[index, :2] = 96 + 50 * np.array([np.sin(2 * np.pi * k / 36),
                                                  -np.cos(2 * np.pi * k / 36)])
        return {'conv2d_21': tf.tile(tf.constant(mesh.reshape(1, 1, 1, -1)), [batch, 1, 1, 1]),
                'conv2d_31': tf.fill([batch, 1, 1, 1], self.flag)}


def _pose_head(centre=(150.0, 120.0), eyes=30.0):
    landmarks = np.zeros((33, 5), np.float32)
    cx, cy = centre
    for index, (dx, dy) in {0: (0, 10), 2: (eyes / 2, 0), 5: (-eyes / 2, 0), 1: (eyes / 3, 0),
                            3: (eyes * 0.7, 0), 4: (-eyes / 3, 0), 6: (-eyes * 0.7, 0),
                            7: (eyes, 5), 8: (-eyes, 5), 9: (eyes / 3, 25),
                            10: (-eyes / 3, 25)}.items():
        landmarks[index] = (cx + dx, cy + dy, 0.0, 0.99, 0.99)
    return landmarks


@pytest.mark.parametrize('score,flag,found', [(5.0, 5.0, True), (-5.0, 5.0, False),
                                              (5.0, -5.0, False)])
def test_model_with_stand_in_networks(score, flag, found):
    model = face.FaceModel(_Detector(score), _Landmarker(flag))
    image = _RNG.integers(0, 256, (240, 320, 3), dtype=np.uint8)
    landmarks = _pose_head()
    out = model(tf.constant(image), tf.constant(landmarks))
    assert out['face_landmarks'].shape == (468, 3)
    assert bool(out['found']) is found
    got = out['face_landmarks'].numpy()
    if not found:
        np.testing.assert_allclose(got, face.head_ellipse(landmarks).numpy())
        return
    # The detection, the ROI and the mesh's projection, composed by hand.
    search = face.pose_face_roi(landmarks[None])
    anchors = face.ssd_anchors()
    best = int(np.argmin(np.linalg.norm(anchors - (0.5, 0.45), axis=1)))
    keypoints = anchors[best] + np.array(_KEYPOINTS, np.float32) / 128
    roi = face.detection_face_roi(face.project(keypoints[None], search)).numpy()[0]
    assert roi[2] > 0 and abs(roi[3]) < 1e-5
    centre = reference_projection(np.array([[0.5, 0.5]]), roi, 320, 240)[0]
    np.testing.assert_allclose(got[1, :2], centre, atol=1e-3)
    assert got[1, 2] == pytest.approx(3.0 / 192 * roi[2], rel=1e-5)
    radius = np.linalg.norm(got[list(face.FACE_OVAL), :2] - centre, axis=1)
    np.testing.assert_allclose(radius, 50 / 192 * roi[2], rtol=1e-4)


def test_stand_in_model_graph_is_core_tf():
    model = face.FaceModel(_Detector(5.0), _Landmarker(5.0))
    function = model.__call__.get_concrete_function()
    types = graph_ops.op_types(function)
    assert graph_ops.custom_ops(function) == []
    assert all(op_def_registry.get(op) is not None for op in types), types


# ---------------------------------------------------------------------------------------------
# The mediapipe models on photos, against MediaPipe's holistic graph.

_HOLISTIC = textwrap.dedent('''
    import base64, io, sys
    import numpy as np
    import skimage.data
    import mediapipe as mp
    out = {}
    for name in sys.argv[1:]:
        image = getattr(skimage.data, name)()
        if image.ndim == 2:
            image = np.stack([image] * 3, -1)
        height, width = image.shape[:2]
        with mp.solutions.holistic.Holistic(static_image_mode=True, model_complexity=1,
                                            enable_segmentation=True) as holistic:
            result = holistic.process(image)
        out[name + '/image'] = image
        out[name + '/landmarks'] = np.array(
                [(p.x * width, p.y * height, p.z * width, p.visibility, p.presence)
                 for p in result.pose_landmarks.landmark], np.float32)
        out[name + '/mask'] = result.segmentation_mask.astype(np.float32)
        out[name + '/face'] = np.array(
                [(p.x * width, p.y * height, p.z * width) for p in result.face_landmarks.landmark]
                if result.face_landmarks else np.zeros((0, 3)), np.float32)
    buffer = io.BytesIO()
    np.savez(buffer, **out)
    sys.stdout.write(base64.b64encode(buffer.getvalue()).decode())
''')
PHOTOS = ('astronaut', 'camera')


@functools.lru_cache(maxsize=1)
def _holistic_outputs():
    completed = subprocess.run([sys.executable, '-c', _HOLISTIC, *PHOTOS], capture_output=True,
                               text=True, timeout=600)
    assert completed.returncode == 0, completed.stderr[-3000:]
    with np.load(io.BytesIO(base64.b64decode(completed.stdout))) as arrays:
        return {key: arrays[key] for key in arrays.files}


def mediapipe_photo(name):
    """A scikit-image photo with MediaPipe holistic's pose landmarks [33, 5] (photo pixels),
    person mask [H, W] and face landmarks [468, 3] (test inputs; skipped without mediapipe or
    scikit-image)."""
    _mediapipe_file('.')
    pytest.importorskip('skimage.data')
    outputs = _holistic_outputs()
    return {key: outputs[f'{name}/{key}'] for key in ('image', 'landmarks', 'mask', 'face')}


@functools.lru_cache(maxsize=1)
def mediapipe_face_model():
    """The face model on the installed mediapipe's networks (skipped when it is missing)."""
    _mediapipe_file('.')
    return face.FaceModel.from_mediapipe()


@pytest.mark.slow
@pytest.mark.parametrize('name', PHOTOS)
def test_model_matches_mediapipe_holistic(name):
    photo = mediapipe_photo(name)
    out = mediapipe_face_model()(tf.constant(photo['image']), tf.constant(photo['landmarks']))
    assert bool(out['found']) and photo['face'].shape == (468, 3)
    got = out['face_landmarks'].numpy()
    error = np.linalg.norm(got[:, :2] - photo['face'][:, :2], axis=1)
    assert error.mean() < 0.5 and error.max() < 2.0, (error.mean(), error.max())
    assert np.abs(got[:, 2] - photo['face'][:, 2]).mean() < 0.5
    # The nose tip (mesh 1) by the pose's nose.
    assert np.linalg.norm(got[1, :2] - photo['landmarks'][0, :2]) < 12


@pytest.mark.slow
def test_astronaut_face_is_where_the_face_is():
    photo = mediapipe_photo('astronaut')
    out = mediapipe_face_model()(tf.constant(photo['image']), tf.constant(photo['landmarks']))
    oval = out['face_landmarks'].numpy()[list(face.FACE_OVAL), :2]
    # Her face spans about x 175-280, y 60-180 of the 512×512 photo.
    low, high = oval.min(0), oval.max(0)
    assert 165 < low[0] < 195 and 260 < high[0] < 290, (low, high)
    assert 50 < low[1] < 85 and 165 < high[1] < 195, (low, high)


@pytest.mark.slow
def test_no_face_gives_the_head_ellipse():
    landmarks = _pose_head((160.0, 120.0))
    image = np.full((240, 320, 3), 128, np.uint8)
    out = mediapipe_face_model()(tf.constant(image), tf.constant(landmarks))
    assert not bool(out['found'])
    np.testing.assert_allclose(out['face_landmarks'].numpy(),
                               face.head_ellipse(landmarks).numpy())


@pytest.mark.slow
def test_mediapipe_model_graph_is_core_tf():
    function = mediapipe_face_model().__call__.get_concrete_function()
    types = graph_ops.op_types(function)
    assert graph_ops.custom_ops(function) == []
    assert all(op_def_registry.get(op) is not None for op in types), types
