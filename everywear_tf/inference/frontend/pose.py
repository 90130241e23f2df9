"""The photo's pose in the graph: MediaPipe's BlazePose (detector + full landmark model).

``PoseModel`` runs MediaPipe's single-image pose pipeline (``pose_landmark_cpu.pbtxt`` with
static images) with the two models the ``mediapipe==0.10.21`` wheel ships, converted to core-TF
graphs by ``convert.tflite``, so that the whole front end is one graph stock TF Serving can run:

1. The photo (uint8 [H, W, 3], any size) is area-reduced to a working size (longer side at most
   ``working_size``) so memory stays bounded; every output is in the original photo's pixels.
2. Letterbox to 224×224 in [-1, 1], zero border (``pose_detection_cpu.pbtxt``,
   ImageToTensorCalculator: keep_aspect_ratio, BORDER_ZERO).
3. The detector's 2254 boxes decoded on SSD anchors (SsdAnchorsCalculator: 5 layers, strides 8,
   16, 32, 32, 32, offset 0.5, fixed anchor size; TensorsToDetectionsCalculator: 12 coordinates,
   x/y/w/h scale 224, 4 keypoints, scores sigmoid of the logit clipped to ±100, kept when ≥ 0.5),
   then weighted non-maximum suppression at IoU 0.3 (NonMaxSuppressionCalculator, WEIGHTED:
   each kept box and its keypoints are the score-weighted mean of the boxes it suppressed),
   and the letterbox undone (DetectionLetterboxRemovalCalculator).
4. The person's ROI (``pose_detection_to_roi.pbtxt``): centre at detection keypoint 0 (mid hip),
   side twice its distance to keypoint 1, rotated so that keypoint 0 → 1 points up
   (AlignmentPointsRectsCalculator, target angle 90°), scaled 1.25 and squared on its long side
   (RectTransformationCalculator).
5. The rotated ROI cropped to 256×256 in [0, 1] with bilinear sampling and edge replication
   (``pose_landmark_by_roi_cpu.pbtxt``: ImageToTensorCalculator's default BORDER_REPLICATE), with
   ``tf.raw_ops.ImageProjectiveTransformV3``, as OpenCV's warpPerspective maps the ROI's corners
   onto the crop's (0, 0) … (256, 256).
6. Landmarks decoded (``tensors_to_pose_landmarks_and_segmentation.pbtxt``): 39 landmarks in crop
   pixels / 256, visibility and presence through a sigmoid, x and y refined on the heatmap
   (RefineLandmarksFromHeatmapCalculator, 7×7 kernel, min confidence 0.5), projected back
   through the ROI (LandmarkProjectionCalculator); the pose is present when the model's pose
   flag is ≥ 0.5 (ThresholdingCalculator). The segmentation is a sigmoid of its logits, warped
   back to the photo with a zero border (``pose_landmarks_and_segmentation_inverse_projection``).
7. Optionally (``passes=2``) the landmark model runs again on the ROI the first pass's auxiliary
   landmarks 33 and 34 give (``pose_landmarks_to_roi.pbtxt``: same alignment, scale 1.25), which
   MediaPipe does on the next video frame.

Pixel coordinates put a pixel's centre at its integer (column, row), as OpenCV and OpenPose do.
When several people are found, the chosen one is the most prominent: the largest body box side
(twice the hip-centre to scale-point distance, before the 1.25 margin) minus the distance from
the body box's centre to the photo's centre, both in pixels (MediaPipe takes the top score).
"""

import math

import numpy as np
import tensorflow as tf

from everywear_tf.convert import tflite
from everywear_tf.data import keypoints as coco

