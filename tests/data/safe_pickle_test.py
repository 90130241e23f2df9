"""The restricted unpickler: arrays and containers load, code never runs."""

import collections
import os
import pickle

import numpy as np
import pytest

from everywear_tf import errors
from everywear_tf.data import safe_pickle
from tests.data.fixtures import path
from tests.testdata import make_fixtures


def test_a_pickle_holding_a_class_instance_is_refused_without_running_it(tmp_path,
                                                                         monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(errors.UnsafePickleError) as raised:
        safe_pickle.load(path('malicious.pkl'), encoding='latin1')
    assert 'refuses to load posix.mkdir' in str(raised.value) or 'os.mkdir' in str(raised.value)
    assert raised.value.path == path('malicious.pkl')
    assert not os.path.exists(tmp_path / make_fixtures.MARKER)
    # Control: the same file really would create the marker with pickle.load.
    with open(path('malicious.pkl'), 'rb') as f:
        pickle.load(f, encoding='latin1')
    assert os.path.isdir(tmp_path / make_fixtures.MARKER)


@pytest.mark.parametrize('protocol', [0, 2, 4, 5])
def test_arrays_and_plain_containers_load(protocol):
    value = {'a': np.arange(6, dtype=np.float32).reshape(2, 3), 'b': [1, (2.5, 'x'), b'xy'],
             'c': collections.OrderedDict(k=np.int64(3)), 's': {1, 2}, 'z': complex(1, 2),
             'strings': np.array(['p', 'q'])}
    loaded = safe_pickle.loads(pickle.dumps(value, protocol=protocol))
    np.testing.assert_array_equal(loaded['a'], value['a'])
    assert loaded['b'] == value['b'] and loaded['s'] == value['s'] and loaded['z'] == value['z']
    assert loaded['c']['k'] == 3


def test_python2_pickles_with_latin1():
    loaded = safe_pickle.load(path('viton_pose.pkl'), encoding='latin1')
    assert set(loaded) == {'candidate', 'subset'}


def test_truncated_and_garbage_pickles(tmp_path):
    data = pickle.dumps({'a': np.zeros(4)})
    with pytest.raises(errors.UnsafePickleError, match='not a readable pickle'):
        safe_pickle.loads(data[:len(data) // 2], path='half.pkl')
    with pytest.raises(errors.UnsafePickleError, match='junk.pkl'):
        (tmp_path / 'junk.pkl').write_bytes(b'\x00\x01garbage')
        safe_pickle.load(str(tmp_path / 'junk.pkl'))
    with pytest.raises(errors.InputNotFoundError):
        safe_pickle.load(str(tmp_path / 'missing.pkl'))


def test_dump_round_trip(tmp_path):
    target = tmp_path / 'x.pkl'
    safe_pickle.dump(str(target), {'k': np.ones(3)})
    np.testing.assert_array_equal(safe_pickle.load(str(target))['k'], np.ones(3))
    assert [p.name for p in tmp_path.iterdir()] == ['x.pkl']
