import os

import numpy as np
import pytest

from everywear_tf import errors
from everywear_tf.data import dress_code
from everywear_tf.data import tfrecords
from everywear_tf.data import viton_hd

TESTDATA = os.path.join(os.path.dirname(__file__), '..', 'testdata')


@pytest.mark.parametrize('make', [
        lambda: viton_hd.VitonHdDataset(os.path.join(TESTDATA, 'viton_hd')),
        lambda: dress_code.DressCodeDataset(os.path.join(TESTDATA, 'dress_code'), 'men_pants')])
def test_shards_read_back_as_the_folder(tmp_path, make):
    source = make()
    items = [source.read(i) for i in range(len(source))]
    tfrecords.write_shard(tfrecords.shard_name(str(tmp_path / 's'), 0, 2), items[:2])
    tfrecords.write_shard(tfrecords.shard_name(str(tmp_path / 's'), 1, 2), items[2:])
    shards = tfrecords.TfRecordDataset(str(tmp_path / 's-*.tfrecord'))
    assert len(shards) == len(items)
    assert not [name for name in os.listdir(tmp_path) if 'partial' in name]
    for i, item in enumerate(items):
        back = shards.read(i)
        assert sorted(back) == sorted(item)
        for key, value in item.items():
            np.testing.assert_array_equal(np.asarray(back[key]), np.asarray(value), key)
            assert np.asarray(back[key]).dtype == np.asarray(value).dtype


def test_truncated_shard_and_no_match_are_named(tmp_path):
    path = tmp_path / 'x-00000-of-00001.tfrecord'
    tfrecords.write_shard(str(path), [{'person_id': 'a', 'keypoints': np.zeros((18, 2),
                                                                                np.float32)}])
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(errors.DatasetError, match='x-00000-of-00001.tfrecord.*truncated'):
        tfrecords.TfRecordDataset(str(path))
    with pytest.raises(errors.InputNotFoundError, match='nothing'):
        tfrecords.TfRecordDataset(str(tmp_path / 'nothing*'))
