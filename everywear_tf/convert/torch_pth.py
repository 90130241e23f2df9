"""Reads PyTorch ``.pth`` state dicts without PyTorch and without running pickled code.

Both ``torch.save`` serialisations: the zip archive (``<name>/data.pkl`` plus one raw file per
storage under ``<name>/data/``) and the legacy stream (magic number, protocol version, system
info, the main pickle, the storage keys, then each storage as an int64 element count and raw
bytes). The pickles are read by a restricted unpickler that resolves only tensor rebuilding,
storage types and ordered dicts; tensors become NumPy arrays.
"""

import collections
import io
import pickle
import struct
import zipfile

import numpy as np

from everywear_tf import errors

LEGACY_MAGIC = 0x1950a86a20f9469cfc6c
STORAGE_DTYPES = {
        'FloatStorage': np.float32, 'DoubleStorage': np.float64, 'HalfStorage': np.float16,
        'LongStorage': np.int64, 'IntStorage': np.int32, 'ShortStorage': np.int16,
        'CharStorage': np.int8, 'ByteStorage': np.uint8, 'BoolStorage': np.bool_,
}


class TorchFileError(errors.InputError):
    """A .pth file that cannot be read as a PyTorch state dict."""


class _StorageType:
    def __init__(self, name):
        self.name = name
        self.dtype = np.dtype(STORAGE_DTYPES[name])


class _Storage:
    """A storage reference resolved lazily: (dtype, key, element count)."""

    def __init__(self, storage_type, key, numel):
        self.dtype, self.key, self.numel = storage_type.dtype, str(key), int(numel)
        self.array = None


def _rebuild_tensor(storage, offset, size, stride, *unused):
    return ('tensor', storage, int(offset), tuple(size), tuple(stride))


class _Unpickler(pickle.Unpickler):
    def __init__(self, stream, path):
        super().__init__(stream)
        self.path = path
        self.storages = {}

    def find_class(self, module, name):
        if module == 'collections' and name == 'OrderedDict':
            return collections.OrderedDict
        if module == 'torch._utils' and name in ('_rebuild_tensor_v2', '_rebuild_tensor'):
            return _rebuild_tensor
        if module == 'torch' and name in STORAGE_DTYPES:
            return _StorageType(name)
        raise errors.UnsafePickleError(
                self.path, f'refuses to load {module}.{name}: a state dict holds only tensors '
                           'and ordered dicts (a pickle can run code)')

    def persistent_load(self, pid):
        if not isinstance(pid, tuple) or len(pid) < 5 or pid[0] != 'storage':
            raise TorchFileError(self.path, f'unexpected persistent id {pid!r}')
        storage_type, key, numel = pid[1], pid[2], pid[4]
        if not isinstance(storage_type, _StorageType):
            raise TorchFileError(self.path, f'unknown storage type {storage_type!r}')
        if key not in self.storages:
            self.storages[str(key)] = _Storage(storage_type, key, numel)
        return self.storages[str(key)]


class _PlainUnpickler(pickle.Unpickler):
    """The legacy header's pickles: plain ints and dicts, no globals at all."""

    def find_class(self, module, name):
        raise pickle.UnpicklingError(f'global {module}.{name} in a header')


def _load_pickle(stream, path):
    unpickler = _Unpickler(stream, path)
    try:
        return unpickler.load(), unpickler.storages
    except (errors.UnsafePickleError, TorchFileError):
        raise
    except Exception as e:  # a malformed pickle can raise nearly anything
        raise TorchFileError(path, f'malformed pickle: {e!r}') from None


def _materialise(obj, path):
    """Replaces ('tensor', storage, offset, size, stride) placeholders by NumPy arrays."""
    if isinstance(obj, tuple) and len(obj) == 5 and obj[0] == 'tensor':
        _, storage, offset, size, stride = obj
        itemsize = storage.dtype.itemsize
        needed = offset + sum((s - 1) * st for s, st in zip(size, stride)) + 1 if all(size) else 0
        if needed > len(storage.array):
            raise TorchFileError(path, f'storage {storage.key} holds {len(storage.array)} '
                                       f'elements, a tensor needs {needed}')
        view = np.lib.stride_tricks.as_strided(
                storage.array[offset:], shape=size, strides=[s * itemsize for s in stride])
        return np.array(view)
    if isinstance(obj, dict):
        out = collections.OrderedDict()
        for key, value in obj.items():
            out[key] = _materialise(value, path)
        return out
    if isinstance(obj, (list, tuple)):
        return type(obj)(_materialise(value, path) for value in obj)
    return obj


