"""Reads PyTorch ``.pth`` state dicts without PyTorch and without running pickled code.

Both ``torch.save`` serialisations are understood:

* the zip archive (torch ≥ 1.6 by default): ``<name>/data.pkl``, one raw little- (or, as its
  ``<name>/byteorder`` record says, big-) endian file per storage under ``<name>/data/<key>``;
* the legacy stream (torch ≤ 1.5, and ``_use_new_zipfile_serialization=False``): pickled magic
  number, protocol version (1001) and system info, the main pickle, the pickled list of storage
  keys, then per key an int64 element count and the raw little-endian bytes.

In both, tensors are pickled as ``torch._utils._rebuild_tensor_v2(storage, offset, size, stride,
...)`` and storages as persistent ids ``('storage', <torch.FloatStorage...>, key, location,
numel[, view_metadata])``. The pickles are read by a restricted unpickler that resolves only
those tensor rebuilders, the ``torch.*Storage`` types, ``torch`` dtypes and
``collections.OrderedDict``, each to a stand-in of its own: any other global is refused before
anything is imported or called (``UnsafeCheckpointError``). Tensors become NumPy arrays built from
storage, offset, size and stride.

A file that is well formed but outside what this reader understands (another dtype, a pickled
``nn.Parameter``, the pre-0.1.10 tar format...) is read with ``torch.load(weights_only=True)`` if
torch is installed; otherwise the error says to install the ``torch`` extra.
"""

import collections
import io
import os
import pickle
import struct
import tarfile
import zipfile
from typing import Any

import numpy as np

from everywear_tf import errors as base_errors
from everywear_tf.convert import errors

LEGACY_MAGIC = 0x1950a86a20f9469cfc6c
LEGACY_PROTOCOL = 1001
TORCH_EXTRA = "pip install '.[torch]'"

# torch.<X>Storage → NumPy dtype. BFloat16 has no NumPy dtype: read as uint16, widened exactly.
STORAGE_DTYPES = {
        'FloatStorage': np.float32, 'DoubleStorage': np.float64, 'HalfStorage': np.float16,
        'BFloat16Storage': 'bfloat16',
        'LongStorage': np.int64, 'IntStorage': np.int32, 'ShortStorage': np.int16,
        'CharStorage': np.int8, 'ByteStorage': np.uint8, 'BoolStorage': np.bool_,
        'ComplexFloatStorage': np.complex64, 'ComplexDoubleStorage': np.complex128,
        'UntypedStorage': np.uint8,
}
# torch.<dtype> objects (the untyped-storage form, _rebuild_tensor_v3, names them).
TORCH_DTYPES = {
        'float32': np.float32, 'float': np.float32, 'float64': np.float64, 'double': np.float64,
        'float16': np.float16, 'half': np.float16, 'bfloat16': 'bfloat16',
        'int64': np.int64, 'long': np.int64, 'int32': np.int32, 'int': np.int32,
        'int16': np.int16, 'short': np.int16, 'int8': np.int8, 'uint8': np.uint8,
        'uint16': np.uint16, 'uint32': np.uint32, 'uint64': np.uint64, 'bool': np.bool_,
        'complex64': np.complex64, 'cfloat': np.complex64, 'complex128': np.complex128,
        'cdouble': np.complex128,
}
_REBUILDERS = ('_rebuild_tensor', '_rebuild_tensor_v2', '_rebuild_tensor_v3')
# Harmless torch globals this reader does not implement: torch.load(weights_only=True) reads them.
_TORCH_ONLY = {('torch._utils', name) for name in (
        '_rebuild_parameter', '_rebuild_parameter_with_state', '_rebuild_qtensor',
        '_rebuild_sparse_tensor', '_rebuild_nested_tensor', '_rebuild_device_tensor_from_numpy',
        '_rebuild_meta_tensor_no_storage', '_rebuild_wrapper_subclass')} | {
        ('torch', 'Size'), ('torch', 'device'), ('torch', 'per_tensor_affine'),
        ('torch', 'per_channel_affine'), ('torch', 'strided'), ('torch', 'sparse_coo'),
        ('torch._tensor', '_rebuild_from_type_v2')} | {('torch', name) for name in (
        # dtypes without a NumPy equivalent
        'complex32', 'chalf', 'float8_e4m3fn', 'float8_e5m2', 'float8_e4m3fnuz',
        'float8_e5m2fnuz', 'float8_e8m0fnu', 'float4_e2m1fn_x2', 'qint8', 'quint8', 'qint32',
        'quint4x2', 'quint2x4', 'bits8', 'bits16', 'bits1x8', 'bits2x4', 'bits4x2',
        'ComplexHalfStorage', 'QInt8Storage', 'QUInt8Storage', 'QInt32Storage',
        'QUInt4x2Storage', 'QUInt2x4Storage')}