DETECTOR_SIZE = 224
LANDMARK_SIZE = 256
WORKING_SIZE = 1024
# pose_detection_cpu.pbtxt
ANCHOR_STRIDES = (8, 16, 32, 32, 32)
ANCHOR_OFFSET = 0.5
ANCHORS_PER_LAYER = 2  # aspect ratio 1.0 plus the interpolated scale (aspect 1.0)
NUM_BOXES = 2254
NUM_DETECTION_KEYPOINTS = 4
BOX_SCALE = 224.0
SCORE_CLIP = 100.0
MIN_DETECTION_SCORE = 0.5
NMS_IOU = 0.3
MAX_DETECTIONS = 100  # ours: MediaPipe keeps every box NMS keeps
# pose_detection_to_roi.pbtxt, pose_landmarks_to_roi.pbtxt
ROI_SCALE = 1.25
ROTATION_TARGET = math.pi / 2
# tensors_to_pose_landmarks_and_segmentation.pbtxt
NUM_LANDMARKS = 39  # 33 pose landmarks, then the 2 auxiliary ones (ROI centre, scale point), ...
NUM_POSE_LANDMARKS = 33
AUXILIARY_LANDMARKS = (33, 34)
HEATMAP_KERNEL = 7
MIN_HEATMAP_CONFIDENCE = 0.5
POSE_FLAG_THRESHOLD = 0.5
# COCO-18 keypoints from BlazePose-33 (both name the person's own right and left).
VISIBILITY_THRESHOLD = 0.5
_NOSE, _L_EYE, _R_EYE, _L_EAR, _R_EAR = 0, 2, 5, 7, 8
_L_SHOULDER, _R_SHOULDER, _L_ELBOW, _R_ELBOW, _L_WRIST, _R_WRIST = 11, 12, 13, 14, 15, 16
_L_HIP, _R_HIP, _L_KNEE, _R_KNEE, _L_ANKLE, _R_ANKLE = 23, 24, 25, 26, 27, 28
BLAZEPOSE_OF_COCO18 = {
        coco.NOSE: _NOSE, coco.R_SHOULDER: _R_SHOULDER, coco.R_ELBOW: _R_ELBOW,
        coco.R_WRIST: _R_WRIST, coco.L_SHOULDER: _L_SHOULDER, coco.L_ELBOW: _L_ELBOW,
        coco.L_WRIST: _L_WRIST, coco.R_HIP: _R_HIP, coco.R_KNEE: _R_KNEE, coco.R_ANKLE: _R_ANKLE,
        coco.L_HIP: _L_HIP, coco.L_KNEE: _L_KNEE, coco.L_ANKLE: _L_ANKLE, coco.R_EYE: _R_EYE,
        coco.L_EYE: _L_EYE, coco.R_EAR: _R_EAR, coco.L_EAR: _L_EAR}  # neck: mid-shoulders


def ssd_anchors(input_size: int = DETECTOR_SIZE, strides=ANCHOR_STRIDES,
                per_layer: int = ANCHORS_PER_LAYER, offset: float = ANCHOR_OFFSET) -> np.ndarray:
    """The detector's anchor centres, as SsdAnchorsCalculator lays them out (fixed size 1×1).

    Consecutive layers of the same stride share one grid, each location holding ``per_layer``
    anchors per layer; locations run row by row.

    Returns:
        float32 [N, 2]: (x, y) centres in [0, 1] (N = 2254 for the defaults).
    """
    centres, layer = [], 0
    while layer < len(strides):
        same = 1
        while layer + same < len(strides) and strides[layer + same] == strides[layer]:
            same += 1
        cells = math.ceil(input_size / strides[layer])
        grid = (np.arange(cells, dtype=np.float64) + offset) / cells
        x, y = np.meshgrid(grid, grid)
        points = np.stack([x.reshape(-1), y.reshape(-1)], axis=-1)
        centres.append(np.repeat(points, per_layer * same, axis=0))
        layer += same
    return np.concatenate(centres).astype(np.float32)


