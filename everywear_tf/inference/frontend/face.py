"""The face of a photo: MediaPipe's short-range face detector and face mesh, in the graph.

``FaceModel`` follows MediaPipe's holistic graph for one photo (mediapipe 0.10.21's models and
graph options):

1. A square ROI around the pose's head landmarks (BlazePose 0-10): their bounding box, rotated
   so the right eye (5) → left eye (2) vector is horizontal, its long side × 3
   (``holistic_landmark/face_landmarks_from_pose_to_recrop_roi.pbtxt``).
2. The short-range detector on that ROI at 128×128 in [-1, 1], zeros outside the photo: 896 SSD
   anchors (strides 8, 16, 16, 16, offset 0.5, fixed size), boxes and 6 keypoints decoded as
   x, y, w, h / 128, scores sigmoid(clip(logit, ±100)) ≥ 0.5, weighted NMS at IoU 0.3 of which
   the first (best) detection is kept (``face_detection/face_detection.pbtxt``,
   ``face_detection_short_range.pbtxt``).
3. The face ROI from the detection's keypoints: their bounding box, rotated by the right eye (0)
   → left eye (1) vector, shifted by -0.1 of its height along the face's up axis, its long side
   × 2 (``holistic_landmark/face_detection_front_detections_to_roi.pbtxt``).
4. The face-mesh model on that ROI at 192×192 in [0, 1], edges replicated: 468 landmarks (x, y,
   z in crop pixels) and a face flag, sigmoid ≥ 0.5 (``face_landmark/face_landmark_cpu.pbtxt``,
   ``tensors_to_face_landmarks.pbtxt``), projected back to the photo.

Pixel coordinates put a pixel's centre at its integer (column, row), as MediaPipe's normalised
coordinates times the photo's size do (its OpenCV warps map a crop's corners onto pixel indices)
and as ``pose.py`` does; z is scaled as x. A ROI is ``(x_centre, y_centre, side, angle)`` in
pixels, ``angle`` the direction of its x axis (y down). Crops are bilinear and rounded to whole
grey levels, as MediaPipe warps the uint8 photo.

When no face is found (``found`` false), ``face_landmarks`` is ``head_ellipse``: the face oval
landmarks (``FACE_OVAL``) on an ellipse laid out from the pose's eyes and ears, every other
landmark at its centre.
"""

import numpy as np
import tensorflow as tf

from everywear_tf.convert import tflite

DETECTOR_SIZE = 128
LANDMARKER_SIZE = 192
NUM_ANCHORS = 896
NUM_FACE_LANDMARKS = 468
NUM_POSE_LANDMARKS = 33
MIN_SCORE = 0.5  # TensorsToDetections min_score_thresh, FaceLandmark's ThresholdingCalculator
NMS_IOU = 0.3
SCORE_CLIP = 100.0

# BlazePose indices used here.
POSE_HEAD = tuple(range(11))  # nose, eyes (inner, centre, outer), ears, mouth
POSE_LEFT_EYE, POSE_RIGHT_EYE, POSE_LEFT_EAR, POSE_RIGHT_EAR = 2, 5, 7, 8
POSE_LEFT_SHOULDER, POSE_RIGHT_SHOULDER = 11, 12
VISIBLE = 0.5

# The face oval of the 468-point mesh as one closed ring (mediapipe's FACEMESH_FACE_OVAL edges,
# python/solutions/face_mesh_connections.py, chained): forehead top, the photo's right side
# (the person's left), chin (152), the other side.
FACE_OVAL = (10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378, 400,
             377, 152, 148, 176, 149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21, 54, 103, 67,
             109)
CHIN = 152

# The fallback ellipse, in units of the head's width (ear to ear, at least twice eye to eye).
_ELLIPSE_HALF_WIDTH = 0.54
_ELLIPSE_HALF_HEIGHT = 0.71
_EYES_TO_CENTRE = 0.15  # down from the eyes when the ears are not visible
_MIN_HEAD_OF_SHOULDERS = 0.35