# Tensors may repeat storage elements (stride 0); beyond this many elements they must not.
_MAX_EXPANSION = 1 << 24
# torch.save stores its records uncompressed; a zip's records may declare at most this many times
# the archive's own size (plus ZIP_FLOOR bytes) uncompressed, checked before each is inflated.
MAX_ZIP_EXPANSION = 4
ZIP_FLOOR = 1 << 20


def _numpy_dtype(kind):
    return np.dtype(np.uint16 if kind == 'bfloat16' else kind)


class _StorageType:
    """Stand-in for ``torch.<X>Storage``."""

    def __init__(self, name):
        self.name = name
        self.kind = STORAGE_DTYPES[name]


class _DType:
    """Stand-in for a ``torch.<dtype>`` object."""

    def __init__(self, name):
        self.name = name
        self.kind = TORCH_DTYPES[name]


class _Storage:
    """A storage, its bytes filled in once read: raw bytes plus the element kind."""

    def __init__(self, kind, key, numel):
        self.kind, self.key, self.numel = kind, key, numel
        self.raw = None  # bytes (or a memoryview of them)
        self.big_endian = False

    def elements(self, kind):
        """The storage's bytes as a flat array of ``kind`` (little-endian unless marked)."""
        dtype = _numpy_dtype(kind)
        if self.big_endian:
            dtype = dtype.newbyteorder('>')
        return np.frombuffer(self.raw, dtype, count=len(self.raw) // dtype.itemsize)


class _View:
    """A legacy storage view: ``size`` elements of ``root`` from ``offset``."""

    def __init__(self, root, offset, size):
        self.root, self.offset, self.size = root, offset, size


class _Tensor:
    """A tensor to build once storages are read."""

    def __init__(self, storage, offset, size, stride, kind=None):
        self.storage, self.offset, self.size, self.stride = storage, offset, size, stride
        self.kind = kind  # the dtype (from _rebuild_tensor_v3), else the storage's


def _ints(value, what, path):
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, (tuple, list)) and all(
            isinstance(v, int) and not isinstance(v, bool) for v in value):
        return tuple(value)
    raise errors.TorchFileError(path, f'malformed tensor record: {what} is {value!r}')


# The pure-Python unpickler: the C one grows its memo table to twice any index a PUT names, so
# ten bytes (LONG_BINPUT 60_000_000) would cost ~1 GB before anything is refused.
_PurePythonUnpickler = pickle._Unpickler  # noqa: SLF001