def decode_detections(raw_boxes, raw_scores, anchors, scale: float = BOX_SCALE):
    """The detector's raw outputs as boxes, keypoints and scores (TensorsToDetectionsCalculator).

    Args:
        raw_boxes: float32 [..., N, 12]: per anchor x, y, w, h, then 4 keypoints' x, y, all in
            input pixels relative to the anchor (reverse_output_order).
        raw_scores: float32 [..., N, 1] logits.
        anchors: [N, 2] anchor centres (``ssd_anchors``).
        scale: the x/y/w/h scale (the detector's input size).

    Returns:
        ``(boxes, keypoints, scores)``: [..., N, 4] (ymin, xmin, ymax, xmax), [..., N, 4, 2]
        (x, y), [..., N] in (0, 1); coordinates normalised to the detector's input.
    """
    raw_boxes = tf.convert_to_tensor(raw_boxes, tf.float32)
    anchors = tf.convert_to_tensor(anchors, tf.float32)
    centre = raw_boxes[..., 0:2] / scale + anchors
    half = raw_boxes[..., 2:4] / scale / 2
    low, high = centre - half, centre + half
    boxes = tf.stack([low[..., 1], low[..., 0], high[..., 1], high[..., 0]], axis=-1)
    shape = tf.concat([tf.shape(raw_boxes)[:-1], [NUM_DETECTION_KEYPOINTS, 2]], axis=0)
    keypoints = tf.reshape(raw_boxes[..., 4:4 + 2 * NUM_DETECTION_KEYPOINTS], shape) / scale
    keypoints += anchors[:, None, :]
    logits = tf.clip_by_value(tf.convert_to_tensor(raw_scores, tf.float32)[..., 0],
                              -SCORE_CLIP, SCORE_CLIP)
    return boxes, keypoints, tf.sigmoid(logits)


def _area(boxes):
    return tf.reduce_prod(tf.maximum(boxes[..., 2:] - boxes[..., :2], 0.0), axis=-1)


def _pairwise_iou(a, b):
    """IoU of boxes a [K, 4] with boxes b [N, 4] (ymin, xmin, ymax, xmax) → [K, N]."""
    low = tf.maximum(a[:, None, :2], b[None, :, :2])
    high = tf.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = tf.reduce_prod(tf.maximum(high - low, 0.0), axis=-1)
    union = _area(a)[:, None] + _area(b)[None, :] - inter
    return tf.math.divide_no_nan(inter, union)


def weighted_nms(boxes, keypoints, scores, min_score: float = MIN_DETECTION_SCORE,
                 iou_threshold: float = NMS_IOU, max_detections: int = MAX_DETECTIONS):
    """MediaPipe's weighted non-maximum suppression of one image's detections.

    The boxes kept are those greedy NMS keeps (``tf.image.non_max_suppression``); each is then
    replaced by the score-weighted mean (corners and keypoints) of the boxes scoring at least
    ``min_score`` it suppresses, a box counting for the first kept box (by score) it overlaps by
    more than ``iou_threshold``. A kept box keeps its own score.

    Args:
        boxes: [N, 4] (ymin, xmin, ymax, xmax).
        keypoints: [N, K, 2].
        scores: [N].
        min_score: detections scoring below are dropped first.
        iou_threshold: overlap above which a box is suppressed.
        max_detections: at most this many boxes are kept.

    Returns:
        ``(boxes, keypoints, scores)`` of the kept detections, best first: [M, 4], [M, K, 2], [M].
    """
    valid = scores >= min_score
    candidates = tf.where(valid, scores, tf.zeros_like(scores))
    kept = tf.image.non_max_suppression(boxes, candidates, max_detections, iou_threshold,
                                        score_threshold=0.0)
    kept_boxes = tf.gather(boxes, kept)
    overlaps = (_pairwise_iou(kept_boxes, boxes) > iou_threshold) & valid[None]
    earlier = tf.cumsum(tf.cast(overlaps, tf.int32), axis=0, exclusive=True)
    weights = tf.where(overlaps & (earlier == 0), scores[None], 0.0)  # [M, N]
    total = tf.reduce_sum(weights, axis=1)
    merged_boxes = tf.math.divide_no_nan(weights @ boxes, total[:, None])
    merged_keypoints = tf.math.divide_no_nan(tf.einsum('mn,nkc->mkc', weights, keypoints),
                                             total[:, None, None])
    has_weight = total > 0
    return (tf.where(has_weight[:, None], merged_boxes, kept_boxes),
            tf.where(has_weight[:, None, None], merged_keypoints, tf.gather(keypoints, kept)),
            tf.gather(scores, kept))