def ssd_anchors(input_size=DETECTOR_SIZE, strides=(8, 16, 16, 16), offset=0.5):
    """Anchor centres of MediaPipe's SsdAnchorsCalculator with fixed anchor sizes.

    One aspect ratio plus the interpolated scale: two anchors per layer and cell; layers of the
    same stride share a feature map (``face_detection.pbtxt``'s options).

    Args:
        input_size: the model's square input size.
        strides: one per layer.
        offset: anchor_offset_x = anchor_offset_y.

    Returns:
        float32 [N, 2] (x, y) in [0, 1], in the model's output order.
    """
    centres = []
    layer = 0
    while layer < len(strides):
        same = layer
        while same < len(strides) and strides[same] == strides[layer]:
            same += 1
        per_cell = 2 * (same - layer)
        size = int(np.ceil(input_size / strides[layer]))
        axis = (np.arange(size) + offset) / size
        ys, xs = np.meshgrid(axis, axis, indexing='ij')
        cells = np.stack([xs.ravel(), ys.ravel()], axis=1)
        centres.append(np.repeat(cells, per_cell, axis=0))
        layer = same
    return np.concatenate(centres).astype(np.float32)


def decode_detections(regressors, classificators, anchors, scale=float(DETECTOR_SIZE)):
    """Boxes, keypoints and scores from the detector's raw outputs (TensorsToDetections).

    Args:
        regressors: float32 [B, N, 16]: x, y, w, h, then 6 keypoints (x, y), in input pixels
            relative to each anchor.
        classificators: float32 [B, N, 1] score logits.
        anchors: [N, 2] anchor centres (``ssd_anchors``).
        scale: x_scale = y_scale = w_scale = h_scale.

    Returns:
        (boxes [B, N, 4] as xmin, ymin, xmax, ymax; keypoints [B, N, 6, 2]; scores [B, N]),
        in the input's normalised coordinates.
    """
    anchors = tf.convert_to_tensor(anchors, tf.float32)
    centre = regressors[..., 0:2] / scale + anchors
    size = regressors[..., 2:4] / scale
    boxes = tf.concat([centre - size / 2, centre + size / 2], axis=-1)
    shape = tf.shape(regressors)
    keypoints = tf.reshape(regressors[..., 4:], tf.concat([shape[:2], [-1, 2]], 0)) / scale
    keypoints = keypoints + anchors[:, tf.newaxis, :]
    scores = tf.sigmoid(tf.clip_by_value(classificators[..., 0], -SCORE_CLIP, SCORE_CLIP))
    return boxes, keypoints, scores


def _iou(boxes, box):
    """IoU of boxes [B, N, 4] with one box per batch item [B, 4] (xmin, ymin, xmax, ymax)."""
    box = box[:, tf.newaxis]
    low = tf.maximum(boxes[..., :2], box[..., :2])
    high = tf.minimum(boxes[..., 2:], box[..., 2:])
    intersection = tf.reduce_prod(tf.maximum(high - low, 0.0), axis=-1)

    def area(b):
        return tf.reduce_prod(tf.maximum(b[..., 2:] - b[..., :2], 0.0), axis=-1)

    union = area(boxes) + area(box) - intersection
    return tf.math.divide_no_nan(intersection, union)


def best_detection(boxes, keypoints, scores, min_score=MIN_SCORE, iou=NMS_IOU):
    """The first detection of MediaPipe's weighted NMS: the best box averaged with its cluster.

    Detections scoring below ``min_score`` are dropped first; the cluster is every remaining
    detection whose IoU with the best one exceeds ``iou`` (itself included), weighted by score.

    Args:
        boxes: [B, N, 4] (``decode_detections``).
        keypoints: [B, N, K, 2].
        scores: [B, N].
        min_score: the detection threshold.
        iou: NMS's min_suppression_threshold.

    Returns:
        (box [B, 4], keypoints [B, K, 2], score [B] of the best detection, found [B] bool).
    """
    best = tf.argmax(scores, axis=1, output_type=tf.int32)
    best_box = tf.gather(boxes, best, batch_dims=1)
    best_score = tf.gather(scores, best, batch_dims=1)
    weights = scores * tf.cast((scores >= min_score) & (_iou(boxes, best_box) > iou), tf.float32)
    total = tf.reduce_sum(weights, axis=1)
    found = best_score >= min_score
    safe = tf.where(found, total, 1.0)[:, tf.newaxis]
    box = tf.reduce_sum(boxes * weights[..., tf.newaxis], axis=1) / safe
    points = tf.reduce_sum(keypoints * weights[..., tf.newaxis, tf.newaxis], axis=1)
    return box, points / safe[..., tf.newaxis], best_score, found


