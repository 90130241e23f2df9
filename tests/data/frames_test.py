"""Frame geometry: transforms round-trip to a pixel, crops follow the pose, errors are named."""

import cv2
import numpy as np
import pytest

from everywear_tf import errors
from everywear_tf import spec
from everywear_tf.data import frames
from everywear_tf.data import keypoints as keypoint_files
from everywear_tf.data import synthetic


def _photo(height, width, seed=0):
    """A drawn person scaled into a photo of the given size (keypoints and parse with it)."""
    person = synthetic.render_person(np.random.default_rng(seed))
    scale = min(height / 256, width / 192) * 0.9
    transform = frames.scale_translate(scale, (width - 192 * scale) / 2,
                                           (height - 256 * scale) / 2)
    image = cv2.warpAffine(person.image, transform, (width, height), borderValue=(240,) * 3)
    parse = cv2.warpAffine(person.parse, transform, (width, height), flags=cv2.INTER_NEAREST)
    return image, parse, frames.transform_keypoints(person.keypoints, transform)


@pytest.mark.parametrize('size', [(512, 384), (300, 900), (1000, 200), (257, 193)])
def test_body_frame_round_trip(size):
    image, parse, keypoints = _photo(*size)
    frame = frames.body_frame(image, parse, keypoints)
    assert frame.image.shape == spec.FRAME_SHAPE + (3,) and frame.parse.shape == spec.FRAME_SHAPE
    back = frames.transform_keypoints(frame.keypoints, frames.invert(frame.transform))
    np.testing.assert_allclose(back, keypoints, atol=1e-3)
    # Every keypoint lands on the body in the frame's parse.
    for x, y, c in frame.keypoints:
        if c > 0:
            assert frame.parse[int(round(y)), int(round(x))] != 0
    # Pixels mapped forward and back land where they started (to a pixel).
    restored = cv2.warpAffine(frame.image, frames.invert(frame.transform),
                              (size[1], size[0]), flags=cv2.INTER_LINEAR)
    region = cv2.erode((parse > 0).astype(np.uint8), np.ones((9, 9), np.uint8)) > 0
    if frame.transform[0, 0] >= 1:  # only upscaled photos keep every detail
        assert np.abs(restored[region].astype(int) - image[region]).mean() < 6


def test_letterbox_is_centred_and_padded_white():
    image = np.zeros((100, 400, 3), np.uint8)
    frame = frames.body_frame(image, None, np.zeros((18, 3), np.float32))
    assert frame.image[0, 96].tolist() == [255, 255, 255]  # padding above the wide photo
    assert frame.image[128, 96].tolist() == [0, 0, 0]
    rows = np.nonzero(frame.image[:, 96, 0] == 0)[0]
    assert abs((rows.min() + rows.max()) / 2 - 127.5) <= 1


@pytest.mark.parametrize('size, seed', [((512, 384), 0), ((720, 720), 1), ((300, 900), 2),
                                        ((1500, 600), 3)])
def test_body_frame_puts_the_person_where_training_frames_have_them(size, seed):
    image, parse, keypoints = _photo(*size, seed=seed)
    frame = frames.body_frame(image, parse, keypoints)
    points = frame.keypoints[frame.keypoints[:, 2] > 0]
    head = [frame.keypoints[i, 1] for i in frames.HEAD if frame.keypoints[i, 2] > 0]
    ankles = [frame.keypoints[i, 1] for i in frames.ANKLES if frame.keypoints[i, 2] > 0]
    assert min(head) == pytest.approx(frames.BODY_TOP, abs=1e-3)
    assert max(ankles) == pytest.approx(frames.BODY_BOTTOM, abs=1e-3)
    assert (points[:, 0].min() + points[:, 0].max()) / 2 == pytest.approx(95.5, abs=1e-3)