def letterbox_transform(height, width, size: int = DETECTOR_SIZE):
    """The letterbox of a [height, width] image in a size×size square, as an affine map.

    Returns:
        ``(scale, offset)``: a point ``p`` of the square, in pixels, is ``p * scale + offset`` in
        the image (``offset`` [2] (x, y); the image is centred, its longer side filling the
        square).
    """
    height, width = tf.cast(height, tf.float32), tf.cast(width, tf.float32)
    side = tf.maximum(height, width)
    return side / size, tf.stack([(width - side) / 2, (height - side) / 2])


def normalize_radians(angle):
    """``angle`` wrapped into [-π, π) (RectTransformationCalculator's NormalizeRadians)."""
    return angle - 2 * math.pi * tf.floor((angle + math.pi) / (2 * math.pi))


def alignment_roi(centre, scale_point, scale: float = ROI_SCALE):
    """The square, rotated ROI of two alignment points, in pixels.

    AlignmentPointsRectsCalculator then RectTransformationCalculator (square_long, no shift):
    the centre is ``centre``, the side ``scale`` times twice the distance to ``scale_point``,
    the rotation turns the centre → scale-point vector to point up (target angle 90°).

    Args:
        centre: [..., 2] (x, y) pixels.
        scale_point: [..., 2] (x, y) pixels.
        scale: the margin.

    Returns:
        [..., 5]: (centre x, centre y, width, height, rotation in radians).
    """
    centre = tf.convert_to_tensor(centre, tf.float32)
    delta = tf.convert_to_tensor(scale_point, tf.float32) - centre
    side = 2.0 * tf.norm(delta, axis=-1) * scale
    rotation = normalize_radians(ROTATION_TARGET - tf.atan2(-delta[..., 1], delta[..., 0]))
    return tf.concat([centre, tf.stack([side, side, rotation], axis=-1)], axis=-1)


def _rotation(roi):
    roi = tf.convert_to_tensor(roi, tf.float32)
    return roi[..., 0:2], roi[..., 2:4], tf.cos(roi[..., 4]), tf.sin(roi[..., 4])


def crop_to_photo(points, roi, size: int = LANDMARK_SIZE):
    """Crop pixels → photo pixels for a size×size crop of ``roi`` (LandmarkProjectionCalculator).

    Args:
        points: [..., K, 2] (x, y) in crop pixels.
        roi: [..., 5] (``alignment_roi``).
        size: the crop's side.

    Returns:
        [..., K, 2] photo pixels.
    """
    centre, extent, cos, sin = _rotation(roi)
    local = (tf.convert_to_tensor(points, tf.float32) / size - 0.5) * extent[..., None, :]
    x = cos[..., None] * local[..., 0] - sin[..., None] * local[..., 1]
    y = sin[..., None] * local[..., 0] + cos[..., None] * local[..., 1]
    return tf.stack([x, y], axis=-1) + centre[..., None, :]


def photo_to_crop(points, roi, size: int = LANDMARK_SIZE):
    """Photo pixels → crop pixels, the inverse of ``crop_to_photo``.

    Args:
        points: [..., K, 2] (x, y) in photo pixels.
        roi: [..., 5].
        size: the crop's side.

    Returns:
        [..., K, 2] crop pixels.
    """
    centre, extent, cos, sin = _rotation(roi)
    d = tf.convert_to_tensor(points, tf.float32) - centre[..., None, :]
    x = cos[..., None] * d[..., 0] + sin[..., None] * d[..., 1]
    y = -sin[..., None] * d[..., 0] + cos[..., None] * d[..., 1]
    return (tf.stack([x, y], axis=-1) / extent[..., None, :] + 0.5) * size


def crop_transform(roi, size: int = LANDMARK_SIZE):
    """``crop_to_photo`` as ImageProjectiveTransform's [..., 8] (crop pixel → photo pixel)."""
    centre, extent, cos, sin = _rotation(roi)
    sx, sy = extent[..., 0] / size, extent[..., 1] / size
    zero = tf.zeros_like(cos)
    a0, a1, b0, b1 = cos * sx, -sin * sy, sin * sx, cos * sy
    a2 = centre[..., 0] - (a0 + a1) * size / 2
    b2 = centre[..., 1] - (b0 + b1) * size / 2
    return tf.stack([a0, a1, a2, b0, b1, b2, zero, zero], axis=-1)


