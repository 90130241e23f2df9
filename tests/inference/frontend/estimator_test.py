"""The whole front end on photos: the chained graph, the errors it gives, and odd photos."""

import cv2
import numpy as np
import pytest

from everywear_tf import demo
from everywear_tf import errors
from everywear_tf import spec
from everywear_tf.convert import tflite
from everywear_tf.data import images
from everywear_tf.data import keypoints as keypoint_files
from everywear_tf.data import lip
from everywear_tf.data import parsing

try:
    tflite.mediapipe_model_path('pose_detection')
except tflite.MediapipeNotInstalledError as e:  # pragma: no cover - the test extra installs it
    pytest.skip(f'{e}', allow_module_level=True)

from everywear_tf.inference.frontend import estimator  # noqa: E402

pytestmark = pytest.mark.slow
skimage_data = pytest.importorskip('skimage.data')


@pytest.fixture(scope='module')
def front_end():
    return estimator.FrontEnd.in_process()


def _iou(a, b):
    return (a & b).sum() / max((a | b).sum(), 1)


def test_the_demo_photo_against_its_drawn_truth(front_end):
    photo = images.read_image(demo.PHOTO)
    estimate = front_end(photo, demo.PHOTO)
    truth = keypoint_files.read_keypoints(demo.PHOTO_POSE)
    parse = parsing.read_parse(demo.PHOTO_PARSE, image_size=photo.shape[:2])
    assert estimate.people == 1 and estimate.skin_split
    assert estimate.parse.shape == photo.shape[:2] and estimate.parse.dtype == np.uint8
    seen = truth[:, 2] > 0
    assert np.all(estimate.keypoints[seen, 2] > 0)
    torso = np.linalg.norm(truth[keypoint_files.NECK, :2]
                           - truth[[keypoint_files.R_HIP, keypoint_files.L_HIP], :2].mean(0))
    error = np.linalg.norm(estimate.keypoints[seen, :2] - truth[seen, :2], axis=1)
    assert np.mean(error <= 0.1 * torso) >= 0.9, error
    assert _iou(estimate.parse > 0, parse > 0) >= 0.95
    assert _iou(estimate.parse == lip.UPPER_CLOTHES, parse == lip.UPPER_CLOTHES) >= 0.9
    assert _iou(estimate.parse == lip.PANTS, parse == lip.PANTS) >= 0.85


def test_no_person_is_an_error_naming_the_photo(front_end):
    with pytest.raises(estimator.NoPersonError, match='empty.png: the front end found no person'):
        front_end(np.full((480, 360, 3), 235, np.uint8), 'empty.png')
    noise = np.random.default_rng(0).integers(0, 256, (300, 300, 3), dtype=np.uint8)
    with pytest.raises(errors.InputError, match='noise.png'):
        front_end(noise, 'noise.png')


def test_not_an_rgb_photo_is_refused(front_end):
    with pytest.raises(errors.ImageError, match='grey.png: expected a uint8 RGB photo'):
        front_end(np.zeros((64, 48), np.uint8), 'grey.png')


def test_two_people_take_the_larger_more_central_one(front_end):
    photo = images.read_image(demo.PHOTO)  # the drawn man, and beside him a smaller copy
    small = cv2.resize(photo, None, fx=0.6, fy=0.6, interpolation=cv2.INTER_AREA)
    canvas = np.full((720, 720 + small.shape[1], 3), 240, np.uint8)
    canvas[:, :720] = photo
    canvas[720 - small.shape[0]:, 720:] = small
    estimate = front_end(canvas, 'two.png')
    assert estimate.people == 2
    present = estimate.keypoints[:, 2] > 0
    assert np.all(estimate.keypoints[present, 0] < 720)  # every point on the larger man
    assert not estimate.parse[:, 720:].any()  # and only he is parsed


def test_a_greyscale_photo_has_no_skin_split(front_end):
    camera = np.repeat(skimage_data.camera()[..., None], 3, axis=-1)
    estimate = front_end(camera, 'camera.png')
    assert estimate.people >= 1 and not estimate.skin_split
    # Without a skin model no bare leg is told from trousers (arms are the hands only).
    assert not np.isin(estimate.parse, (lip.LEFT_LEG, lip.RIGHT_LEG)).any()


def test_a_very_large_photo_gives_the_photo_sized_answer(front_end):
    astronaut = skimage_data.astronaut()
    big = np.repeat(np.repeat(astronaut, 8, axis=0), 8, axis=1)  # 4096×4096
    small, large = front_end(astronaut, 'a.png'), front_end(big, 'big.png')
    assert large.parse.shape == big.shape[:2]
    present = (small.keypoints[:, 2] > 0) & (large.keypoints[:, 2] > 0)
    centre = lambda k: (k + 0.5) / 8 - 0.5  # noqa: E731 (the big photo's pixel → the small one's)
    scaled = centre(large.keypoints[present, :2])
    assert np.median(np.linalg.norm(scaled - small.keypoints[present, :2], axis=1)) < 6.0


def test_the_signature_returns_the_spec_outputs():
    module = estimator.FrontEndModule.from_mediapipe()
    photo = images.read_image(demo.PHOTO)
    outputs = module.serving_default(photo[None])
    assert sorted(outputs) == sorted(spec.MODULE_OUTPUTS[spec.FRONTEND])
    for key, (dtype, shape) in spec.FRONTEND_OUTPUT_SPECS.items():
        assert outputs[key].dtype.name == dtype
        assert outputs[key].shape[0] == 1 and len(outputs[key].shape) == len(shape)
    encoded = module.encoded(np.array([images.encode_png(photo)]))
    for key in outputs:
        np.testing.assert_array_equal(encoded[key].numpy(), outputs[key].numpy(), err_msg=key)