def test_body_frame_pads_white_past_the_photo_and_letterboxes_without_ankles():
    image, parse, keypoints = _photo(512, 384, seed=5)
    # The person cut at the top of the photo: the box reaches above it, padded white.
    cut = 60
    moved = keypoints.copy()
    moved[:, 1] -= cut
    moved[keypoints[:, 2] <= 0] = 0
    frame = frames.body_frame(image[cut:], parse[cut:], moved)
    top_row = int(np.floor(frame.transform[1, 2] - 0.5 * frame.transform[1, 1]))
    assert top_row > 0 and (frame.image[:top_row] == 255).all()
    assert (frame.parse[:top_row] == 0).all()
    # No ankle (a photo cut at the knees): the whole photo letterboxed, as before.
    no_ankles = keypoints.copy()
    no_ankles[list(frames.ANKLES)] = 0
    letterboxed = frames.body_frame(image, parse, no_ankles)
    np.testing.assert_allclose(letterboxed.transform,
                               frames.box_transform(frames.letterbox_box(image.shape[:2])))
    assert frames.body_box(no_ankles) is None


def test_upper_crop_follows_the_pose_and_is_clamped():
    image, parse, keypoints = _photo(800, 600, seed=3)
    frame = frames.upper_frame(image, parse, keypoints)
    present = frame.keypoints[:, 2] > 0
    for index in frames.SHOULDERS + frames.HIPS + (keypoint_files.NOSE,):
        x, y, _ = frame.keypoints[index]
        assert present[index] and 0 <= x < 192 and 0 <= y < 256
    x0, y0, x1, y1 = frames.upper_box(keypoints, image.shape[:2])
    assert abs((y1 - y0) / (x1 - x0) - 256 / 192) < 1e-9
    assert x0 >= 0 and y0 >= 0 and x1 <= 600 and y1 <= 800
    back = frames.transform_keypoints(frame.keypoints, frames.invert(frame.transform))
    np.testing.assert_allclose(back[present], keypoints[present], atol=1e-3)


def test_a_pose_without_shoulders_cannot_be_cropped():
    image, parse, keypoints = _photo(512, 384)
    keypoints[keypoint_files.L_SHOULDER] = 0
    with pytest.raises(errors.KeypointsError, match='both shoulders'):
        frames.upper_frame(image, parse, keypoints, path='me_keypoints.json')


def test_huge_photos_are_area_reduced():
    stripes = np.zeros((4000, 3000, 3), np.uint8)
    stripes[::2] = 255  # one-pixel stripes: aliasing would show as bands
    frame = frames.body_frame(stripes, None, np.zeros((18, 3), np.float32))
    inner = frame.image[20:236, 20:172].astype(float)
    # Each frame row averages 15.6 photo rows: 7 or 8 white ones, never 0 or 16 (aliasing).
    assert abs(inner.mean() - 127.5) < 3 and inner.min() > 100 and inner.max() < 155


def test_garment_frame_and_mismatched_inputs():
    garment = synthetic.render_top(np.random.default_rng(1), (30, 120, 200))
    wide = cv2.copyMakeBorder(garment.image, 0, 0, 100, 100, cv2.BORDER_CONSTANT,
                              value=(255, 255, 255))
    image, mask = frames.garment_frame(wide)
    assert image.shape == (256, 192, 3) and mask.dtype == np.uint8 and mask.max() == 255
    with pytest.raises(errors.ImageError, match='mask is'):
        frames.garment_frame(wide, mask=np.zeros((10, 10), np.uint8), path='shirt.png')
    with pytest.raises(errors.ParseMapError, match='parse is 10x10'):
        frames.body_frame(wide, np.zeros((10, 10), np.uint8), np.zeros((18, 3)))


def _centroid(image):
    weights = image.astype(np.float64)
    yy, xx = np.mgrid[:image.shape[0], :image.shape[1]]
    return np.array([(weights * xx).sum(), (weights * yy).sum()]) / weights.sum()


@pytest.mark.parametrize('size, crop', [((512, 384), False), ((300, 900), False),
                                        ((2400, 1000), False), ((800, 600), True),
                                        ((1500, 700), True)])
