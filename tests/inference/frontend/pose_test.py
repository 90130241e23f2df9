"""BlazePose in the graph: each numeric piece against NumPy float64, the pipeline on photos.

The pieces (anchors, box and keypoint decoding, weighted NMS, letterbox, ROI, crop transform,
heatmap refinement, 33 → 18 mapping) are checked against float64 NumPy written from MediaPipe's
calculators, and the crop against OpenCV's warpPerspective as MediaPipe calls it. The pipeline
runs on scikit-image's astronaut (half-body portrait) and camera man, on drawn synthetic persons
with ground-truth keypoints (PCK@0.1 of the torso height), on blank and noise images, against
MediaPipe's own Python solution when it imports, and as a SavedModel in a fresh process.
"""

import math
import subprocess
import sys
import textwrap

import cv2
import numpy as np
import pytest
import tensorflow as tf
from tensorflow.python.framework import op_def_registry

from everywear_tf import spec
from everywear_tf.convert import tflite
from everywear_tf.data import keypoints as coco
from everywear_tf.data import synthetic_tryon
from everywear_tf.inference.frontend import pose

from tests import graph_ops

try:
    for _name in ('pose_detection', 'pose_landmark_full'):
        tflite.mediapipe_model_path(_name)
except tflite.MediapipeNotInstalledError as _error:
    pytest.skip(f'{_error} (the pose front end runs the models of that wheel)',
                allow_module_level=True)

_RNG = np.random.default_rng(20240612)


# ---------------------------------------------------------------------------------------------
# NumPy float64 references, written from MediaPipe's calculators.

def _anchors_reference():
    """SsdAnchorsCalculator for pose_detection_cpu.pbtxt's options (fixed_anchor_size)."""
    strides = [8, 16, 32, 32, 32]
    anchors, layer = [], 0
    while layer < len(strides):
        per_location = 0
        last = layer
        while last < len(strides) and strides[last] == strides[layer]:
            per_location += 2  # aspect_ratios: 1.0, plus interpolated_scale_aspect_ratio 1.0
            last += 1
        cells = int(math.ceil(224 / strides[layer]))
        for y in range(cells):
            for x in range(cells):
                for _ in range(per_location):
                    anchors.append(((x + 0.5) / cells, (y + 0.5) / cells))
        layer = last
    return np.array(anchors, np.float64)


def _decode_reference(raw_boxes, raw_scores, anchors):
    """TensorsToDetectionsCalculator::DecodeBoxes (reverse_output_order, scales 224)."""
    raw = raw_boxes.astype(np.float64)
    x = raw[..., 0] / 224 + anchors[:, 0]
    y = raw[..., 1] / 224 + anchors[:, 1]
    w, h = raw[..., 2] / 224, raw[..., 3] / 224
    boxes = np.stack([y - h / 2, x - w / 2, y + h / 2, x + w / 2], axis=-1)
    keypoints = np.empty(raw.shape[:-1] + (4, 2))
    for k in range(4):
        keypoints[..., k, 0] = raw[..., 4 + 2 * k] / 224 + anchors[:, 0]
        keypoints[..., k, 1] = raw[..., 5 + 2 * k] / 224 + anchors[:, 1]
    scores = 1 / (1 + np.exp(-np.clip(raw_scores[..., 0].astype(np.float64), -100, 100)))
    return boxes, keypoints, scores


def _iou_reference(a, b):
    ymin, xmin = max(a[0], b[0]), max(a[1], b[1])
    ymax, xmax = min(a[2], b[2]), min(a[3], b[3])
    if ymax <= ymin or xmax <= xmin:
        return 0.0
    inter = (ymax - ymin) * (xmax - xmin)
    area = lambda r: (r[2] - r[0]) * (r[3] - r[1])  # noqa: E731
    return inter / (area(a) + area(b) - inter)


