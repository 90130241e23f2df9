"""TensorProto typed fields (``int_val``, ``float_val``) to and from NumPy, without a Python step
per value.

TF Serving 2.15.1 answers Predict with each output's values in the typed fields
(``Tensor::AsProtoField``), not ``tensor_content``: a uint8 image becomes ``int_val`` varints
(1 byte below 128, 2 from 128) and a float32 tensor ``float_val``. Converting those through
Python lists costs about 35 ms per 256×192 GMM response (BUILD.md §12). Both fields are packed
on the wire, so their payload is read and written here with array operations instead; the
resulting messages are the same, field for field.
"""

import numpy as np
from tensorflow.core.framework import tensor_pb2
from tensorflow.core.framework import tensor_shape_pb2
from tensorflow.core.framework import types_pb2

# TensorProto field numbers (tensorflow/core/framework/tensor.proto).
_DTYPE, _SHAPE, _FLOAT_VAL, _INT_VAL = 1, 2, 5, 7
_VARINT, _FIXED64, _LENGTH, _FIXED32 = 0, 1, 2, 5
# The dtypes whose typed field this module reads and writes, and that field.
_FIELDS = {types_pb2.DT_UINT8: (_INT_VAL, np.uint8), types_pb2.DT_FLOAT: (_FLOAT_VAL, np.float32)}


def _varint(value):
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _read_varint(data, position):
    value, shift = 0, 0
    while True:
        byte = data[position]
        position += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, position
        shift += 7


def _uint8_varints(values):
    """Packed varint payload of uint8 ``values`` (a flat array)."""
    high = values >= 0x80
    starts = np.arange(values.size) + np.concatenate([[0], np.cumsum(high)[:-1]])
    out = np.empty(values.size + int(high.sum()), np.uint8)
    out[starts] = np.where(high, values | 0x80, values)
    out[starts[high] + 1] = 1  # values below 256 need one more byte holding bit 7
    return out.tobytes()


def _short_varints(data):
    """Values of a payload whose varints are 1 or 2 bytes long (uint8 values), or None."""
    high = data >= 0x80
    if not high.any():
        return data.astype(np.uint64)
    if high[-1] or (high[:-1] & high[1:]).any():
        return None  # a truncated payload or a longer varint
    start = np.ones(data.size, bool)
    start[1:] = ~high[:-1]
    positions = np.flatnonzero(start)
    following = np.append(data, np.uint8(0))[positions + 1].astype(np.uint16)
    values = (data[positions] & 0x7F).astype(np.uint16)
    values |= (following << 7) * high[positions]
    return values.astype(np.uint64)


def decode_varints(payload):
    """uint64 values of a packed varint payload (bytes)."""
    data = np.frombuffer(payload, np.uint8)
    values = _short_varints(data) if data.size else data.astype(np.uint64)
    if values is not None:
        return values
    ends = np.flatnonzero(data < 0x80)
    if not ends.size or ends[-1] != data.size - 1:
        raise ValueError('truncated varint payload')
    starts = np.concatenate([[0], ends[:-1] + 1])
    group = np.repeat(np.arange(ends.size), ends - starts + 1)
    shift = (7 * (np.arange(data.size) - starts[group])).astype(np.uint64)
    parts = (data & 0x7F).astype(np.uint64) << shift
    return np.add.reduceat(parts, starts)


def encode(array):
    """A TensorProto holding ``array`` in its typed field, as TF Serving writes outputs; None for
    dtypes other than uint8 and float32 (the caller's generic path handles them)."""
    array = np.asarray(array)
    dtype = {np.dtype(np.uint8): types_pb2.DT_UINT8,
             np.dtype(np.float32): types_pb2.DT_FLOAT}.get(array.dtype)
    if dtype is None:
        return None
    shape = tensor_shape_pb2.TensorShapeProto(
            dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=d) for d in array.shape])
    shape_bytes = shape.SerializeToString()
    data = bytearray(_varint(_DTYPE << 3 | _VARINT) + _varint(dtype))
    data += _varint(_SHAPE << 3 | _LENGTH) + _varint(len(shape_bytes)) + shape_bytes
    flat = array.ravel()
    if flat.size:
        field, _ = _FIELDS[dtype]
        payload = (_uint8_varints(flat) if dtype == types_pb2.DT_UINT8
                   else flat.astype('<f4').tobytes())
        data += _varint(field << 3 | _LENGTH) + _varint(len(payload)) + payload
    return tensor_pb2.TensorProto.FromString(bytes(data))


