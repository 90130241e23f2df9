"""Everywear bundles: the keys, their checks, and safe reading."""

import numpy as np
import pytest

from everywear_tf import errors
from everywear_tf.data import bundle
from everywear_tf.data import safe_pickle
from tests.data.fixtures import path


def test_valid_bundle():
    loaded = bundle.read_bundle(path('bundle_valid.pkl'))
    assert set(loaded) == set(bundle.FIELDS) | {'frame'}
    for key, (dtype, shape) in bundle.FIELDS.items():
        assert loaded[key].dtype == dtype and loaded[key].shape == shape
    assert loaded['frame'] == bundle.BODY


@pytest.mark.parametrize('change,problem', [
        (lambda b: b.pop('transform'), "missing keys ['transform']"),
        (lambda b: b.update(parse=np.zeros((10, 10), np.uint8)), "'parse' must have shape"),
        (lambda b: b.update(image=b['image'].astype(np.float32)), "'image' must be uint8"),
        (lambda b: b.update(frame='legs'), "'frame' must be one of"),
        (lambda b: b.update(keypoints=np.full((18, 3), np.nan, np.float32)), 'NaN'),
])
def test_bad_bundles(tmp_path, change, problem):
    value = bundle.read_bundle(path('bundle_valid.pkl'))
    change(value)
    target = str(tmp_path / 'b.pkl')
    safe_pickle.dump(target, value)
    with pytest.raises(errors.BundleError) as raised:
        bundle.read_bundle(target)
    assert problem in str(raised.value) and target in str(raised.value)


def test_write_validates_first(tmp_path):
    with pytest.raises(errors.BundleError):
        bundle.write_bundle(str(tmp_path / 'b.pkl'), {'image': 1})
    assert list(tmp_path.iterdir()) == []


def test_a_bundle_with_code_is_refused():
    with pytest.raises(errors.UnsafePickleError):
        bundle.read_bundle(path('malicious.pkl'))
