"""The restricted unpickler: arrays and containers load, code never runs."""

import collections
import os
import pickle

import numpy as np
import pytest

from everywear_tf import errors
from everywear_tf import fileio
from everywear_tf.data import safe_pickle

from tests.data.fixtures import path
from tests.testdata import make_fixtures

MARKER = make_fixtures.MARKER


def _short(text):
    data = text.encode()
    return pickle.SHORT_BINUNICODE + bytes([len(data)]) + data


class Plain:
    """An ordinary class: its instances pickle through copyreg (code could hide there)."""

    def __init__(self):
        self.x = 1


# Hand-written pickles that would create MARKER in the working directory, by several routes.
HOSTILE = {
        'GLOBAL + REDUCE (protocol 0)': (b"cos\nmkdir\n(S'" + MARKER.encode() + b"'\ntR.",
                                         'os.mkdir'),
        'INST (protocol 0)': (b"(S'" + MARKER.encode() + b"'\nios\nmkdir\n.", 'os.mkdir'),
        'STACK_GLOBAL builtins.exec (protocol 4)': (
                b'\x80\x04' + _short('builtins') + _short('exec') + pickle.STACK_GLOBAL
                + _short(f"import os; os.mkdir('{MARKER}')") + pickle.TUPLE1 + pickle.REDUCE
                + pickle.STOP, 'builtins.exec'),
        'allowed module, other name': (
                b'\x80\x02cnumpy\nsave\n' + _short(MARKER) + b'cnumpy\nzeros\nK\x01\x85R\x86R.',
                'numpy.save'),
        'a plain class instance (copyreg)': (pickle.dumps(Plain(), protocol=0),
                                             'copy_reg._reconstructor'),
        'a collections class not allowed': (pickle.dumps(collections.Counter(a=1), protocol=4),
                                            'collections.Counter'),
        'object array holding a call': (
                pickle.dumps(np.array([make_fixtures._Mkdir()], dtype=object), protocol=2),
                'posix.mkdir' if os.name == 'posix' else 'nt.mkdir'),
}


