import json
import os
import shutil

import cv2
import numpy as np
import pytest
from PIL import Image

from everywear_tf import errors
from everywear_tf import spec
from everywear_tf.data import keypoints as keypoint_files
from everywear_tf.data import label_sets
from everywear_tf.data import viton_hd

ROOT = os.path.join(os.path.dirname(__file__), '..', 'testdata', 'viton_hd')


def _area(image):
    """NumPy float64 reference: 4×4 block means, rounded half to even."""
    h, w = image.shape[:2]
    blocks = image.astype(np.float64).reshape(h // 4, 4, w // 4, 4, -1).mean(axis=(1, 3))
    return np.rint(blocks).astype(np.uint8).reshape((h // 4, w // 4) + image.shape[2:])


def _rgb(path):
    return cv2.cvtColor(cv2.imread(path), cv2.COLOR_BGR2RGB)


def test_items_equal_a_numpy_reference():
    dataset = viton_hd.VitonHdDataset(ROOT)
    assert len(dataset) == 3
    for i in range(3):
        item = dataset.read(i)
        name = f'{i:05d}_00'
        split = os.path.join(ROOT, 'train')
        np.testing.assert_array_equal(item[spec.PERSON],
                                      _area(_rgb(os.path.join(split, 'image', name + '.jpg'))))
        np.testing.assert_array_equal(item[spec.CLOTH],
                                      _area(_rgb(os.path.join(split, 'cloth', name + '.jpg'))))
        raw = np.asarray(Image.open(os.path.join(split, 'image-parse-v3', name + '.png')))
        lip = np.array([label_sets.CIHP_TO_LIP[v][1] for v in range(20)])[raw]
        rows = (np.arange(256) * 4 + 2)  # Pillow's nearest for an exact 4× reduction
        cols = (np.arange(192) * 4 + 2)
        np.testing.assert_array_equal(item[spec.PARSE], lip[rows][:, cols])
        assert 20 in item[spec.PARSE]  # CIHP's torso skin became the neck label
        mask = cv2.imread(os.path.join(split, 'cloth-mask', name + '.jpg'), 0)
        np.testing.assert_array_equal(item[spec.CLOTH_MASK],
                                      np.where(mask[rows][:, cols] >= 128, 255, 0))
        with open(os.path.join(split, 'openpose_json', name + '_keypoints.json')) as f:
            flat = np.array(json.load(f)['people'][0]['pose_keypoints_2d']).reshape(25, 3)
        coco = flat[list(keypoint_files.BODY25_TO_COCO18)]
        expected = np.where(coco[:, 2:] > 0, (coco[:, :2] + 0.5) / 4 - 0.5, -1.0)
        np.testing.assert_allclose(item[spec.KEYPOINTS], expected, atol=1e-4)
    assert np.all(dataset.read(1)[spec.KEYPOINTS][4] == -1)


@pytest.fixture
def copy(tmp_path):
    shutil.copytree(ROOT, tmp_path / 'hd')
    return tmp_path / 'hd' / 'train'


def test_missing_file_is_named(copy):
    os.remove(copy / 'cloth' / '00001_00.jpg')
    with pytest.raises(errors.InputNotFoundError, match='00001_00.jpg'):
        viton_hd.VitonHdDataset(copy.parent).read(1)


def test_wrong_size_label_map_is_named(copy):
    path = copy / 'image-parse-v3' / '00000_00.png'
    Image.open(path).crop((0, 0, 700, 1024)).save(path)
    with pytest.raises(errors.ParseMapError, match='00000_00.png.*aspect'):
        viton_hd.VitonHdDataset(copy.parent).read(0)


def test_unknown_label_is_named(copy):
    path = copy / 'image-parse-v3' / '00000_00.png'
    image = Image.open(path)
    labels = np.asarray(image).copy()
    labels[:4, :4] = 23
    out = Image.fromarray(labels, 'P')
    out.putpalette(image.getpalette())
    out.save(path)
    with pytest.raises(errors.ParseMapError, match=r'00000_00.png.*\[23\].*CIHP'):
        viton_hd.VitonHdDataset(copy.parent).read(0)


def test_wrong_keypoint_count_is_named(copy):
    path = copy / 'openpose_json' / '00002_00_keypoints.json'
    path.write_text(json.dumps({'people': [{'pose_keypoints_2d': [1.0] * 51}]}))
    with pytest.raises(errors.KeypointsError, match='00002_00_keypoints.json.*51'):
        viton_hd.VitonHdDataset(copy.parent).read(2)