def _angle(start, end):
    """Rotation of a rect whose x axis runs from ``start`` to ``end`` ([..., 2] pixels)."""
    delta = end - start
    return tf.atan2(delta[..., 1], delta[..., 0])


def points_to_roi(points, start, end, scale, shift_y=0.0):
    """DetectionsToRects (box of the points) + RectTransformation (shift, square_long, scale).

    Args:
        points: [B, K, 2] in photo pixels; the rect is their bounding box.
        start: index of the point the rotation vector starts at.
        end: index of the point it ends at (target angle 0).
        scale: scale_x = scale_y.
        shift_y: shift along the rect's y axis, in units of the box's height.

    Returns:
        [B, 4] ROIs (x_centre, y_centre, side, angle) in pixels.
    """
    low = tf.reduce_min(points, axis=1)
    high = tf.reduce_max(points, axis=1)
    centre = (low + high) / 2
    size = high - low
    angle = _angle(points[:, start], points[:, end])
    cos, sin = tf.cos(angle), tf.sin(angle)
    shift = shift_y * size[:, 1]
    centre = centre + tf.stack([-sin * shift, cos * shift], axis=-1)
    side = tf.reduce_max(size, axis=-1) * scale
    return tf.concat([centre, side[:, tf.newaxis], angle[:, tf.newaxis]], axis=-1)


def pose_face_roi(landmarks):
    """The ROI the face detector searches, from BlazePose landmarks [B, 33, >=2] in pixels."""
    head = tf.gather(landmarks[..., :2], POSE_HEAD, axis=1)
    return points_to_roi(head, POSE_RIGHT_EYE, POSE_LEFT_EYE, 3.0)


def detection_face_roi(keypoints):
    """The face-mesh ROI from the detector's 6 keypoints [B, 6, 2] in pixels (right eye first)."""
    return points_to_roi(keypoints, 0, 1, 2.0, shift_y=-0.1)


def project(points, rois):
    """Points in a ROI's normalised coordinates [B, K, 2] (0..1) → photo pixels [B, K, 2]."""
    cx, cy, side, angle = (rois[:, i, tf.newaxis] for i in range(4))
    u = (points[..., 0] - 0.5) * side
    v = (points[..., 1] - 0.5) * side
    cos, sin = tf.cos(angle), tf.sin(angle)
    return tf.stack([cx + cos * u - sin * v, cy + sin * u + cos * v], axis=-1)


def crop(image, rois, size, replicate):
    """Bilinear crops of rotated square ROIs: output pixel (i, j) samples the ROI at (j, i) / size.

    Args:
        image: uint8 [H, W, 3] (read by gathers only, so a large photo is never converted).
        rois: [B, 4] (x_centre, y_centre, side, angle) in pixels.
        size: output side in pixels.
        replicate: True to replicate the edge pixels outside the photo (BORDER_REPLICATE), False
            for zeros (BORDER_ZERO: each tap outside contributes 0).

    Returns:
        float32 [B, size, size, 3], whole values in 0..255.
    """
    axis = tf.range(size, dtype=tf.float32) / size
    gx, gy = tf.meshgrid(axis, axis)
    grid = tf.reshape(tf.stack([gx, gy], axis=-1), [1, -1, 2])
    grid = tf.tile(grid, [tf.shape(rois)[0], 1, 1])
    position = project(grid, rois)
    shape = tf.shape(image)
    height, width = shape[0], shape[1]
    limits = tf.cast(tf.stack([width - 1, height - 1]), tf.float32)
    if replicate:
        position = tf.clip_by_value(position, 0.0, limits)
    else:
        position = tf.clip_by_value(position, -2.0, limits + 2.0)
    low = tf.floor(position)
    frac = position - low
    flat = tf.reshape(image, [-1, 3])
    total = 0.0
    for dx in (0, 1):
        for dy in (0, 1):
            tap = low + tf.constant([dx, dy], tf.float32)
            weight = ((frac[..., 0] if dx else 1.0 - frac[..., 0]) *
                      (frac[..., 1] if dy else 1.0 - frac[..., 1]))
            if not replicate:
                inside = tf.reduce_all((tap >= 0.0) & (tap <= limits), axis=-1)
                weight = weight * tf.cast(inside, tf.float32)
            index = tf.cast(tf.clip_by_value(tap, 0.0, limits), tf.int32)
            pixels = tf.gather(flat, index[..., 1] * width + index[..., 0])
            total += tf.cast(pixels, tf.float32) * weight[..., tf.newaxis]
    return tf.reshape(tf.round(total), [-1, size, size, 3])