def decode(proto):
    """The values of a uint8 or float32 TensorProto's typed field as a flat array, or None when
    the proto holds something else (another dtype, unpacked values): use the generic path."""
    if proto.dtype not in _FIELDS:
        return None
    field, dtype = _FIELDS[proto.dtype]
    data = proto.SerializeToString()
    payloads, position = [], 0
    while position < len(data):
        key, position = _read_varint(data, position)
        number, wire_type = key >> 3, key & 7
        if wire_type == _VARINT:
            _, position = _read_varint(data, position)
        elif wire_type == _FIXED64:
            position += 8
        elif wire_type == _FIXED32:
            if number == field:
                return None
            position += 4
        elif wire_type == _LENGTH:
            length, position = _read_varint(data, position)
            if number == field:
                payloads.append(data[position:position + length])
            position += length
        else:
            return None
    payload = b''.join(payloads)
    if dtype == np.float32:
        return np.frombuffer(payload, '<f4').astype(np.float32)
    return decode_varints(payload).astype(np.uint8)


# The typed field each dtype's values live in (tensor.proto), and values per element there.
_VALUE_FIELDS = {
        types_pb2.DT_FLOAT: ('float_val', 1), types_pb2.DT_DOUBLE: ('double_val', 1),
        types_pb2.DT_INT32: ('int_val', 1), types_pb2.DT_UINT8: ('int_val', 1),
        types_pb2.DT_INT16: ('int_val', 1), types_pb2.DT_INT8: ('int_val', 1),
        types_pb2.DT_UINT16: ('int_val', 1), types_pb2.DT_INT64: ('int64_val', 1),
        types_pb2.DT_UINT32: ('uint32_val', 1), types_pb2.DT_UINT64: ('uint64_val', 1),
        types_pb2.DT_BOOL: ('bool_val', 1), types_pb2.DT_STRING: ('string_val', 1),
        types_pb2.DT_HALF: ('half_val', 1), types_pb2.DT_BFLOAT16: ('half_val', 1),
        types_pb2.DT_COMPLEX64: ('scomplex_val', 2), types_pb2.DT_COMPLEX128: ('dcomplex_val', 2)}
_ITEM_BYTES = {types_pb2.DT_FLOAT: 4, types_pb2.DT_DOUBLE: 8, types_pb2.DT_INT32: 4,
               types_pb2.DT_UINT8: 1, types_pb2.DT_INT16: 2, types_pb2.DT_INT8: 1,
               types_pb2.DT_UINT16: 2, types_pb2.DT_INT64: 8, types_pb2.DT_UINT32: 4,
               types_pb2.DT_UINT64: 8, types_pb2.DT_BOOL: 1, types_pb2.DT_STRING: 8,
               types_pb2.DT_HALF: 2, types_pb2.DT_BFLOAT16: 2, types_pb2.DT_COMPLEX64: 8,
               types_pb2.DT_COMPLEX128: 16}
_MAX_DIMS = 254  # TensorShape::kMaxDims
_INT64_MAX = 2 ** 63 - 1


def tensor_layout(proto):
    """(shape tuple, bytes the values take once decoded) of a request's TensorProto, after the
    checks TensorFlow's ``Tensor::FromProto`` makes before it allocates anything: a dtype that
    holds values (not DT_INVALID, a reference, resource or variant type), a shape of known rank
    with no negative dimension and an element count that fits int64, ``tensor_content`` of
    exactly that many elements, and no more typed values than elements (fewer repeat the last
    one, none are zeros, as in TensorFlow). Raises ValueError saying which check failed."""
    dtype = proto.dtype
    if dtype not in _VALUE_FIELDS:
        name = types_pb2.DataType.Name(dtype) if dtype in types_pb2.DataType.values() else dtype
        raise ValueError(f'dtype {name} holds no values')
    shape = proto.tensor_shape
    if shape.unknown_rank:
        raise ValueError('unknown rank')
    if len(shape.dim) > _MAX_DIMS:
        raise ValueError(f'{len(shape.dim)} dimensions, more than {_MAX_DIMS}')
    dims = tuple(d.size for d in shape.dim)
    count = 1
    for size in dims:
        if size < 0:
            raise ValueError(f'negative dimension in shape {list(dims)}')
        count *= size
        if count > _INT64_MAX:
            raise ValueError(f'shape {list(dims)} has more than 2^63-1 elements')
    item = _ITEM_BYTES[dtype]
    if proto.tensor_content and dtype != types_pb2.DT_STRING:
        if len(proto.tensor_content) != count * item:
            raise ValueError(f'tensor_content holds {len(proto.tensor_content)} bytes, shape '
                             f'{list(dims)} of {types_pb2.DataType.Name(dtype)} takes '
                             f'{count * item}')
    else:
        field, per_element = _VALUE_FIELDS[dtype]
        values = len(getattr(proto, field))
        if values > count * per_element or values % per_element:
            raise ValueError(f'{values} values in {field} for shape {list(dims)}')
    return dims, count * item