class _Unpickler(_PurePythonUnpickler):
    """Resolves only the allow-listed globals, each to a stand-in; no torch code runs."""

    def __init__(self, stream, path):
        super().__init__(stream, encoding='utf-8')  # torch.load's default, for Python 2 pickles
        self.path = path
        self.storages = {}  # key → _Storage
        self.views = {}

    def find_class(self, module, name):
        if module == 'collections' and name == 'OrderedDict':
            return collections.OrderedDict
        if module == 'torch._utils' and name in _REBUILDERS:
            return self._rebuild_v3 if name == '_rebuild_tensor_v3' else self._rebuild
        if module == 'torch' and name in STORAGE_DTYPES or (module, name) == (
                'torch.storage', 'UntypedStorage'):
            return _StorageType(name)
        if module == 'torch' and name in TORCH_DTYPES:
            return _DType(name)
        if (module, name) in _TORCH_ONLY:
            raise errors.UnsupportedTorchFileError(
                    self.path, f'uses {module}.{name}, which this reader does not implement')
        hint = ('; is it a whole pickled model rather than a state_dict()?'
                if not module.startswith(('torch', 'collections', 'builtins', '__builtin__'))
                else '')
        raise errors.UnsafeCheckpointError(
                self.path, f'refuses to load {module}.{name}: a state dict holds only tensors '
                           f'and ordered dicts, and a pickle can run code (nothing was run)'
                           f'{hint}')

    def _rebuild(self, storage, offset, size, stride, *unused):
        if isinstance(storage, _View):
            storage, offset = storage.root, offset + storage.offset
        if not isinstance(storage, _Storage):
            raise errors.TorchFileError(self.path, f'malformed tensor record: storage '
                                                   f'{storage!r}')
        return _Tensor(storage, _ints(offset, 'offset', self.path),
                       _ints(size, 'size', self.path), _ints(stride, 'stride', self.path))

    def _rebuild_v3(self, storage, offset, size, stride, requires_grad, hooks, dtype, *unused):
        if not isinstance(dtype, _DType):
            raise errors.TorchFileError(self.path, f'malformed tensor record: dtype {dtype!r}')
        tensor = self._rebuild(storage, offset, size, stride)
        tensor.kind = dtype.kind
        return tensor

    def persistent_load(self, pid):
        if not isinstance(pid, tuple) or not pid:
            raise errors.TorchFileError(self.path, f'unexpected persistent id {pid!r}')
        if pid[0] == 'module':  # only whole pickled modules carry these
            raise errors.TorchFileError(
                    self.path, 'holds a whole pickled nn.Module, not a state dict: load it '
                               'with its code and torch.save(model.state_dict(), ...) instead')
        if pid[0] != 'storage' or len(pid) not in (5, 6):
            raise errors.TorchFileError(self.path, f'unexpected persistent id {pid!r}')
        storage_type, key, _, numel = pid[1:5]
        view = pid[5] if len(pid) == 6 else None
        if not isinstance(storage_type, _StorageType):
            raise errors.TorchFileError(self.path, f'unknown storage type {storage_type!r}')
        key = str(key)
        numel = _ints(numel, 'storage size', self.path)
        if numel < 0:
            raise errors.TorchFileError(self.path, f'storage {key} has {numel} elements')
        storage = self.storages.get(key)
        if storage is None:
            storage = self.storages[key] = _Storage(storage_type.kind, key, numel)
        elif storage.kind != storage_type.kind:
            raise errors.UnsupportedTorchFileError(
                    self.path, f'storage {key} is viewed as two dtypes')
        if view is None:
            return storage
        if not (isinstance(view, tuple) and len(view) == 3):
            raise errors.TorchFileError(self.path, f'malformed storage view {view!r}')
        view_key, offset, size = str(view[0]), _ints(view[1], 'view offset', self.path), \
            _ints(view[2], 'view size', self.path)
        if offset < 0 or size < 0 or offset + size > numel:
            raise errors.TorchFileError(self.path, f'storage view {view!r} exceeds storage {key} '
                                                   f'({numel} elements)')
        return self.views.setdefault(view_key, _View(storage, offset, size))


class _PlainUnpickler(_PurePythonUnpickler):
    """The legacy stream's other pickles: ints, strings, lists and dicts, no globals at all."""

    def find_class(self, module, name):
        raise pickle.UnpicklingError(f'global {module}.{name} where plain data belongs')

    def persistent_load(self, pid):
        raise pickle.UnpicklingError('persistent id where plain data belongs')


def _load_main_pickle(stream, path):
    unpickler = _Unpickler(stream, path)
    try:
        obj = unpickler.load()
    except errors.CheckpointError:
        raise
    except Exception as e:  # a malformed or truncated pickle can raise nearly anything
        raise errors.TorchFileError(path, f'malformed or truncated pickle ({e!r})') from None
    return obj, unpickler.storages


def _materialise(obj, path, depth=0):
    """Replaces _Tensor stand-ins by NumPy arrays, through dicts, lists and tuples."""
    if depth > 50:
        raise errors.TorchFileError(path, 'containers nested too deeply')
    if isinstance(obj, _Tensor):
        return _tensor_array(obj, path)
    if isinstance(obj, dict):
        out = collections.OrderedDict()
        for key, value in obj.items():
            out[key] = _materialise(value, path, depth + 1)
        return out
    if isinstance(obj, (list, tuple)):
        return type(obj)(_materialise(value, path, depth + 1) for value in obj)
    if isinstance(obj, (_Storage, _View, _StorageType, _DType)):
        raise errors.UnsupportedTorchFileError(path, 'holds bare storages or dtypes, not tensors')
    return obj