def uncrop_transform(roi, size: int = LANDMARK_SIZE, scale=(1.0, 1.0)):
    """ImageProjectiveTransform's [..., 8] from photo pixels to crop pixels (``photo_to_crop``).

    Args:
        roi: [..., 5] in the pixels of the image the crop was cut from.
        size: the crop's side.
        scale: (x, y) size of an output pixel in that image's pixels, when the output is
            another resolution of it (pixel edges aligned).

    Returns:
        [..., 8].
    """
    centre, extent, cos, sin = _rotation(roi)
    kx, ky = size / extent[..., 0], size / extent[..., 1]
    sx, sy = scale
    ox, oy = 0.5 * sx - 0.5 - centre[..., 0], 0.5 * sy - 0.5 - centre[..., 1]
    zero = tf.zeros_like(cos)
    return tf.stack([kx * cos * sx, kx * sin * sy, kx * (cos * ox + sin * oy) + size / 2,
                     -ky * sin * sx, ky * cos * sy, ky * (-sin * ox + cos * oy) + size / 2,
                     zero, zero], axis=-1)


def warp(images, transforms, height, width, fill_mode: str):
    """Bilinear ``tf.raw_ops.ImageProjectiveTransformV3`` of float images [B, h, w, C].

    Args:
        images: float32 [B, h, w, C].
        transforms: [B, 8] output pixel → input pixel.
        height: the output's height.
        width: the output's width.
        fill_mode: ``'CONSTANT'`` (zeros) or ``'NEAREST'`` (edge pixels replicated).

    Returns:
        float32 [B, height, width, C].
    """
    return tf.raw_ops.ImageProjectiveTransformV3(
            images=images, transforms=tf.cast(transforms, tf.float32),
            output_shape=tf.cast(tf.stack([height, width]), tf.int32),
            fill_value=tf.constant(0.0), interpolation='BILINEAR', fill_mode=fill_mode)


def refine_from_heatmap(xy, heatmap, kernel: int = HEATMAP_KERNEL,
                        min_confidence: float = MIN_HEATMAP_CONFIDENCE):
    """Landmarks moved to the heatmap's local centre of mass (RefineLandmarksFromHeatmap).

    Around each landmark's heatmap cell, the kernel×kernel window (clipped at the heatmap's
    edges) gives a weighted mean of cell indices, weights sigmoid(heatmap); the landmark moves
    there when the window's largest weight is at least ``min_confidence``. A landmark whose cell
    column or row is negative, or column ≥ the width, is left as it is (as MediaPipe, whose check
    compares the column with the height again instead of the row).

    Args:
        xy: [B, L, 2] (x, y) normalised to the crop.
        heatmap: [B, h, w, L] logits.
        kernel: the window's side (odd).
        min_confidence: the least peak that refines.

    Returns:
        [B, L, 2] refined (x, y), normalised.
    """
    heatmap = tf.convert_to_tensor(heatmap, tf.float32)
    shape = tf.shape(heatmap)
    batch, rows, cols, count = shape[0], shape[1], shape[2], shape[3]
    size = tf.cast(tf.stack([cols, rows]), tf.float32)
    cell = tf.cast(tf.clip_by_value(xy * size, -1e6, 1e6), tf.int32)  # C++'s float → int
    col, row = cell[..., 0], cell[..., 1]
    inside = (col >= 0) & (col < cols) & (row >= 0) & (col < rows)
    steps = tf.range(kernel) - (kernel - 1) // 2
    window_rows = row[..., :, None, None] + steps[:, None]  # [B, L, k, 1]
    window_cols = col[..., :, None, None] + steps[None, :]  # [B, L, 1, k]
    valid = ((window_rows >= 0) & (window_rows < rows)) & ((window_cols >= 0)
                                                           & (window_cols < cols))
    window = tf.shape(valid)  # [B, L, k, k]
    indices = tf.stack([tf.broadcast_to(v, window) for v in (
            tf.range(batch)[:, None, None, None], tf.clip_by_value(window_rows, 0, rows - 1),
            tf.clip_by_value(window_cols, 0, cols - 1), tf.range(count)[None, :, None, None])],
            axis=-1)
    weight = tf.where(valid, tf.sigmoid(tf.gather_nd(heatmap, indices)), 0.0)
    total = tf.reduce_sum(weight, axis=[-2, -1])
    peak = tf.reduce_max(weight, axis=[-2, -1])
    mean_col = tf.reduce_sum(weight * tf.cast(window_cols, tf.float32), axis=[-2, -1])
    mean_row = tf.reduce_sum(weight * tf.cast(window_rows, tf.float32), axis=[-2, -1])
    refined = tf.math.divide_no_nan(tf.stack([mean_col, mean_row], axis=-1),
                                    total[..., None]) / size
    refine = inside & (peak >= min_confidence) & (total > 0)
    return tf.where(refine[..., None], refined, xy)


