"""Typed-field TensorProtos through arrays equal the ones built through Python lists."""

import numpy as np
import pytest

from everywear_tf.serving import client
from everywear_tf.serving import dev_server
from everywear_tf.serving import wire

from tests import baselines


def _arrays():
    rng = np.random.default_rng(3)
    return [rng.integers(0, 256, (2, 64, 48, 3)).astype(np.uint8),
            rng.integers(0, 128, (3, 5)).astype(np.uint8),  # one-byte varints only
            np.full((2, 4), 255, np.uint8), np.zeros((2, 0, 3), np.uint8),
            np.uint8([[0, 127, 128, 255, 1]]),
            rng.normal(size=(2, 64, 48, 2)).astype(np.float32),
            np.float32([[-0.0, np.inf, -np.inf, 1e-38, 3.4e38]]), np.zeros((0, 50), np.float32)]


@pytest.mark.parametrize('index', range(8))
def test_encode_equals_the_typed_fields_built_through_lists(index):
    array = _arrays()[index]
    expected = baselines.typed_fields(array)
    got = dev_server._typed_fields(array)
    assert got == expected
    assert got.SerializeToString() == expected.SerializeToString()


@pytest.mark.parametrize('index', range(8))
def test_decode_equals_reading_through_lists(index):
    array = _arrays()[index]
    proto = baselines.typed_fields(array)
    got = client._from_proto(proto)
    expected = baselines.from_typed_fields(proto)
    assert got.dtype == expected.dtype == array.dtype and got.shape == array.shape
    np.testing.assert_array_equal(got, expected)


def test_longer_varints_and_other_dtypes_take_the_generic_path():
    values = np.uint64([0, 1, 127, 128, 300, 16384, 2 ** 31 - 1, 2 ** 32 + 5])
    payload = b''.join(wire._varint(int(v)) for v in values)
    np.testing.assert_array_equal(wire.decode_varints(payload), values)
    assert wire.encode(np.int32([1, 2])) is None
    proto = dev_server._typed_fields(np.int32([[1, -2]]))
    assert list(proto.int_val) == [1, -2] and wire.decode(proto) is None
    with pytest.raises(ValueError, match='truncated'):
        wire.decode_varints(b'\x80\x80\x80')