def _tensor_array(tensor, path):
    storage = tensor.storage
    kind = tensor.kind or storage.kind
    flat = storage.elements(kind)
    size, stride, offset = tensor.size, tensor.stride, tensor.offset
    if len(size) != len(stride) or offset < 0 or min(size + stride, default=0) < 0:
        raise errors.TorchFileError(path, f'malformed tensor: offset {offset}, size {size}, '
                                          f'stride {stride}')
    numel = int(np.prod(size, dtype=np.int64))
    needed = offset + sum((n - 1) * s for n, s in zip(size, stride)) + 1 if numel else 0
    if needed > len(flat):
        raise errors.TorchFileError(path, f'storage {storage.key} holds {len(flat)} elements, '
                                          f'a tensor of size {size} needs {needed}')
    if numel > max(len(flat), _MAX_EXPANSION):
        raise errors.TorchFileError(path, f'a tensor of size {size} repeats the {len(flat)} '
                                          f'elements of storage {storage.key}: refused')
    if numel == 0:
        array = np.zeros(size, flat.dtype)
    else:
        array = np.array(np.lib.stride_tricks.as_strided(
                flat[offset:], shape=size, strides=[s * flat.itemsize for s in stride]),
                order='C')
    array = array.astype(array.dtype.newbyteorder('='), copy=False)
    if kind == 'bfloat16':  # the top half of a float32
        array = (array.astype(np.uint32) << 16).view(np.float32)
    return array


def _read_zip(path):
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, EOFError) as e:
        raise errors.TorchFileError(path, f'corrupt zip archive ({e})') from None
    limit = MAX_ZIP_EXPANSION * os.path.getsize(path) + ZIP_FLOOR
    declared = [0]
    with archive:
        names = set(archive.namelist())
        pickles = sorted(n for n in names if n.endswith('/data.pkl') and n.count('/') == 1)
        if any(n.endswith(('/constants.pkl', '.py')) or '/code/' in n for n in names):
            raise errors.TorchFileError(path, 'is a TorchScript archive (torch.jit.save), not a '
                                              'torch.save state dict')
        if len(pickles) != 1:
            raise errors.TorchFileError(path, 'a zip archive without exactly one <name>/data.pkl: '
                                              'not a torch.save file')
        prefix = pickles[0][:-len('data.pkl')]

        def read(name, expected=None):
            try:
                info = archive.getinfo(name)
                if expected is not None and info.file_size != expected:
                    raise errors.TorchFileError(path, f'storage record {name} declares '
                                                      f'{info.file_size} bytes, {expected} '
                                                      'expected')
                declared[0] += info.file_size
                if declared[0] > limit:
                    raise errors.TorchFileError(
                            path, f'record {name} declares {info.file_size} bytes uncompressed: '
                                  f'the records would inflate past the limit of {limit} bytes '
                                  f'({MAX_ZIP_EXPANSION}x the file\'s size + {ZIP_FLOOR}), a '
                                  'decompression bomb? Refused before inflating')
                return archive.read(info)
            except errors.CheckpointError:
                raise
            except KeyError:
                raise errors.TorchFileError(path, f'missing record {name}') from None
            except (zipfile.BadZipFile, OSError, EOFError, ValueError) as e:  # CRC, truncation
                raise errors.TorchFileError(path, f'corrupt record {name} ({e})') from None

        big_endian = False
        if prefix + 'byteorder' in names:
            order = read(prefix + 'byteorder').decode('ascii', 'replace').strip()
            if order not in ('little', 'big'):
                raise errors.TorchFileError(path, f'unknown byte order {order!r}')
            big_endian = order == 'big'
        obj, storages = _load_main_pickle(io.BytesIO(read(pickles[0])), path)
        for storage in storages.values():
            expected = storage.numel * _numpy_dtype(storage.kind).itemsize
            raw = read(f'{prefix}data/{storage.key}', expected)
            if len(raw) != expected:
                raise errors.TorchFileError(path, f'storage {storage.key} has {len(raw)} bytes, '
                                                  f'{expected} expected')
            storage.raw, storage.big_endian = raw, big_endian
    return _materialise(obj, path)