def decode_landmarks(raw, heatmap, size: int = LANDMARK_SIZE):
    """The landmark model's outputs as normalised crop landmarks (TensorsToLandmarksCalculator).

    Args:
        raw: [B, 39 * 5] per landmark x, y, z in crop pixels, visibility and presence logits.
        heatmap: [B, h, w, 39] logits (``refine_from_heatmap``).
        size: the crop's side.

    Returns:
        [B, 39, 5]: x, y, z divided by ``size`` (x, y refined), sigmoid(visibility),
        sigmoid(presence).
    """
    values = tf.reshape(tf.convert_to_tensor(raw, tf.float32), [-1, NUM_LANDMARKS, 5])
    xy = refine_from_heatmap(values[..., 0:2] / size, heatmap)
    return tf.concat([xy, values[..., 2:3] / size, tf.sigmoid(values[..., 3:5])], axis=-1)


def to_coco18(landmarks, height, width, threshold: float = VISIBILITY_THRESHOLD):
    """OpenPose COCO-18 keypoints from BlazePose's 33 landmarks.

    Each COCO-18 point is its BlazePose namesake (eyes: the eye centres), the neck the middle of
    the shoulders. A point is missing (x = y = confidence = 0, as OpenPose writes it) when its
    visibility is below ``threshold`` (the neck's: either shoulder's) or it is outside the photo
    (x or y below 0 or above width - 1, height - 1: a kept point never looks like the networks'
    negative 'missing' mark); otherwise its confidence is its visibility (the neck's: the smaller
    shoulder visibility).

    Args:
        landmarks: [..., 33, 5] (x, y, z, visibility, presence), photo pixels.
        height: the photo's height.
        width: the photo's width.
        threshold: the least visibility kept.

    Returns:
        float32 [..., 18, 3] (x, y, confidence).
    """
    landmarks = tf.convert_to_tensor(landmarks, tf.float32)
    # The neck's slot first takes any landmark, then the shoulders' middle.
    order = [BLAZEPOSE_OF_COCO18.get(i, _NOSE) for i in range(len(BLAZEPOSE_OF_COCO18) + 1)]
    points = tf.gather(landmarks, order, axis=-2)
    neck = (landmarks[..., _L_SHOULDER, :] + landmarks[..., _R_SHOULDER, :]) / 2
    confidence = tf.minimum(landmarks[..., _L_SHOULDER, 3], landmarks[..., _R_SHOULDER, 3])
    neck = tf.concat([neck[..., :3], confidence[..., None], neck[..., 4:]], axis=-1)
    is_neck = tf.one_hot(coco.NECK, len(order), on_value=True, off_value=False)[:, None]
    points = tf.where(is_neck, neck[..., None, :], points)
    x, y, visibility = points[..., 0], points[..., 1], points[..., 3]
    width = tf.cast(width, tf.float32)
    height = tf.cast(height, tf.float32)
    present = ((visibility >= threshold) & (x >= 0) & (x <= width - 1) & (y >= 0)
               & (y <= height - 1))
    keypoints = tf.stack([x, y, visibility], axis=-1)
    return tf.where(present[..., None], keypoints, 0.0)


def working_size(height, width, limit: int = WORKING_SIZE):
    """The [height, width] a photo is area-reduced to: its own, or its longer side ``limit``.

    Returns:
        int32 [2].
    """
    size = tf.cast(tf.stack([height, width]), tf.float32)
    factor = tf.maximum(tf.reduce_max(size) / limit, 1.0)
    return tf.cast(tf.maximum(tf.round(size / factor), 1.0), tf.int32)