def _weighted_nms_reference(boxes, keypoints, scores, min_score=0.5, threshold=0.3):
    """NonMaxSuppressionCalculator's WeightedNonMaxSuppression, after the score filter."""
    remained = sorted((i for i in range(len(scores)) if scores[i] >= min_score),
                      key=lambda i: -scores[i])
    out = []
    while remained:
        top = remained[0]
        candidates = [i for i in remained if _iou_reference(boxes[i], boxes[top]) > threshold]
        remained = [i for i in remained if i not in candidates]
        weights = np.array([scores[i] for i in candidates])
        box = (weights[:, None] * boxes[candidates]).sum(0) / weights.sum()
        points = (weights[:, None, None] * keypoints[candidates]).sum(0) / weights.sum()
        out.append((box, points, scores[top]))
    return out


def _normalize_radians(angle):
    return angle - 2 * math.pi * math.floor((angle - (-math.pi)) / (2 * math.pi))


def _roi_reference(start, end, width, height, scale=1.25):
    """AlignmentPointsRectsCalculator + RectTransformationCalculator on normalised rects."""
    x0, y0 = start
    x1, y1 = end
    box = math.sqrt((x1 - x0) ** 2 + (y1 - y0) ** 2) * 2.0
    rect = [x0 / width, y0 / height, box / width, box / height]
    rotation = _normalize_radians(math.pi / 2 - math.atan2(-(y1 - y0), x1 - x0))
    long_side = max(rect[2] * width, rect[3] * height)
    rect[2], rect[3] = long_side / width * scale, long_side / height * scale
    return np.array([rect[0] * width, rect[1] * height, rect[2] * width, rect[3] * height,
                     rotation])


def _opencv_matrix(roi, size=256):
    """The photo → crop matrix of ImageToTensorConverter's OpenCV path."""
    rect = ((float(roi[0]), float(roi[1])), (float(roi[2]), float(roi[3])),
            float(np.degrees(roi[4])))
    source = cv2.boxPoints(rect).astype(np.float32)
    target = np.array([[0, size], [0, 0], [size, 0], [size, size]], np.float32)
    return cv2.getPerspectiveTransform(source, target).astype(np.float64)


def _apply(matrix, points):
    h = np.concatenate([points, np.ones(points.shape[:-1] + (1,))], axis=-1) @ matrix.T
    return h[..., :2] / h[..., 2:]


def _refine_reference(xy, heatmap, kernel=7, min_confidence=0.5):
    """RefineLandmarksFromHeatMap, one landmark list at a time."""
    out = xy.astype(np.float64).copy()
    height, width, channels = heatmap.shape
    for index in range(channels):
        col, row = int(xy[index, 0] * width), int(xy[index, 1] * height)
        if col < 0 or col >= width or row < 0 or col >= height:
            continue
        offset = (kernel - 1) // 2
        total = weighted_col = weighted_row = peak = 0.0
        for r in range(max(0, row - offset), min(height, row + offset + 1)):
            for c in range(max(0, col - offset), min(width, col + offset + 1)):
                confidence = 1 / (1 + math.exp(-float(heatmap[r, c, index])))
                total += confidence
                peak = max(peak, confidence)
                weighted_col += c * confidence
                weighted_row += r * confidence
        if peak >= min_confidence and total > 0:
            out[index] = (weighted_col / width / total, weighted_row / height / total)
    return out


_BLAZE = {'nose': 0, 'l_eye': 2, 'r_eye': 5, 'l_ear': 7, 'r_ear': 8, 'l_shoulder': 11,
          'r_shoulder': 12, 'l_elbow': 13, 'r_elbow': 14, 'l_wrist': 15, 'r_wrist': 16,
          'l_hip': 23, 'r_hip': 24, 'l_knee': 25, 'r_knee': 26, 'l_ankle': 27, 'r_ankle': 28}
_COCO_NAMES = ('nose', 'neck', 'r_shoulder', 'r_elbow', 'r_wrist', 'l_shoulder', 'l_elbow',
               'l_wrist', 'r_hip', 'r_knee', 'r_ankle', 'l_hip', 'l_knee', 'l_ankle', 'r_eye',
               'l_eye', 'r_ear', 'l_ear')


def _coco18_reference(landmarks, height, width, threshold=0.5):
    out = np.zeros((18, 3))
    for i, name in enumerate(_COCO_NAMES):
        if name == 'neck':
            left, right = landmarks[11], landmarks[12]
            x, y = (left[0] + right[0]) / 2, (left[1] + right[1]) / 2
            visibility = min(left[3], right[3])
        else:
            x, y, _, visibility, _ = landmarks[_BLAZE[name]]
        if visibility >= threshold and 0 <= x <= width - 1 and 0 <= y <= height - 1:
            out[i] = x, y, visibility
    return out


