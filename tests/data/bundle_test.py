"""Everywear bundles: the keys, their checks, safe casts and safe reading."""

import os
import pickle

import numpy as np
import pytest

from everywear_tf import errors
from everywear_tf import fileio
from everywear_tf import spec
from everywear_tf.data import bundle
from everywear_tf.data import safe_pickle
from everywear_tf.data import synthetic

from tests.data.fixtures import path
from tests.testdata import make_fixtures


def _person():
    return synthetic.render_person(np.random.default_rng(make_fixtures.SEED), sleeve=0.45,
                                   pattern='stripes')


def _valid():
    return bundle.read_bundle(path('bundle_valid.pkl'))


def test_valid_bundle_holds_the_drawn_person():
    loaded = _valid()
    assert list(loaded) == list(bundle.KEYS)
    for key, (dtype, shape) in bundle.FIELDS.items():
        assert loaded[key].dtype == dtype and loaded[key].shape == shape, key
    person = _person()
    np.testing.assert_array_equal(loaded['image'], person.image)
    np.testing.assert_array_equal(loaded['parse'], person.parse)
    np.testing.assert_array_equal(loaded['keypoints'], person.keypoints.astype(np.float32))
    assert loaded['transform'].tolist() == [[0.5, 0.0, 10.0], [0.0, 0.5, 0.0]]
    assert loaded['source_size'].tolist() == [512, 364]
    assert loaded['frame'] == spec.BODY_FRAME
    raw = pickle.loads(open(path('bundle_valid.pkl'), 'rb').read())  # plain types only
    assert type(raw) is dict and type(raw['frame']) is str


@pytest.mark.parametrize('change,problem', [
        (lambda b: b.pop('transform'), "missing keys ['transform']"),
        (lambda b: b.update(extra=1), "unknown keys ['extra']"),
        (lambda b: b.update(parse=np.zeros((10, 10), np.uint8)),
         "'parse' must have shape (256, 192), got (10, 10)"),
        (lambda b: b.update(keypoints=np.zeros((18, 2), np.float32)), "'keypoints' must have"),
        (lambda b: b.update(image=b['image'].astype(np.float32)),
         "'image' must be uint8, got float32"),
        (lambda b: b.update(image=b['image'].astype(np.int64) + 100),
         "'image' must be uint8, got int64 with values outside 0..255"),
        (lambda b: b.update(source_size=np.array([5.0, 6.0])),
         "'source_size' must be int64, got float64"),
        (lambda b: b.update(source_size=np.array([0, 6])), "'source_size' must be positive"),
        (lambda b: b.update(parse=np.full((256, 192), 30, np.uint8)), "labels [30] above 20"),
        (lambda b: b.update(keypoints=np.full((18, 3), np.nan, np.float32)),
         "'keypoints' holds NaN or infinity"),
        (lambda b: b.update(transform=np.full((2, 3), np.inf)), "'transform' holds NaN"),
        (lambda b: b.update(keypoints=np.full((18, 3), 1e300)), 'beyond float32 range'),
        (lambda b: b.update(keypoints=b['keypoints'].tolist()), "'keypoints' must be a numpy"),
        (lambda b: b.update(frame='legs'), "'frame' must be one of ('body', 'upper'), got 'legs'"),
        (lambda b: b.update(frame=b'body'), "'frame' must be one of"),
        (lambda b: b.update(parse=np.zeros((256, 192), bool)), "'parse' must be uint8, got bool"),
])
def test_bad_bundles_name_the_file_and_key(tmp_path, change, problem):
    value = _valid()
    change(value)
    target = tmp_path / 'b.pkl'
    target.write_bytes(pickle.dumps(value, protocol=4))
    with pytest.raises(errors.BundleError) as raised:
        bundle.read_bundle(target)
    assert str(raised.value).startswith(str(target) + ': ') and problem in str(raised.value)
    with pytest.raises(errors.BundleError) as raised:
        bundle.write_bundle(tmp_path / 'new.pkl', value)
    assert str(tmp_path / 'new.pkl') in str(raised.value) and problem in str(raised.value)
    assert not os.path.exists(tmp_path / 'new.pkl')


def test_not_a_dict(tmp_path):
    target = tmp_path / 'b.pkl'
    safe_pickle.dump(target, [1, 2])
    with pytest.raises(errors.BundleError, match='a bundle is a dict, got list'):
        bundle.read_bundle(target)


def test_value_preserving_casts_are_accepted(tmp_path):
    value = _valid()
    value.update(keypoints=value['keypoints'].astype(np.float64),
                 transform=value['transform'].astype(np.float32),
                 source_size=value['source_size'].astype(np.int32),
                 image=value['image'].astype(np.int64), parse=value['parse'].astype(np.uint16),
                 frame=np.str_('upper'))
    target = tmp_path / 'b.pkl'
    target.write_bytes(pickle.dumps(value))
    loaded = bundle.read_bundle(target)
    for key, (dtype, _) in bundle.FIELDS.items():
        assert loaded[key].dtype == dtype, key
        np.testing.assert_array_equal(loaded[key], _valid()[key])
    assert loaded['frame'] == spec.UPPER_FRAME and type(loaded['frame']) is str


def test_round_trip_and_atomic_writes(tmp_path, monkeypatch):
    target = tmp_path / 'out' / 'person_0_pkl.pkl'
    value = _valid()
    bundle.write_bundle(target, value)
    loaded = bundle.read_bundle(target)
    for key in bundle.KEYS:
        np.testing.assert_array_equal(loaded[key], value[key])
    assert os.listdir(target.parent) == ['person_0_pkl.pkl']
    before = target.read_bytes()
    with pytest.raises(errors.BundleError):
        bundle.write_bundle(target, {'image': 1})
    monkeypatch.setattr(fileio.os, 'replace', lambda *a: (_ for _ in ()).throw(OSError('EIO')))
    with pytest.raises(OSError):
        bundle.write_bundle(target, dict(value, frame=spec.UPPER_FRAME))
    monkeypatch.undo()
    assert target.read_bytes() == before
    assert os.listdir(target.parent) == ['person_0_pkl.pkl']


def test_a_bundle_with_code_is_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(errors.UnsafePickleError, match='refuses to load'):
        bundle.read_bundle(path('malicious.pkl'))
    assert os.listdir(tmp_path) == []
    with pytest.raises(errors.InputNotFoundError):
        bundle.read_bundle(tmp_path / 'missing.pkl')


def test_reading_changes_nothing():
    before = open(path('bundle_valid.pkl'), 'rb').read()
    _valid()
    assert open(path('bundle_valid.pkl'), 'rb').read() == before
