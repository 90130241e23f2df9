"""Both dataset layouts on the committed fixtures, as items and as tf.data."""

import os
import shutil

import numpy as np
import pytest

from everywear_tf import errors
from everywear_tf import spec
from everywear_tf.data import datasets
from everywear_tf.data import synthetic_tryon
from tests.data.fixtures import path


def _check_item(item):
    for key in spec.MODULE_INPUTS[spec.GMM]:
        dtype, shape = spec.INPUT_SPECS[key]
        assert item[key].dtype == np.dtype(dtype) and item[key].shape == shape[1:], key


def test_cpvton_layout_reads_the_synthetic_split():
    dataset = datasets.CpVtonDataset(path('cpvton'), 'test')
    assert len(dataset) == 2
    item = dataset.read(1)
    _check_item(item)
    assert (item['person_id'], item['cloth_id']) == ('000001_0', '000001_1')
    sample = synthetic_tryon.dress(*synthetic_tryon.item(20261124, 1, spec.MEN_TSHIRTS),
                                   spec.MEN_TSHIRTS)
    np.testing.assert_array_equal(item[spec.PERSON], sample.person)
    np.testing.assert_array_equal(item[spec.PARSE], sample.parse)
    np.testing.assert_allclose(item[spec.KEYPOINTS], sample.keypoints[:, :2], atol=1e-3)


def test_unpaired_targets():
    dataset = datasets.CpVtonDataset(path('cpvton'), 'test', pairs='test_pairs_unpaired.txt',
                                     targets=('image-swap', 'image-parse-swap'))
    item = dataset.read(0)
    assert item['cloth_id'] == '000001_1'
    assert item[datasets.TARGET_PERSON].shape == spec.FRAME_SHAPE + (3,)
    assert not np.array_equal(item[datasets.TARGET_PERSON], item[spec.PERSON])


def test_viton_layout():
    dataset = datasets.VitonDataset(path('viton'))
    assert len(dataset) == 2
    item = dataset.read(0)
    _check_item(item)
    assert item['cloth_id'] == '000001_1'
    assert item[spec.CLOTH_MASK].max() == 255


def test_tf_dataset_with_dynamic_batches():
    dataset = datasets.CpVtonDataset(path('cpvton'), 'test')
    batch = next(iter(dataset.as_tf_dataset(shuffle=True, seed=1).batch(2)))
    assert batch[spec.PERSON].shape == (2,) + spec.FRAME_SHAPE + (3,)
    assert batch[spec.KEYPOINTS].dtype.name == 'float32'


def test_layout_errors_name_the_file(tmp_path):
    with pytest.raises(errors.DatasetError, match='missing directory'):
        datasets.CpVtonDataset(str(tmp_path), 'test')
    root = tmp_path / 'copy'
    shutil.copytree(path('cpvton'), root)
    (root / 'test_pairs.txt').write_text('000000_0.png\n')
    with pytest.raises(errors.DatasetError, match='line 1: expected "person cloth"'):
        datasets.CpVtonDataset(str(root), 'test')
    (root / 'test_pairs.txt').write_text('000000_0.png 000000_1.png\n')
    os.remove(root / 'test' / 'pose' / '000000_0_keypoints.json')
    dataset = datasets.CpVtonDataset(str(root), 'test')
    with pytest.raises(errors.InputNotFoundError, match='000000_0_keypoints.json'):
        dataset.read(0)