def _visible(landmarks, index):
    return landmarks[..., index, 3] >= VISIBLE


def head_ellipse(landmarks):
    """The fallback face: an ellipse from the pose's eyes and ears, as 468 face landmarks.

    The head's width is the ear-to-ear distance (when both ears are visible), at least twice the
    eye-to-eye distance and 0.35 of the shoulders' (when visible); the centre is the ears'
    midpoint, or 0.15 widths below the eyes' midpoint. The ellipse's half axes are 0.54 and 0.71
    widths, its x axis the right → left eye direction. ``FACE_OVAL`` lies on it in ring order
    (starting at the top, going towards the person's left); the other landmarks are its centre.

    Args:
        landmarks: [..., 33, 5] BlazePose landmarks (x, y, z, visibility, presence) in pixels.

    Returns:
        float32 [..., 468, 3] (z = 0).
    """
    landmarks = tf.convert_to_tensor(landmarks, tf.float32)
    xy = landmarks[..., :2]
    eyes = xy[..., POSE_LEFT_EYE, :] - xy[..., POSE_RIGHT_EYE, :]
    ears = xy[..., POSE_LEFT_EAR, :] - xy[..., POSE_RIGHT_EAR, :]
    shoulders = xy[..., POSE_LEFT_SHOULDER, :] - xy[..., POSE_RIGHT_SHOULDER, :]
    ears_visible = _visible(landmarks, POSE_LEFT_EAR) & _visible(landmarks, POSE_RIGHT_EAR)
    shoulders_visible = (_visible(landmarks, POSE_LEFT_SHOULDER) &
                         _visible(landmarks, POSE_RIGHT_SHOULDER))
    width = tf.maximum(tf.where(ears_visible, tf.norm(ears, axis=-1), 0.0),
                       2.0 * tf.norm(eyes, axis=-1))
    width = tf.maximum(width, tf.where(shoulders_visible, _MIN_HEAD_OF_SHOULDERS *
                                       tf.norm(shoulders, axis=-1), 0.0))
    width = tf.maximum(width, 1.0)
    direction = tf.where(tf.norm(eyes, axis=-1, keepdims=True) > 0, eyes, ears)
    direction = tf.math.divide_no_nan(direction, tf.norm(direction, axis=-1, keepdims=True))
    direction = tf.where(tf.norm(direction, axis=-1, keepdims=True) > 0, direction,
                         tf.constant([1.0, 0.0]))
    down = tf.stack([-direction[..., 1], direction[..., 0]], axis=-1)
    eye_centre = (xy[..., POSE_LEFT_EYE, :] + xy[..., POSE_RIGHT_EYE, :]) / 2
    centre = tf.where(ears_visible[..., tf.newaxis],
                      (xy[..., POSE_LEFT_EAR, :] + xy[..., POSE_RIGHT_EAR, :]) / 2,
                      eye_centre + _EYES_TO_CENTRE * width[..., tf.newaxis] * down)
    t = tf.constant(2 * np.pi * np.arange(len(FACE_OVAL)) / len(FACE_OVAL), tf.float32)
    along = tf.sin(t) * _ELLIPSE_HALF_WIDTH * width[..., tf.newaxis]
    across = -tf.cos(t) * _ELLIPSE_HALF_HEIGHT * width[..., tf.newaxis]
    ring = (centre[..., tf.newaxis, :] + along[..., tf.newaxis] * direction[..., tf.newaxis, :] +
            across[..., tf.newaxis] * down[..., tf.newaxis, :])
    owner = np.full(NUM_FACE_LANDMARKS, len(FACE_OVAL))
    owner[list(FACE_OVAL)] = np.arange(len(FACE_OVAL))
    points = tf.concat([ring, centre[..., tf.newaxis, :]], axis=-2)
    points = tf.gather(points, owner, axis=-2)
    return tf.concat([points, tf.zeros_like(points[..., :1])], axis=-1)