# ---------------------------------------------------------------------------------------------
# The pieces.

def test_anchors():
    anchors = pose.ssd_anchors()
    assert anchors.shape == (pose.NUM_BOXES, 2) == (2254, 2)
    np.testing.assert_allclose(anchors, _anchors_reference(), atol=1e-7)
    np.testing.assert_allclose(anchors[0], [0.5 / 28, 0.5 / 28], atol=1e-7)
    np.testing.assert_allclose(anchors[1], anchors[0])  # two anchors per location
    np.testing.assert_allclose(anchors[2], [1.5 / 28, 0.5 / 28], atol=1e-7)
    np.testing.assert_allclose(anchors[28 * 28 * 2], [0.5 / 14, 0.5 / 14], atol=1e-7)
    np.testing.assert_allclose(anchors[28 * 28 * 2 + 14 * 14 * 2], [0.5 / 7, 0.5 / 7], atol=1e-7)
    np.testing.assert_allclose(anchors[-6:], [[6.5 / 7, 6.5 / 7]] * 6, atol=1e-7)


def test_decode_detections_batched():
    anchors = pose.ssd_anchors()
    raw = _RNG.normal(0, 30, (3, pose.NUM_BOXES, 12)).astype(np.float32)
    logits = _RNG.normal(0, 80, (3, pose.NUM_BOXES, 1)).astype(np.float32)
    boxes, keypoints, scores = pose.decode_detections(raw, logits, anchors)
    expected = _decode_reference(raw, logits, anchors.astype(np.float64))
    for got, want in zip((boxes, keypoints, scores), expected):
        assert got.shape == want.shape
        np.testing.assert_allclose(got.numpy(), want, atol=2e-6)


def _clustered_detections(rng, clusters=4, per_cluster=6):
    centres = rng.uniform(0.2, 0.8, (clusters, 2))
    sizes = rng.uniform(0.05, 0.3, clusters)
    boxes, keypoints = [], []
    for centre, side in zip(centres, sizes):
        for _ in range(per_cluster):
            c = centre + rng.normal(0, side * 0.15, 2)
            s = side * rng.uniform(0.8, 1.2, 2)
            boxes.append([c[1] - s[1] / 2, c[0] - s[0] / 2, c[1] + s[1] / 2, c[0] + s[0] / 2])
            keypoints.append(c + rng.normal(0, 0.05, (4, 2)))
    scores = rng.uniform(0.3, 1.0, len(boxes))
    return (np.array(boxes, np.float32), np.array(keypoints, np.float32),
            scores.astype(np.float32))


@pytest.mark.parametrize('seed', range(5))
def test_weighted_nms(seed):
    boxes, keypoints, scores = _clustered_detections(np.random.default_rng(seed))
    got_boxes, got_keypoints, got_scores = (t.numpy() for t in pose.weighted_nms(
            boxes, keypoints, scores))
    expected = _weighted_nms_reference(boxes.astype(np.float64), keypoints.astype(np.float64),
                                       scores.astype(np.float64))
    assert len(got_scores) == len(expected) > 0
    for i, (box, points, score) in enumerate(expected):
        np.testing.assert_allclose(got_boxes[i], box, atol=1e-6)
        np.testing.assert_allclose(got_keypoints[i], points, atol=1e-6)
        assert got_scores[i] == pytest.approx(score)


def test_weighted_nms_keeps_nothing_below_the_score():
    boxes, keypoints, scores = _clustered_detections(np.random.default_rng(9))
    kept = pose.weighted_nms(boxes, keypoints, np.minimum(scores, 0.499))
    assert [t.shape[0] for t in kept] == [0, 0, 0]


