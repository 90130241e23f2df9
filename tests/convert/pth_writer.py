"""Writes ``torch.save``-format files from NumPy arrays without torch, for the reader's tests.

Covers what real torch files hold and what torch 2 no longer writes (legacy storage views, CUDA
locations, big-endian zip records), plus deliberately broken files. The format follows
torch/serialization.py (``_legacy_save``, ``_save``); the torch-enabled test checks that
``torch.load`` reads these files as this helper means them.

Globals are written through stand-ins defined here, whose GLOBAL opcodes (protocol 2, as torch
uses: ``c<module>\\n<name>\\n``) are then renamed to ``torch.*``; this needs no torch.
"""

import collections
import io
import pickle
import struct
import zipfile

import numpy as np

LEGACY_MAGIC = 0x1950a86a20f9469cfc6c
STORAGE_NAMES = {
        np.dtype(np.float32): 'FloatStorage', np.dtype(np.float64): 'DoubleStorage',
        np.dtype(np.float16): 'HalfStorage', np.dtype(np.int64): 'LongStorage',
        np.dtype(np.int32): 'IntStorage', np.dtype(np.uint8): 'ByteStorage',
        np.dtype(np.bool_): 'BoolStorage',
}


class Storage:
    """A flat storage (1-d array) with its key and device location."""

    def __init__(self, data, key, location='cpu', type_name=None):
        self.data = np.array(data, order='C').reshape(-1)
        self.key, self.location = str(key), location
        self.type_name = type_name or STORAGE_NAMES[self.data.dtype]


class Tensor:
    """A tensor record: storage, offset, size, stride (in elements); ``view`` = (view_key,
    offset, size) makes the legacy writer reference a view of the storage, as torch < 1.0 could."""

    def __init__(self, storage, offset, size, stride, view=None):
        self.storage, self.offset = storage, offset
        self.size, self.stride, self.view = tuple(size), tuple(stride), view


class Global:
    """Pickles as the GLOBAL ``module.name`` (after renaming); for malicious-file tests."""


def StandInRebuildTensorV2(*args):  # noqa: N802  (renamed to torch._utils._rebuild_tensor_v2)
    raise AssertionError('never called')


_STANDIN_TYPES = {}


def _storage_type(name):
    """A stand-in class for torch.<name>, created once."""
    if name not in _STANDIN_TYPES:
        cls = type(f'StandIn{name}', (), {'__module__': __name__})
        globals()[cls.__name__] = cls
        _STANDIN_TYPES[name] = cls
    return _STANDIN_TYPES[name]


def tensors(state):
    """{name: Tensor} for {name: array}, each with its own contiguous storage."""
    out = collections.OrderedDict()
    for i, (name, array) in enumerate(state.items()):
        array = np.array(array, order='C')
        strides = tuple(s // array.itemsize for s in array.strides)
        out[name] = Tensor(Storage(array, key=i), 0, array.shape, strides)
    return out


def _pickle(obj, storages, legacy, renames):
    stream = io.BytesIO()
    _StoragePickler(stream, storages, legacy).dump(obj)
    data = stream.getvalue()
    replacements = {f'{__name__}\nStandInRebuildTensorV2\n': 'torch._utils\n_rebuild_tensor_v2\n'}
    for name, cls in _STANDIN_TYPES.items():
        replacements[f'{__name__}\n{cls.__name__}\n'] = f'torch\n{name}\n'
    replacements.update({f'{__name__}\n{k}\n': v for k, v in renames.items()})
    for old, new in replacements.items():
        data = data.replace(b'c' + old.encode(), b'c' + new.encode())
    return data


class _StorageRef:
    """What a Tensor's rebuild call receives first: pickled as the storage's persistent id."""

    def __init__(self, tensor):
        self.tensor = tensor


class _StoragePickler(pickle.Pickler):
    def __init__(self, stream, storages, legacy):
        super().__init__(stream, protocol=2)
        self.storages, self.legacy = storages, legacy

    def persistent_id(self, obj):
        if not isinstance(obj, _StorageRef):
            return None
        tensor = obj.tensor
        storage = tensor.storage
        if self.storages.setdefault(storage.key, storage) is not storage:
            raise ValueError(f'two storages with key {storage.key}')
        pid = ('storage', _storage_type(storage.type_name), storage.key, storage.location,
               storage.data.size)
        return pid + (tensor.view,) if self.legacy else pid

    def reducer_override(self, obj):
        if isinstance(obj, Tensor):
            return (StandInRebuildTensorV2, (_StorageRef(obj), obj.offset, obj.size, obj.stride,
                                             False, collections.OrderedDict()))
        if isinstance(obj, Global):
            return obj.reduce
        return NotImplemented


def evil(module, name, *args):
    """An object that pickles as ``module.name(*args)`` (e.g. os.system('touch marker'))."""
    obj = Global()
    stand_in = f'StandInGlobal_{module.replace(".", "_")}_{name}'
    if stand_in not in globals():
        globals()[stand_in] = type(stand_in, (), {'__module__': __name__})
    obj.reduce = (globals()[stand_in], args)
    obj.rename = (stand_in, f'{module}\n{name}\n')
    return obj


def _renames(obj, out):
    if isinstance(obj, Global):
        out[obj.rename[0]] = obj.rename[1]
    elif isinstance(obj, dict):
        for value in obj.values():
            _renames(value, out)
    elif isinstance(obj, (list, tuple)):
        for value in obj:
            _renames(value, out)
    return out


def write_legacy(path, obj, sys_info=None, storage_bytes=None):
    """The legacy torch.save stream; ``storage_bytes`` {key: bytes} overrides a storage's data."""
    storages = {}
    main = _pickle(obj, storages, legacy=True, renames=_renames(obj, {}))
    out = io.BytesIO()
    pickle.dump(LEGACY_MAGIC, out, protocol=2)
    pickle.dump(1001, out, protocol=2)
    pickle.dump(sys_info or {'protocol_version': 1001, 'little_endian': True,
                             'type_sizes': {'short': 2, 'int': 4, 'long': 8}}, out, protocol=2)
    out.write(main)
    keys = sorted(storages)
    pickle.dump(keys, out, protocol=2)
    for key in keys:
        data = storages[key].data
        out.write(struct.pack('<q', data.size))
        raw = (storage_bytes or {}).get(key)
        out.write(raw if raw is not None else data.astype(data.dtype.newbyteorder('<')).tobytes())
    with open(path, 'wb') as f:
        f.write(out.getvalue())
    return path


def write_zip(path, obj, byteorder='little', name='archive'):
    """The zip torch.save archive (``byteorder`` 'big' writes big-endian storages)."""
    storages = {}
    main = _pickle(obj, storages, legacy=False, renames=_renames(obj, {}))
    with zipfile.ZipFile(path, 'w', zipfile.ZIP_STORED) as archive:
        archive.writestr(f'{name}/data.pkl', main)
        archive.writestr(f'{name}/byteorder', byteorder)
        for key, storage in storages.items():
            order = '>' if byteorder == 'big' else '<'
            archive.writestr(f'{name}/data/{key}',
                             storage.data.astype(storage.data.dtype.newbyteorder(order)).tobytes())
        archive.writestr(f'{name}/version', '3\n')
    return path
