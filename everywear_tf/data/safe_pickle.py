"""Pickles from users, read without running their code.

A pickle names callables that ``pickle.load`` imports and calls, so a crafted file runs anything.
This unpickler resolves only NumPy's array and scalar reconstruction, dtypes and plain containers;
any other global is refused before it is imported, with the file and the name in the error.
"""

import io
import os
import pickle

from everywear_tf import errors
from everywear_tf import fileio

_NUMPY = {'_reconstruct', 'scalar', '_frombuffer'}
ALLOWED = {
        ('numpy', 'ndarray'), ('numpy', 'dtype'),
        ('collections', 'OrderedDict'),
        ('builtins', 'set'), ('builtins', 'frozenset'), ('builtins', 'complex'),
        ('builtins', 'slice'), ('builtins', 'range'), ('builtins', 'bytearray'),
        # Python 2 pickles spell builtins as __builtin__.
        ('__builtin__', 'set'), ('__builtin__', 'frozenset'), ('__builtin__', 'complex'),
        # Protocol 0-2 pickles from Python 3 spell bytes as _codecs.encode(text, 'latin1').
        ('_codecs', 'encode'),
} | {(module, name) for module in ('numpy.core.multiarray', 'numpy._core.multiarray',
                                   'numpy.core.numeric', 'numpy._core.numeric')
     for name in _NUMPY}


class _Unpickler(pickle.Unpickler):
    def __init__(self, file, path, encoding):
        super().__init__(file, encoding=encoding)
        self.path = path

    def find_class(self, module, name):
        if (module, name) in ALLOWED:
            return super().find_class(module, name)
        raise errors.UnsafePickleError(
                self.path, f'refuses to load {module}.{name}: only numpy arrays and plain '
                           'containers are allowed (a pickle can run code)')

    def persistent_load(self, pid):
        raise errors.UnsafePickleError(self.path, 'uses persistent ids, which are not allowed')


def loads(data, path='<memory>', encoding='ASCII'):
    """Unpickles ``data``; a refused global or a malformed pickle raises UnsafePickleError."""
    try:
        return _Unpickler(io.BytesIO(data), path, encoding).load()
    except errors.UnsafePickleError:
        raise
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError,
            UnicodeDecodeError, IndexError, KeyError, ImportError) as e:
        raise errors.UnsafePickleError(path, f'not a readable pickle: {e!r}') from None


def load(path, encoding='ASCII'):
    """Reads a pickle file safely (``encoding='latin1'`` for Python 2 pickles of arrays)."""
    path = errors.require_file(path)
    with open(path, 'rb') as f:
        return loads(f.read(), path, encoding)


def dump(path, obj):
    """Pickles ``obj`` (protocol 4) atomically."""
    fileio.atomic_write_bytes(os.fspath(path), pickle.dumps(obj, protocol=4))