def _read_legacy(path, data):
    stream = io.BytesIO(data)

    def plain(what):
        try:
            return _PlainUnpickler(stream, encoding='utf-8').load()
        except Exception as e:  # a malformed or truncated pickle can raise nearly anything
            raise errors.TorchFileError(path, f'not a torch.save file: unreadable {what} '
                                              f'({e!r})') from None

    if plain('header') != LEGACY_MAGIC:
        raise errors.TorchFileError(path, 'not a torch.save file (neither a zip archive nor the '
                                          'legacy magic number)')
    version = plain('protocol version')
    if version != LEGACY_PROTOCOL:
        raise errors.UnsupportedTorchFileError(path, f'legacy protocol version {version!r}')
    plain('system info')  # storages are little-endian on disk whatever the writer's byte order
    obj, storages = _load_main_pickle(stream, path)  # leaves the stream just after the pickle
    keys = plain('storage key list')
    if not isinstance(keys, list):
        raise errors.TorchFileError(path, 'malformed storage key list')
    for key in keys:
        storage = storages.get(str(key))
        if storage is None:
            raise errors.TorchFileError(path, f'storage {key} is listed but never used')
        raw = stream.read(8)
        if len(raw) != 8:
            raise errors.TorchFileError(path, f'truncated before storage {key}')
        (count,) = struct.unpack('<q', raw)
        if count != storage.numel:
            raise errors.TorchFileError(path, f'storage {key} has {count} elements, '
                                              f'{storage.numel} expected')
        size = count * _numpy_dtype(storage.kind).itemsize
        raw = stream.read(size)
        if len(raw) != size:
            raise errors.TorchFileError(path, f'truncated in storage {key} ({len(raw)} of {size} '
                                              f'bytes)')
        storage.raw = raw
    missing = sorted(s.key for s in storages.values() if s.raw is None)
    if missing:
        raise errors.TorchFileError(path, f'storages {missing} have no data')
    return _materialise(obj, path)


def _read_with_torch(path, reason):
    """The ``torch.load(weights_only=True)`` fallback, as NumPy arrays."""
    try:
        import torch  # pylint: disable=import-outside-toplevel
    except ImportError:
        raise errors.TorchRequiredError(
                path, f'{reason}; reading it needs PyTorch: install the torch extra '
                      f'({TORCH_EXTRA})') from None
    try:
        obj = torch.load(path, map_location='cpu', weights_only=True)
    except Exception as e:  # torch raises many types; the message says what
        raise errors.TorchFileError(path, f'{reason}; torch.load(weights_only=True) failed too: '
                                          f'{str(e).splitlines()[0] if str(e) else e!r}') from None

    def to_numpy(value):
        if isinstance(value, torch.Tensor):
            value = value.detach().cpu()
            if value.dtype == torch.bfloat16:
                value = value.float()
            return value.numpy().copy()
        if isinstance(value, dict):
            return collections.OrderedDict((k, to_numpy(v)) for k, v in value.items())
        if isinstance(value, (list, tuple)):
            return type(value)(to_numpy(v) for v in value)
        return value

    return to_numpy(obj)


def read_object(path: os.PathLike | str, torch_fallback: bool = True) -> Any:
    """The object a ``torch.save`` file holds, tensors as NumPy arrays."""
    path = base_errors.require_file(path)
    with open(path, 'rb') as f:
        data = f.read()
    if not data:
        raise errors.TorchFileError(path, 'empty file')
    try:
        if zipfile.is_zipfile(io.BytesIO(data)):
            return _read_zip(path)
        if len(data) >= 512 and tarfile.is_tarfile(path):
            raise errors.UnsupportedTorchFileError(path, 'the tar format of torch < 0.1.10')
        return _read_legacy(path, data)
    except errors.UnsupportedTorchFileError as e:
        if not torch_fallback or isinstance(e, errors.TorchRequiredError):
            raise
        return _read_with_torch(path, e.problem)


def unwrap_state_dict(obj: Any, path: os.PathLike | str
                      ) -> collections.OrderedDict[str, np.ndarray]:
    """The state dict in ``obj``: itself, or under 'state_dict' or 'model' of a checkpoint dict."""
    for _ in range(2):
        if isinstance(obj, dict):
            for wrapper in ('state_dict', 'model'):
                if isinstance(obj.get(wrapper), dict):
                    obj = obj[wrapper]
                    break
    if not isinstance(obj, dict):
        raise errors.TorchFileError(path, f'holds a {type(obj).__name__}, not a state dict')
    bad = [k for k, v in obj.items() if not isinstance(k, str) or not isinstance(v, np.ndarray)]
    if bad:
        raise errors.TorchFileError(path, f'entries {bad[:5]} are not named tensors: not a '
                                          f'state dict')
    return collections.OrderedDict(obj.items())


def read_state_dict(path: os.PathLike | str, torch_fallback: bool = True
                    ) -> collections.OrderedDict[str, np.ndarray]:
    """{name: NumPy array} of a ``.pth`` state dict (or of a checkpoint dict wrapping one under
    'state_dict' or 'model'), read without torch; see the module docstring."""
    return unwrap_state_dict(read_object(path, torch_fallback), path)
