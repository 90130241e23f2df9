import json
import os
import shutil

import cv2
import numpy as np
import pytest
from PIL import Image

from everywear_tf import errors
from everywear_tf import spec
from everywear_tf.data import cloth_mask
from everywear_tf.data import dress_code
from everywear_tf.data import label_sets
from everywear_tf.data import parsing

ROOT = os.path.join(os.path.dirname(__file__), '..', 'testdata', 'dress_code')


def _area(image):
    h, w = image.shape[:2]
    blocks = image.astype(np.float64).reshape(h // 4, 4, w // 4, 4, -1).mean(axis=(1, 3))
    return np.rint(blocks).astype(np.uint8).reshape((h // 4, w // 4) + image.shape[2:])


@pytest.mark.parametrize('category,subset,first', [(spec.MEN_TSHIRTS, 'upper_body', 0),
                                                   (spec.MEN_PANTS, 'lower_body', 10)])
def test_items_equal_a_numpy_reference(category, subset, first):
    dataset = dress_code.DressCodeDataset(ROOT, category)
    assert dataset.subset == subset and len(dataset) == 3
    directory = os.path.join(ROOT, subset)
    for i in range(3):
        item, name = dataset.read(i), f'{first + i:06d}'
        person = cv2.cvtColor(cv2.imread(os.path.join(directory, 'images', name + '_0.jpg')),
                              cv2.COLOR_BGR2RGB)
        cloth = _area(cv2.cvtColor(cv2.imread(os.path.join(directory, 'images',
                                                           name + '_1.jpg')), cv2.COLOR_BGR2RGB))
        np.testing.assert_array_equal(item[spec.PERSON], _area(person))
        np.testing.assert_array_equal(item[spec.CLOTH], cloth)
        np.testing.assert_array_equal(item[spec.CLOTH_MASK], cloth_mask.compute_cloth_mask(cloth))
        raw = np.asarray(Image.open(os.path.join(directory, 'label_maps', name + '_4.png')))
        lip = np.array([label_sets.ATR_TO_LIP[v][1] for v in range(18)])[raw]
        np.testing.assert_array_equal(item[spec.PARSE], parsing.nearest_resize(lip, (256, 192)))
        with open(os.path.join(directory, 'keypoints', name + '_2.json')) as f:
            rows = np.array(json.load(f)['keypoints'], np.float64)
        present = (rows[:, 0] > 1) & (rows[:, 1] > 1)
        expected = np.where(present[:, None], (rows[:, :2] + 0.5) / 2 - 0.5, -1.0)
        np.testing.assert_allclose(item[spec.KEYPOINTS], expected, atol=1e-4)
    if subset == 'lower_body':
        assert {8, 16} <= set(np.unique(raw))  # the fixture's belt and bag were mapped above


def test_dresses_are_refused():
    with pytest.raises(errors.CategoryError, match='no category here'):
        dress_code.DressCodeDataset(ROOT, 'dresses')


def test_a_missing_subset_is_named(tmp_path):
    shutil.copytree(os.path.join(ROOT, 'upper_body'), tmp_path / 'upper_body')
    with pytest.raises(errors.DatasetError, match='lower_body'):
        dress_code.DressCodeDataset(tmp_path, spec.MEN_PANTS)


def test_wrong_keypoint_count_is_named(tmp_path):
    shutil.copytree(ROOT, tmp_path / 'dc')
    path = tmp_path / 'dc' / 'upper_body' / 'keypoints' / '000001_2.json'
    path.write_text(json.dumps({'keypoints': [[10.0, 10.0, 1.0, 0.0]] * 17}))
    with pytest.raises(errors.KeypointsError, match='000001_2.json.*got 17'):
        dress_code.DressCodeDataset(tmp_path / 'dc', spec.MEN_LONG).read(1)