class PoseModel(tf.Module):
    """MediaPipe's BlazePose pipeline (module docstring) as one graph of core TF ops.

    Calling it on a uint8 [H, W, 3] photo returns a dict of tensors:

    - ``people``: int32 scalar, the persons the detector finds (after NMS, score ≥ 0.5); 0 also
      when the chosen person's pose flag is below 0.5 (MediaPipe then reports no pose);
    - ``landmarks``: float32 [33, 5] BlazePose's landmarks: x, y in photo pixels, z (depth, in
      the same pixels' scale, smaller is nearer), visibility and presence in [0, 1];
    - ``keypoints``: float32 [18, 3] OpenPose COCO-18 (x, y, confidence), see ``to_coco18``;
    - ``mask``: float32 [H, W] the person probability, 0 outside the crop;
    - ``roi``: float32 [5] the (last) crop: centre x, centre y, width, height in photo pixels,
      rotation in radians;
    - ``pose_score``: float32 scalar, the landmark model's pose flag.

    With no person everything but ``pose_score`` is zeros.

    One landmark pass is the default, as MediaPipe on a still image: a second pass on the ROI of
    the first pass's landmarks lowered PCK@0.1 on drawn persons (``synthetic_tryon`` seed 7,
    items 0-11 at 512×384: 0.935 → 0.898, median error 9.0 → 9.2 px).

    Attributes:
        detector: the converted ``pose_detection`` model.
        landmarker: the converted ``pose_landmark_full`` model.
        passes: landmark passes (2: once more on the ROI of the first pass's landmarks).
        limit: the working size's longer side.
    """

    def __init__(self, detector: tflite.TFLiteGraph, landmarker: tflite.TFLiteGraph,
                 passes: int = 1, limit: int = WORKING_SIZE):
        """Wraps converted models (``from_mediapipe`` converts the installed ones).

        Args:
            detector: ``pose_detection`` (224×224 in [-1, 1] → Identity [B, 2254, 12] and
                Identity_1 [B, 2254, 1]).
            landmarker: ``pose_landmark_full`` (256×256 in [0, 1] → Identity [B, 195], the pose
                flag Identity_1, segmentation Identity_2, heatmap Identity_3).
            passes: 1 (MediaPipe on a still image) or 2.
            limit: photos whose longer side is larger are area-reduced to it first.
        """
        super().__init__(name='pose_model')
        if passes not in (1, 2):
            raise ValueError(f'passes must be 1 or 2, got {passes!r}')
        self.detector = detector
        self.landmarker = landmarker
        self.passes = passes
        self.limit = limit
        self._anchors = tf.constant(ssd_anchors(), name='anchors')

    @classmethod
    def from_mediapipe(cls, **kwargs) -> 'PoseModel':
        """Converts the models of the installed ``mediapipe`` wheel.

        Args:
            **kwargs: ``passes``, ``limit`` (``PoseModel``).

        Raises:
            tflite.MediapipeNotInstalledError: mediapipe is not installed.
            tflite.TFLiteError: a model file is missing or does not convert.
        """
        return cls(tflite.load(tflite.mediapipe_model_path('pose_detection')),
                   tflite.load(tflite.mediapipe_model_path('pose_landmark_full')), **kwargs)

    def _detect(self, image, height, width):
        """Kept detections' keypoints in photo pixels [M, 4, 2]."""
        scale, offset = letterbox_transform(height, width)
        zero = tf.constant(0.0)
        letterbox = tf.stack([scale, zero, offset[0], zero, scale, offset[1], zero, zero])
        pixels = warp(image, letterbox[None], DETECTOR_SIZE, DETECTOR_SIZE, 'CONSTANT')
        # MediaPipe warps the uint8 photo, so its samples are whole grey levels.
        outputs = self.detector(tf.round(pixels) / 127.5 - 1.0)
        boxes, keypoints, scores = decode_detections(outputs['Identity'][0],
                                                     outputs['Identity_1'][0], self._anchors)
        _, keypoints, _ = weighted_nms(boxes, keypoints, scores)
        return keypoints * scale * DETECTOR_SIZE + offset

    def _landmarks(self, image, roi):
        """One landmark pass on ``roi``: ([39, 5] photo-pixel landmarks, flag, mask logits)."""
        pixels = warp(image, crop_transform(roi)[None], LANDMARK_SIZE, LANDMARK_SIZE, 'NEAREST')
        outputs = self.landmarker(tf.round(pixels) / 255.0)
        decoded = decode_landmarks(outputs['Identity'], outputs['Identity_3'])[0]
        xy = crop_to_photo(decoded[:, 0:2] * LANDMARK_SIZE, roi)
        landmarks = tf.concat([xy, decoded[:, 2:3] * roi[2], decoded[:, 3:]], axis=-1)
        return landmarks, outputs['Identity_1'][0, 0], outputs['Identity_2']

    @tf.function(input_signature=[tf.TensorSpec([None, None, 3], tf.uint8, name='image')])
    def __call__(self, image):
        """The pose of the most prominent person in ``image`` (uint8 [H, W, 3]); see the class."""
        height, width = tf.shape(image)[0], tf.shape(image)[1]
        size = working_size(height, width, self.limit)
        batch = image[None]
        work = tf.cond(tf.reduce_all(size == tf.stack([height, width])),
                       lambda: tf.cast(batch, tf.float32),
                       lambda: tf.image.resize(batch, size, method='area'))
        work_height, work_width = size[0], size[1]
        keypoints = self._detect(work, work_height, work_width)
        people = tf.shape(keypoints)[0]
        rois = alignment_roi(keypoints[:, 0], keypoints[:, 1])
        centre = tf.cast(tf.stack([work_width, work_height]), tf.float32) / 2
        prominence = rois[:, 2] / ROI_SCALE - tf.norm(rois[:, :2] - centre, axis=-1)
        side = tf.cast(tf.maximum(work_height, work_width), tf.float32)
        whole = tf.concat([centre, tf.stack([side, side, 0.0])], axis=0)
        roi = tf.cond(people > 0, lambda: tf.gather(rois, tf.argmax(prominence)), lambda: whole)
        roi = tf.concat([roi[:2], tf.maximum(roi[2:4], 1.0), roi[4:]], axis=0)
        landmarks, flag, logits = self._landmarks(work, roi)
        if self.passes == 2:
            roi = alignment_roi(landmarks[AUXILIARY_LANDMARKS[0], :2],
                                landmarks[AUXILIARY_LANDMARKS[1], :2])
            roi = tf.concat([roi[:2], tf.maximum(roi[2:4], 1.0), roi[4:]], axis=0)
            landmarks, flag, logits = self._landmarks(work, roi)
        return self._outputs(height, width, size, people, roi, landmarks, flag, logits)

    def _outputs(self, height, width, size, people, roi, landmarks, flag, logits):
        """Working-size results → the photo's pixels, zeros when no pose."""
        scale = tf.cast(tf.stack([width, height]), tf.float32) / tf.cast(
                tf.stack([size[1], size[0]]), tf.float32)
        xy = (landmarks[:NUM_POSE_LANDMARKS, :2] + 0.5) * scale - 0.5
        landmarks = tf.concat([xy, landmarks[:NUM_POSE_LANDMARKS, 2:3] * scale[0],
                               landmarks[:NUM_POSE_LANDMARKS, 3:]], axis=-1)
        transform = uncrop_transform(roi, scale=(1.0 / scale[0], 1.0 / scale[1]))
        mask = warp(tf.sigmoid(logits), transform[None], height, width, 'CONSTANT')[0, ..., 0]
        photo_roi = tf.concat([(roi[:2] + 0.5) * scale - 0.5, roi[2:4] * scale, roi[4:]], axis=0)
        found = (people > 0) & (flag >= POSE_FLAG_THRESHOLD)

        def keep(x):
            return tf.where(found, x, tf.zeros_like(x))

        return {'people': keep(people), 'landmarks': keep(landmarks),
                'keypoints': keep(to_coco18(landmarks, height, width)), 'mask': keep(mask),
                'roi': keep(photo_roi), 'pose_score': flag}