@pytest.mark.parametrize('height,width', [(300, 200), (200, 300), (224, 224)])
def test_letterbox(height, width):
    scale, offset = pose.letterbox_transform(height, width)
    points = _RNG.uniform(0, 1, (5, 2))  # normalised to the letterboxed square
    got = points * 224 * scale.numpy() + offset.numpy()
    # DetectionLetterboxRemovalCalculator: padding normalised to the square, then the image.
    side = max(height, width)
    pad_x, pad_y = (side - width) / 2 / side, (side - height) / 2 / side
    expected = np.stack([(points[:, 0] - pad_x) / (1 - 2 * pad_x) * width,
                         (points[:, 1] - pad_y) / (1 - 2 * pad_y) * height], axis=-1)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-3)


def test_letterbox_pixels_match_opencv():
    image = cv2.GaussianBlur(_RNG.integers(0, 256, (150, 100, 3)).astype(np.uint8), (5, 5), 2)
    scale, offset = pose.letterbox_transform(150, 100)
    z = 0.0
    transform = [[scale, z, offset[0], z, scale, offset[1], z, z]]
    got = pose.warp(tf.cast(image[None], tf.float32), transform, 224, 224, 'CONSTANT')
    matrix = np.linalg.inv(np.array([[float(scale), 0, float(offset[0])],
                                     [0, float(scale), float(offset[1])], [0, 0, 1]]))
    expected = cv2.warpPerspective(image, matrix, (224, 224), flags=cv2.INTER_LINEAR,
                                   borderMode=cv2.BORDER_CONSTANT)
    difference = np.abs(np.round(got[0].numpy()) - expected)
    assert difference.mean() < 0.3 and difference.max() <= 3


def _random_rois(count, width=640, height=480):
    start = _RNG.uniform([50, 50], [width - 50, height - 50], (count, 2))
    end = start + _RNG.normal(0, 80, (count, 2))
    return start, end


def test_alignment_roi_batched():
    width, height = 640, 480
    start, end = _random_rois(16, width, height)
    got = pose.alignment_roi(start.reshape(4, 4, 2), end.reshape(4, 4, 2)).numpy().reshape(16, 5)
    expected = np.array([_roi_reference(s, e, width, height) for s, e in zip(start, end)])
    np.testing.assert_allclose(got[:, :4], expected[:, :4], rtol=1e-5, atol=1e-3)
    turn = np.angle(np.exp(1j * (got[:, 4] - expected[:, 4])))
    np.testing.assert_allclose(turn, 0, atol=1e-5)
    assert np.all((got[:, 4] >= -math.pi) & (got[:, 4] < math.pi))
    # An upright person (hips below the scale point, straight up) gets no rotation.
    upright = pose.alignment_roi([100.0, 300.0], [100.0, 200.0]).numpy()
    np.testing.assert_allclose(upright, [100, 300, 250, 250, 0], atol=1e-4)
    # Leaning to the image's right by 90°: the crop turns a quarter.
    lying = pose.alignment_roi([100.0, 300.0], [200.0, 300.0]).numpy()
    np.testing.assert_allclose(lying[4], math.pi / 2, atol=1e-6)