def _read_zip(path):
    try:
        archive = zipfile.ZipFile(path)
    except zipfile.BadZipFile as e:
        raise TorchFileError(path, f'corrupt zip archive: {e}') from None
    with archive:
        names = archive.namelist()
        pickles = [n for n in names if n.endswith('/data.pkl') or n == 'data.pkl']
        if not pickles:
            raise TorchFileError(path, 'zip archive without data.pkl: not a torch.save file')
        prefix = pickles[0][:-len('data.pkl')]
        byteorder = prefix + 'byteorder'
        if byteorder in names and archive.read(byteorder).decode().strip() != 'little':
            raise TorchFileError(path, 'big-endian tensors are not supported')
        obj, storages = _load_pickle(io.BytesIO(archive.read(pickles[0])), path)
        for storage in storages.values():
            entry = f'{prefix}data/{storage.key}'
            try:
                raw = archive.read(entry)
            except KeyError:
                raise TorchFileError(path, f'missing storage {entry}') from None
            storage.array = np.frombuffer(raw, storage.dtype, count=len(raw) //
                                          storage.dtype.itemsize)
    return _materialise(obj, path)


def _read_legacy(path, data):
    stream = io.BytesIO(data)

    def header():
        try:
            return _PlainUnpickler(stream).load()
        except Exception as e:  # a malformed pickle can raise nearly anything
            raise TorchFileError(path, f'not a torch.save file ({e!r})') from None

    if header() != LEGACY_MAGIC:
        raise TorchFileError(path, 'not a torch.save file (neither a zip archive nor the legacy '
                                   'magic number)')
    header()  # protocol version
    info = header()
    if isinstance(info, dict) and not info.get('little_endian', True):
        raise TorchFileError(path, 'big-endian tensors are not supported')
    obj, storages = _load_pickle(stream, path)  # leaves the stream just after the pickle
    keys = header()
    if not isinstance(keys, list):
        raise TorchFileError(path, 'malformed storage key list')
    for key in keys:
        raw = stream.read(8)
        if len(raw) != 8:
            raise TorchFileError(path, f'truncated before storage {key}')
        (count,) = struct.unpack('<q', raw)
        storage = storages.get(str(key))
        if storage is None:
            raise TorchFileError(path, f'storage {key} is not referenced')
        size = count * storage.dtype.itemsize
        raw = stream.read(size)
        if len(raw) != size:
            raise TorchFileError(path, f'truncated storage {key}')
        storage.array = np.frombuffer(raw, storage.dtype)
    missing = [s.key for s in storages.values() if s.array is None]
    if missing:
        raise TorchFileError(path, f'storages {missing} have no data')
    return _materialise(obj, path)


def read_state_dict(path):
    """{name: numpy array} of a .pth state dict (or of a checkpoint dict wrapping one under
    'state_dict' or 'model')."""
    path = errors.require_file(path)
    with open(path, 'rb') as f:
        data = f.read()
    if not data:
        raise TorchFileError(path, 'empty file')
    obj = _read_zip(path) if zipfile.is_zipfile(io.BytesIO(data)) else _read_legacy(path, data)
    for wrapper in ('state_dict', 'model'):
        if isinstance(obj, dict) and isinstance(obj.get(wrapper), dict):
            obj = obj[wrapper]
    if not isinstance(obj, dict):
        raise TorchFileError(path, f'holds a {type(obj).__name__}, not a state dict')
    bad = [k for k, v in obj.items() if not isinstance(v, np.ndarray)]
    if bad:
        raise TorchFileError(path, f'entries {bad[:5]} are not tensors')
    return collections.OrderedDict((str(k), v) for k, v in obj.items())