def test_the_malicious_fixture_is_refused_without_running_it(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for encoding in ('latin1', 'ASCII'):
        with pytest.raises(errors.UnsafePickleError) as raised:
            safe_pickle.load(path('malicious.pkl'), encoding=encoding)
        assert str(raised.value).startswith(f'{path("malicious.pkl")}: refuses to load '
                                            'posix.mkdir: ')
        assert raised.value.path == path('malicious.pkl')
        assert not os.path.exists(tmp_path / MARKER)
    # Control: the same file really does create the marker with pickle.load.
    with open(path('malicious.pkl'), 'rb') as f:
        pickle.load(f, encoding='latin1')
    assert os.path.isdir(tmp_path / MARKER)


@pytest.mark.parametrize('name', list(HOSTILE))
def test_hand_written_hostile_pickles_are_refused(tmp_path, monkeypatch, name):
    data, culprit = HOSTILE[name]
    monkeypatch.chdir(tmp_path)
    with pytest.raises(errors.UnsafePickleError) as raised:
        safe_pickle.loads(data, path='hostile.pkl')
    assert str(raised.value).startswith(f'hostile.pkl: refuses to load {culprit}: ')
    assert os.listdir(tmp_path) == []
    target = tmp_path / 'hostile.pkl'
    target.write_bytes(data)
    with pytest.raises(errors.UnsafePickleError, match=str(target)):
        safe_pickle.load(target)
    assert os.listdir(tmp_path) == ['hostile.pkl']


def test_the_control_pickles_really_are_hostile(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for name in ('GLOBAL + REDUCE (protocol 0)', 'INST (protocol 0)',
                 'STACK_GLOBAL builtins.exec (protocol 4)'):
        pickle.loads(HOSTILE[name][0])
        assert os.path.isdir(tmp_path / MARKER)
        os.rmdir(tmp_path / MARKER)


def test_persistent_ids_are_refused():
    data = b'\x80\x02X\x01\x00\x00\x00xQ.'  # BINPERSID
    with pytest.raises(errors.UnsafePickleError, match='persistent ids'):
        safe_pickle.loads(data)


@pytest.mark.parametrize('protocol', [0, 1, 2, 3, 4, 5])
def test_arrays_scalars_and_plain_containers_load(protocol):
    value = {'a': np.arange(6, dtype=np.float32).reshape(2, 3), 'b': [1, (2.5, 'x'), b'xy', None],
             'c': collections.OrderedDict(k=np.int64(3)), 's': {1, 2}, 'f': frozenset('ab'),
             'z': complex(1, 2), 'sl': slice(1, 5, 2), 'r': range(2, 9), 'ba': bytearray(b'q'),
             'strings': np.array(['p', 'q']), 'dt': np.dtype('>i2'), 'fortran':
             np.asfortranarray(np.arange(6).reshape(2, 3)), 'scalar': np.float32(2.5),
             'object': np.array([1, 'two', None], dtype=object), 'bool': np.array([True])}
    loaded = safe_pickle.loads(pickle.dumps(value, protocol=protocol))
    for key in ('a', 'strings', 'fortran', 'object', 'bool'):
        np.testing.assert_array_equal(loaded[key], value[key])
        assert loaded[key].dtype == value[key].dtype
    for key in ('b', 's', 'f', 'z', 'sl', 'r', 'ba', 'dt', 'scalar'):
        assert loaded[key] == value[key] and type(loaded[key]) is type(value[key]), key
    assert isinstance(loaded['c'], collections.OrderedDict) and loaded['c']['k'] == 3


def test_numpy_2_spelling_loads():
    data = pickle.dumps(np.arange(3, dtype=np.int16), protocol=2)
    assert b'numpy.core.multiarray' in data
    data = data.replace(b'numpy.core.multiarray', b'numpy._core.multiarray')
    np.testing.assert_array_equal(safe_pickle.loads(data), np.arange(3, dtype=np.int16))


def test_python2_pickles_need_latin1():
    data = open(path('viton_pose.pkl'), 'rb').read()
    assert b'_codecs' not in data and b'U\tcandidate' in data  # Python 2 byte strings
    loaded = safe_pickle.load(path('viton_pose.pkl'), encoding='latin1')
    assert set(loaded) == {'candidate', 'subset'}
    assert loaded['subset'].shape == (2, 20) and loaded['subset'][1, 18] == 15.3
    with pytest.raises(errors.UnsafePickleError, match="encoding='latin1'"):
        safe_pickle.load(path('viton_pose.pkl'))


def test_truncated_garbage_empty_and_missing(tmp_path):
    data = pickle.dumps({'a': np.zeros(4)}, protocol=4)
    for cut in (1, len(data) // 2, len(data) - 1):
        with pytest.raises(errors.UnsafePickleError) as raised:
            safe_pickle.loads(data[:cut], path='half.pkl')
        assert str(raised.value).startswith('half.pkl: not a readable pickle')
    for junk in (b'\x00\x01garbage', b'\x80\x05\x95' + b'\xff' * 8, b'(((((', b'}q\x00h\x07.'):
        (tmp_path / 'junk.pkl').write_bytes(junk)
        with pytest.raises(errors.UnsafePickleError) as raised:
            safe_pickle.load(tmp_path / 'junk.pkl')
        assert raised.value.path == str(tmp_path / 'junk.pkl')
    (tmp_path / 'empty.pkl').write_bytes(b'')
    with pytest.raises(errors.UnsafePickleError, match='empty.pkl: empty file'):
        safe_pickle.load(tmp_path / 'empty.pkl')
    with pytest.raises(errors.InputNotFoundError, match='missing.pkl: no such file'):
        safe_pickle.load(tmp_path / 'missing.pkl')


def test_dump_round_trip_and_atomicity(tmp_path, monkeypatch):
    target = tmp_path / 'x.pkl'
    safe_pickle.dump(target, {'k': np.ones(3)})
    assert pickle.loads(target.read_bytes())['k'].tolist() == [1, 1, 1]
    assert target.read_bytes()[:2] == b'\x80\x04'  # protocol 4
    np.testing.assert_array_equal(safe_pickle.load(target)['k'], np.ones(3))
    assert os.listdir(tmp_path) == ['x.pkl']
    before = target.read_bytes()
    # What the loader would refuse is not written.
    with pytest.raises(errors.UnsafePickleError) as raised:
        safe_pickle.dump(target, {'k': collections.Counter(a=1)})
    assert str(raised.value).startswith(f'{target}: would not be readable back: refuses to '
                                        'load collections.Counter')
    with pytest.raises(errors.UnsafePickleError, match='cannot pickle'):
        safe_pickle.dump(target, {'k': lambda: 0})
    monkeypatch.setattr(fileio.os, 'replace', lambda *a: (_ for _ in ()).throw(OSError('EIO')))
    with pytest.raises(OSError):
        safe_pickle.dump(target, {'k': np.zeros(3)})
    monkeypatch.undo()
    assert target.read_bytes() == before
    assert os.listdir(tmp_path) == ['x.pkl']