def test_crop_transforms_match_opencv_batched():
    start, end = _random_rois(6)
    rois = pose.alignment_roi(start, end).numpy()
    points = _RNG.uniform(0, 640, (6, 7, 2)).astype(np.float32)
    crop = pose.photo_to_crop(points, rois).numpy()
    back = pose.crop_to_photo(crop, rois).numpy()
    transforms = pose.crop_transform(rois).numpy()
    for roi, photo_points, crop_points, transform in zip(rois, points, crop, transforms):
        matrix = _opencv_matrix(roi)
        np.testing.assert_allclose(crop_points, _apply(matrix, photo_points), atol=2e-3)
        as_matrix = np.append(transform, 1.0).reshape(3, 3)
        np.testing.assert_allclose(as_matrix, np.linalg.inv(matrix), rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(back, points, atol=2e-3)
    # The ROI's centre is the crop's centre, its corners the crop's corners (OpenCV's box
    # points: bottom-left, top-left, top-right, bottom-right → (0, 256), (0, 0), ...).
    corners = cv2.boxPoints(((float(rois[0, 0]), float(rois[0, 1])),
                             (float(rois[0, 2]), float(rois[0, 3])), float(np.degrees(rois[0, 4]))))
    np.testing.assert_allclose(pose.photo_to_crop(corners[None], rois[0]).numpy()[0],
                               [[0, 256], [0, 0], [256, 0], [256, 256]], atol=2e-3)


def test_crop_pixels_match_opencv_and_a_dot_lands_where_expected():
    image = cv2.GaussianBlur(_RNG.integers(0, 256, (300, 400, 3)).astype(np.uint8), (7, 7), 3)
    start, end = np.array([[180.0, 200.0], [350.0, 40.0]]), np.array([[160.0, 120.0],
                                                                        [420.0, 90.0]])
    rois = pose.alignment_roi(start, end)  # the second crop runs off the photo: edge replicated
    crops = pose.warp(tf.cast(np.stack([image, image]), tf.float32), pose.crop_transform(rois),
                      256, 256, 'NEAREST').numpy()
    for roi, got in zip(rois.numpy(), crops):
        expected = cv2.warpPerspective(image, _opencv_matrix(roi), (256, 256),
                                       flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        difference = np.abs(np.round(got) - expected)
        assert difference.mean() < 0.3 and difference.max() <= 3
    dot = np.zeros((300, 400, 1), np.float32)
    dot[150, 170] = 1.0
    target = pose.photo_to_crop([[170.0, 150.0]], rois[0]).numpy()[0]
    crop = pose.warp(dot[None], pose.crop_transform(rois[:1]), 256, 256, 'CONSTANT')[0, ..., 0]
    row, col = np.unravel_index(np.argmax(crop.numpy()), crop.shape)
    assert np.hypot(col - target[0], row - target[1]) < 1.5


def test_uncrop_transform_inverts_the_crop_at_another_resolution():
    start, end = _random_rois(3)
    rois = pose.alignment_roi(start, end)
    scale = (0.5, 0.25)  # an output pixel is 0.5 × 0.25 pixels of the cropped image
    transforms = pose.uncrop_transform(rois, scale=scale).numpy()
    photo = _RNG.uniform(0, 1000, (3, 5, 2))
    working = (photo + 0.5) * scale - 0.5
    expected = pose.photo_to_crop(working, rois).numpy()
    for transform, points, want in zip(transforms, photo, expected):
        np.testing.assert_allclose(_apply(np.append(transform, 1.0).reshape(3, 3), points), want,
                                   rtol=1e-4, atol=5e-3)


def test_refine_from_heatmap_batched():
    heatmap = _RNG.normal(-1, 2, (2, 64, 64, 39)).astype(np.float32)
    heatmap[1] -= 3  # mostly below the 0.5 confidence: many landmarks stay as they are
    xy = _RNG.uniform(-0.1, 1.1, (2, 39, 2)).astype(np.float32)
    xy[0, :4] = [[0.0, 0.0], [0.999, 0.5], [0.5, 1.02], [-0.01, 0.5]]  # edges; row 65; col -0.6
    got = pose.refine_from_heatmap(xy, heatmap).numpy()
    for b in range(2):
        np.testing.assert_allclose(got[b], _refine_reference(xy[b], heatmap[b]), atol=1e-5)
    assert np.any(got[1] == xy[1]) and np.any(got[0] != xy[0])


def test_decode_landmarks_batched():
    raw = _RNG.normal(0, 60, (2, 195)).astype(np.float32) + np.tile([128, 128, 0, 0, 0], 39)
    heatmap = _RNG.normal(-2, 2, (2, 64, 64, 39)).astype(np.float32)
    got = pose.decode_landmarks(raw, heatmap).numpy()
    values = raw.reshape(2, 39, 5).astype(np.float64)
    for b in range(2):
        xy = _refine_reference(values[b, :, :2] / 256, heatmap[b])
        expected = np.concatenate([xy, values[b, :, 2:3] / 256,
                                   1 / (1 + np.exp(-values[b, :, 3:5]))], axis=-1)
        np.testing.assert_allclose(got[b], expected, atol=1e-5)


def test_coco18_mapping_batched():
    height, width = 200, 300
    landmarks = np.zeros((4, 33, 5), np.float32)
    landmarks[..., 0] = _RNG.uniform(-30, width + 30, (4, 33))
    landmarks[..., 1] = _RNG.uniform(-30, height + 30, (4, 33))
    landmarks[..., 3] = _RNG.uniform(0.3, 0.7, (4, 33))
    landmarks[..., 4] = _RNG.uniform(0, 1, (4, 33))
    landmarks[0, 0, :2], landmarks[0, 0, 3] = (width - 1, 0), 0.5  # on the edge, at threshold
    got = pose.to_coco18(landmarks, height, width).numpy()
    for b in range(4):
        np.testing.assert_allclose(got[b], _coco18_reference(landmarks[b], height, width),
                                   atol=1e-5)
    assert got[0, coco.NOSE, 2] == pytest.approx(0.5)
    assert 0 < (got[..., 2] > 0).mean() < 1


def test_working_size():
    assert list(pose.working_size(480, 640).numpy()) == [480, 640]
    assert list(pose.working_size(4000, 3000).numpy()) == [1024, 768]
    assert list(pose.working_size(3000, 4001).numpy()) == [768, 1024]


# ---------------------------------------------------------------------------------------------
# The pipeline.

@pytest.fixture(scope='module')
def model():
    return pose.PoseModel.from_mediapipe()


def _skimage(name):
    data = pytest.importorskip('skimage.data')
    image = getattr(data, name)()
    return np.stack([image] * 3, axis=-1) if image.ndim == 2 else image


def _run(model, image):
    return {k: v.numpy() for k, v in model(tf.constant(image)).items()}


@pytest.mark.slow
def test_astronaut_half_body_portrait(model):
    """One person; her face is at about x 170-280, y 50-170 of the 512×512 portrait, her
    shoulders at y 200-300 beyond x < 180 (her right, the image's left) and x > 260."""
    out = _run(model, _skimage('astronaut'))
    assert out['people'] == 1 and out['pose_score'] > 0.9
    k = out['keypoints']
    assert k.shape == (18, 3) and out['landmarks'].shape == (33, 5)
    nose, r_eye, l_eye = k[coco.NOSE], k[coco.R_EYE], k[coco.L_EYE]
    assert 200 < nose[0] < 245 and 110 < nose[1] < 150
    assert r_eye[0] + 20 < l_eye[0] and r_eye[0] < nose[0] < l_eye[0]
    for eye in (r_eye, l_eye):
        assert 5 < nose[1] - eye[1] < 40 and eye[2] >= 0.5
    assert k[coco.R_SHOULDER, 0] < 180 < 260 < k[coco.L_SHOULDER, 0]
    for shoulder in (k[coco.R_SHOULDER], k[coco.L_SHOULDER]):
        assert 200 < shoulder[1] < 300 and shoulder[2] >= 0.5
    neck = (k[coco.R_SHOULDER, :2] + k[coco.L_SHOULDER, :2]) / 2
    np.testing.assert_allclose(k[coco.NECK, :2], neck, atol=1e-3)
    # Half body: no hips, knees or ankles.
    for i in (coco.R_HIP, coco.R_KNEE, coco.R_ANKLE, coco.L_HIP, coco.L_KNEE, coco.L_ANKLE):
        np.testing.assert_array_equal(k[i], [0, 0, 0])
    mask = out['mask']
    assert mask.shape == (512, 512) and mask[120, 220] > 0.9 and mask[350, 200] > 0.9
    assert mask[20, 500] < 0.1 and mask[300, 480] < 0.5
    assert out['roi'][2] > 0 and abs(out['roi'][4]) < 0.5


@pytest.mark.slow
def test_camera_man(model):
    """A person found; nose and eyes inside his head (about x 150-280, y 80-200)."""
    out = _run(model, _skimage('camera'))
    assert out['people'] >= 1
    for i in (coco.NOSE, coco.R_EYE, coco.L_EYE):
        x, y, confidence = out['keypoints'][i]
        assert confidence >= 0.5 and 150 < x < 280 and 80 < y < 200, (i, x, y)


@pytest.mark.slow
@pytest.mark.parametrize('axis', [0, 1])
def test_detections_undo_the_letterbox(model, axis):
    """A 512×384 (or 384×512) photo and the same photo padded with black to 512×512 give the
    detector the same letterboxed input: the detections differ by the padding's offset."""
    photo = _skimage('astronaut')
    cut = photo[:, 64:448] if axis == 1 else photo[64:448]
    padded = np.zeros_like(photo)
    if axis == 1:
        padded[:, 64:448] = cut
    else:
        padded[64:448] = cut
    offset = np.array([64.0, 0.0] if axis == 1 else [0.0, 64.0])
    detect = lambda image: model._detect(tf.cast(image[None], tf.float32),  # noqa: E731
                                         *image.shape[:2]).numpy()
    got, expected = detect(cut), detect(padded) - offset
    assert got.shape == expected.shape and got.shape[0] >= 1
    np.testing.assert_allclose(got, expected, atol=0.05)


@pytest.mark.slow
def test_big_photos_are_reduced_and_answered_in_their_own_pixels(model):
    """A photo twice the working size with each pixel doubled reduces to the photo itself: the
    same pose, in the big photo's pixels."""
    photo = _skimage('astronaut')
    base = _run(model, photo)
    small = pose.PoseModel(model.detector, model.landmarker, limit=512)
    big = np.repeat(np.repeat(photo, 2, axis=0), 2, axis=1)
    large = _run(small, big)
    assert large['people'] == 1 and large['mask'].shape == (1024, 1024)
    seen = base['keypoints'][:, 2] > 0
    np.testing.assert_array_equal(large['keypoints'][:, 2] > 0, seen)
    np.testing.assert_allclose(large['keypoints'][seen, :2],
                               (base['keypoints'][seen, :2] + 0.5) * 2 - 0.5, atol=0.01)
    np.testing.assert_allclose(large['landmarks'][:, :3], base['landmarks'][:, :3] * [2, 2, 2]
                               + [0.5, 0.5, 0.0], atol=0.02)
    np.testing.assert_allclose(large['roi'], base['roi'] * [2, 2, 2, 2, 1] + [0.5, 0.5, 0, 0, 0],
                               atol=0.01)
    reduced = large['mask'].reshape(512, 2, 512, 2).mean(axis=(1, 3))
    assert np.abs(reduced - base['mask']).max() < 0.05
    # Three times the default working size (1024): reduced by 1.5 to it, the model sees other
    # pixels; the head and shoulders stay within 3% of the photo's side of where they were.
    huge = _run(model, np.repeat(np.repeat(photo, 3, axis=0), 3, axis=1))
    assert huge['people'] == 1 and huge['mask'].shape == (1536, 1536)
    for i in (coco.NOSE, coco.R_EYE, coco.L_EYE, coco.R_SHOULDER, coco.L_SHOULDER):
        assert huge['keypoints'][i, 2] > 0
        moved = (base['keypoints'][i, :2] + 0.5) * 3 - 0.5
        error = np.hypot(*(huge['keypoints'][i, :2] - moved))
        assert error < 0.03 * 1536, (i, error)


_MAX_ERROR = 0.1  # PCK@0.1 of the torso height (neck to mid-hip)


@pytest.mark.slow
def test_synthetic_persons_pck(model, record_property):
    errors, hits, seen = [], 0, 0
    for i in range(8):
        category = spec.CATEGORIES[i % len(spec.CATEGORIES)]
        style, product = synthetic_tryon.item(7, i, category, 512, 384)
        sample = synthetic_tryon.dress(style, product, category)
        out = _run(model, sample.person)
        assert out['people'] == 1, f'drawn person {i} ({category}) not detected'
        truth, got = sample.keypoints, out['keypoints']
        torso = np.hypot(*(truth[coco.NECK, :2] - (truth[coco.R_HIP, :2]
                                                   + truth[coco.L_HIP, :2]) / 2))
        for j in np.flatnonzero(truth[:, 2] > 0):
            seen += 1
            error = np.hypot(*(got[j, :2] - truth[j, :2])) if got[j, 2] > 0 else np.inf
            errors.append(error)
            hits += error <= _MAX_ERROR * torso
    pck, median = hits / seen, float(np.median(errors))
    record_property('pck', pck)
    record_property('median_px', median)
    print(f'synthetic persons (512×384): PCK@0.1 {pck:.3f} over {seen} keypoints, '
          f'median error {median:.1f} px')
    assert pck >= 0.9, (pck, median)


@pytest.mark.slow
@pytest.mark.parametrize('kind', ['blank', 'noise'])
def test_no_person(model, kind):
    image = (np.full((300, 400, 3), 255, np.uint8) if kind == 'blank' else
             np.random.default_rng(3).integers(0, 256, (300, 400, 3), dtype=np.uint8))
    out = _run(model, image)
    assert out['people'] == 0
    for key in ('landmarks', 'keypoints', 'mask', 'roi'):
        assert not out[key].any(), key
    assert out['mask'].shape == (300, 400)


@pytest.mark.slow
def test_matches_mediapipes_own_solution(model):
    """MediaPipe's Python solution (static images, full model) on the astronaut: the landmarks
    it is sure of within 2 px, visibility within 0.05, the masks' IoU above 0.95."""
    try:
        import mediapipe  # noqa: F401  (many seconds; only here)
        from mediapipe.python.solutions import pose as mediapipe_pose
    except Exception as e:  # noqa: BLE001 (any import failure means no oracle)
        pytest.skip(f'mediapipe does not import: {e}')
    photo = _skimage('astronaut')
    with mediapipe_pose.Pose(static_image_mode=True, model_complexity=1,
                             enable_segmentation=True) as solution:
        result = solution.process(photo)
    height, width = photo.shape[:2]
    reference = np.array([(p.x * width, p.y * height, p.visibility)
                          for p in result.pose_landmarks.landmark])
    out = _run(model, photo)
    sure = reference[:, 2] > 0.9
    assert sure.sum() >= 10
    error = np.hypot(*(out['landmarks'][sure, :2] - reference[sure, :2]).T)
    assert error.max() < 2.0, error
    np.testing.assert_allclose(out['landmarks'][:, 3], reference[:, 2], atol=0.05)
    ours, theirs = out['mask'] > 0.5, result.segmentation_mask > 0.5
    assert (ours & theirs).sum() / (ours | theirs).sum() > 0.95


@pytest.mark.slow
def test_graph_holds_core_ops_only(model):
    function = model.__call__.get_concrete_function()
    types = graph_ops.op_types(function)
    assert graph_ops.custom_ops(function) == []
    assert 'ImageProjectiveTransformV3' in types
    assert any(op.startswith('NonMaxSuppression') for op in types)
    assert not [op for op in types if op.startswith(('TFL', 'TfLite', 'PyFunc', 'EagerPyFunc'))]
    assert all(op_def_registry.get(op) is not None for op in types), types


_FRESH = textwrap.dedent('''
    import sys
    import numpy as np
    import tensorflow as tf
    from everywear_tf.export import opcheck
    missing = opcheck.unregistered_ops(sys.argv[1])
    assert not missing, missing
    loaded = tf.saved_model.load(sys.argv[1])
    out = loaded.signatures['serving_default'](image=tf.constant(np.load(sys.argv[2])))
    np.savez(sys.argv[3], **{k: v.numpy() for k, v in out.items()})
    assert 'tensorflow_addons' not in sys.modules and 'mediapipe' not in sys.modules
    print('ran', sorted(out))
''')


class _Serving(tf.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model

    @tf.function(input_signature=[tf.TensorSpec([None, None, 3], tf.uint8, name='image')])
    def serve(self, image):
        return self.model(image)


@pytest.mark.slow
def test_saved_model_runs_in_a_fresh_process(model, tmp_path):
    serving = _Serving(model)
    directory = tmp_path / 'pose' / '1'
    tf.saved_model.save(serving, str(directory), signatures={'serving_default': serving.serve})
    photo = _skimage('astronaut')[:400, 50:450]
    np.save(tmp_path / 'photo.npy', photo)
    result = subprocess.run([sys.executable, '-c', _FRESH, str(directory),
                             str(tmp_path / 'photo.npy'), str(tmp_path / 'out.npz')],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    expected = _run(model, photo)
    with np.load(tmp_path / 'out.npz') as got:
        assert sorted(got) == sorted(expected)
        for key, value in expected.items():
            np.testing.assert_allclose(got[key], value, rtol=1e-4, atol=1e-3, err_msg=key)
    assert expected['people'] == 1