def test_pixels_go_to_the_frame_and_back_to_within_a_pixel(size, crop):
    image, parse, keypoints = _photo(*size, seed=5)
    frame = (frames.upper_frame if crop else frames.body_frame)(image, parse, keypoints)
    scale = frame.transform[0, 0]
    radius = max(2, int(np.ceil(2.5 / scale)))  # a dot that survives the area reduction
    rng = np.random.default_rng(0)
    inverse = frames.invert(frame.transform)
    tried = 0
    while tried < 4:
        # A dot somewhere both see: inside the frame and inside the photo.
        frame_point = rng.uniform([20, 20], [172, 236])
        photo_point = inverse[:, :2] @ frame_point + inverse[:, 2]
        if not np.all((photo_point > 2 * radius) & (photo_point < np.array(size[::-1]) -
                                                    2 * radius)):
            continue
        tried += 1
        dots = np.zeros(size, np.uint8)
        cv2.circle(dots, tuple(int(round(v * 16)) for v in photo_point), radius * 16, 255, -1,
                   shift=4)
        forward = frames.warp_image(dots, frame.transform, border=0)
        np.testing.assert_allclose(_centroid(forward), frame_point, atol=1.0)
        back = cv2.warpAffine(forward, frames.invert(frame.transform), (size[1], size[0]),
                              flags=cv2.INTER_LINEAR)
        np.testing.assert_allclose(_centroid(back), photo_point, atol=max(1.0, 1.0 / scale))


def _long(photo, parse, keypoints, length, axis):
    """The drawn photo in the middle of a photo ``length`` pixels long along ``axis`` (white
    beyond it), with its parse and keypoints moved along."""
    before = (length - photo.shape[axis]) // 2
    pad = [(0, 0)] * 3
    pad[axis] = (before, length - photo.shape[axis] - before)
    moved = keypoints.copy()
    moved[:, 1 - axis] += before
    return (np.pad(photo, pad, constant_values=240), np.pad(parse, pad[:2]), moved, before)


@pytest.mark.parametrize('axis', [0, 1])
def test_photos_longer_than_opencvs_warp_limit_give_the_same_frames(axis):
    # cv2.warpAffine refuses a source side >= 32767: the part the frame sees is cut first.
    photo, parse, keypoints = _photo(*((400, 300) if axis == 0 else (300, 400)), seed=4)
    long_photo, long_parse, long_keypoints, before = _long(photo, parse, keypoints, 40000, axis)
    assert max(long_photo.shape[:2]) > frames.MAX_WARP_SIDE
    upper = frames.upper_frame(long_photo, long_parse, long_keypoints)
    reference = frames.upper_frame(photo, parse, keypoints)
    offset = [0.0, 0.0]
    offset[1 - axis] = before
    np.testing.assert_allclose(upper.transform[:, 2] + upper.transform[:, :2] @ offset,
                               reference.transform[:, 2], atol=0.01)  # float32 keypoints
    # The same frame but for that ~0.002 px: one 1/32 px step of OpenCV's bilinear at an edge.
    difference = np.abs(upper.image.astype(int) - reference.image)
    assert difference.max() <= 8 and (difference == 0).mean() > 0.95, difference.max()
    assert (upper.parse != reference.parse).mean() < 0.001
    body = frames.body_frame(long_photo, long_parse, long_keypoints)
    assert body.image.shape == spec.FRAME_SHAPE + (3,) and body.image.min() < 235  # the person
    garment, mask = frames.garment_frame(long_photo)
    assert garment.shape == spec.FRAME_SHAPE + (3,) and mask.shape == spec.FRAME_SHAPE


def test_label_maps_too_long_even_for_the_frame_are_thinned():
    # A 34000×300 letterboxed parse: the frame sees all of it; nearest sampling every 2nd pixel.
    parse = np.repeat(np.arange(1, 18, dtype=np.uint8), 2000)[:, None].repeat(300, axis=1)
    image = np.full(parse.shape + (3,), 100, np.uint8)
    frame = frames.body_frame(image, parse, np.zeros((18, 3), np.float32))
    rows = (np.arange(256) + 0.5) / frame.transform[1, 1]  # photo row of each frame row
    expected = np.clip(rows // 2000 + 1, 1, 17).astype(np.uint8)
    column = frame.parse[:, 96]
    assert (column == expected).mean() > 0.97
    assert np.all(np.abs(column.astype(int) - expected) <= 1)
    assert np.all(frame.image[:, 96] == 100)