def _output_by_size(outputs, size, model):
    matches = [name for name, tensor in outputs.items() if tensor.shape[-1] == size]
    if len(matches) != 1:
        raise ValueError(f'{model}: expected one output of last dimension {size}, got '
                         f'{ {name: tuple(t.shape) for name, t in outputs.items()} }')
    return matches[0]


class FaceModel(tf.Module):
    """The face of a photo from MediaPipe's face detector and face mesh (module docstring).

    Calling it with a photo (uint8 [H, W, 3]) and its BlazePose landmarks ([33, 5], pixels)
    returns ``{'found': bool [], 'face_landmarks': float32 [468, 3]}`` in photo pixels.
    """

    def __init__(self, detector, landmarker):
        """Wraps the two models.

        Args:
            detector: callable float32 [B, 128, 128, 3] in [-1, 1] → {'regressors' [B, 896, 16],
                'classificators' [B, 896, 1]} (the converted ``face_detection_short_range``).
            landmarker: callable float32 [B, 192, 192, 3] in [0, 1] → two outputs, landmarks
                [B, 1, 1, 1404] and the face-flag logit [B, 1, 1, 1] (told apart by size).
        """
        super().__init__(name='face_model')
        self.detector = detector
        self.landmarker = landmarker
        self.anchors = tf.constant(ssd_anchors())

    @classmethod
    def from_mediapipe(cls):
        """The model from the mediapipe wheel's ``.tflite`` files, converted to TF graphs.

        Raises:
            tflite.MediapipeNotInstalledError: mediapipe is not installed.
        """
        return cls(tflite.load(tflite.mediapipe_model_path('face_detection_short_range')),
                   tflite.load(tflite.mediapipe_model_path('face_landmark')))

    @tf.function(input_signature=[tf.TensorSpec([None, None, 3], tf.uint8, name='image'),
                                  tf.TensorSpec([NUM_POSE_LANDMARKS, 5], tf.float32,
                                                name='landmarks')])
    def __call__(self, image, landmarks):
        """The face landmarks of ``image`` near the head of ``landmarks``.

        Args:
            image: uint8 [H, W, 3] RGB photo.
            landmarks: float32 [33, 5] BlazePose landmarks (x, y in pixels, z, visibility,
                presence).

        Returns:
            {'found': bool [] (detector and face flag agree on a face), 'face_landmarks':
            float32 [468, 3] in photo pixels (``head_ellipse`` when nothing is found)}.
        """
        search = pose_face_roi(landmarks[tf.newaxis])
        pixels = crop(image, search, DETECTOR_SIZE, replicate=False)
        raw = self.detector(pixels / 127.5 - 1.0)
        boxes, keypoints, scores = decode_detections(raw['regressors'], raw['classificators'],
                                                     self.anchors)
        _, points, _, detected = best_detection(boxes, keypoints, scores)
        roi = detection_face_roi(project(points, search))
        face = self.landmarker(crop(image, roi, LANDMARKER_SIZE, replicate=True) / 255.0)
        mesh = face[_output_by_size(face, 3 * NUM_FACE_LANDMARKS, 'face_landmark')]
        flag = face[_output_by_size(face, 1, 'face_landmark')]
        mesh = tf.reshape(mesh, [-1, NUM_FACE_LANDMARKS, 3]) / LANDMARKER_SIZE
        xy = project(mesh[..., :2], roi)
        z = mesh[..., 2:] * roi[:, tf.newaxis, 2:3]
        found = detected[0] & (tf.sigmoid(tf.reshape(flag, [-1])[0]) >= MIN_SCORE)
        fallback = head_ellipse(landmarks)
        face_landmarks = tf.where(found, tf.concat([xy, z], axis=-1)[0], fallback)
        return {'found': found, 'face_landmarks': face_landmarks}
