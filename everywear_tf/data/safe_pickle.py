"""Pickles from users, read without running their code.

A pickle names callables that ``pickle.load`` imports and calls, so a crafted file runs anything.
This unpickler resolves only what NumPy arrays, scalars and dtypes need to be rebuilt, plus a few
plain builtin containers; any other global is refused in ``find_class``, before it is imported
or called, with the file and the name in the error. Nothing else in a pickle can run code: the
remaining opcodes only build str/bytes/numbers/lists/tuples/dicts.
"""

import io
import os
import pickle

from everywear_tf import errors
from everywear_tf import fileio

_NUMPY_MODULES = ('numpy.core.multiarray', 'numpy._core.multiarray',  # NumPy 1.x, 2.x
                  'numpy.core.numeric', 'numpy._core.numeric')
_NUMPY_NAMES = ('_reconstruct',  # ndarray.__reduce__
                'scalar',  # numpy scalars (np.float32(1.0) ...)
                '_frombuffer')  # protocol-5 arrays
_BUILTINS = ('set', 'frozenset', 'complex', 'slice', 'range', 'bytearray')

ALLOWED = frozenset(
        {('numpy', 'ndarray'), ('numpy', 'dtype'), ('collections', 'OrderedDict')}
        | {(module, name) for module in _NUMPY_MODULES for name in _NUMPY_NAMES}
        | {('builtins', name) for name in _BUILTINS}
        # Python 2 pickles spell builtins as __builtin__ (VITON's pose.pkl is Python 2).
        | {('__builtin__', name) for name in _BUILTINS + ('xrange',) if name != 'range'}
        # Protocols 0-2 written by Python 3 spell bytes (e.g. an array's data) as
        # _codecs.encode(text, 'latin1'); encoding a string runs no user code.
        | {('_codecs', 'encode')})


class _Unpickler(pickle.Unpickler):
    def __init__(self, file, path, encoding):
        super().__init__(file, encoding=encoding)
        self.path = path

    def find_class(self, module, name):
        if (module, name) in ALLOWED:
            return super().find_class(module, name)
        raise errors.UnsafePickleError(
                self.path, f'refuses to load {module}.{name}: only NumPy arrays, scalars, dtypes '
                           'and plain containers are allowed (a pickle can run code)')

    def persistent_load(self, pid):
        raise errors.UnsafePickleError(self.path, 'refuses persistent ids (they need a loader '
                                                  'that could run code)')


def loads(data, path='<memory>', encoding='ASCII'):
    """Unpickles ``data`` (bytes); a refused global or a malformed pickle is an
    UnsafePickleError naming ``path``. ``encoding='latin1'`` reads Python 2 pickles of arrays."""
    path = os.fspath(path)
    try:
        return _Unpickler(io.BytesIO(data), path, encoding).load()
    except errors.UnsafePickleError:
        raise
    except UnicodeDecodeError as e:
        hint = " (a Python 2 pickle? read it with encoding='latin1')" if encoding.lower() in (
                'ascii', 'utf-8', 'utf8') else ''
        raise errors.UnsafePickleError(path, f'not a readable pickle: {e}{hint}') from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError,
            KeyError, ImportError, OverflowError, MemoryError, RecursionError, LookupError) as e:
        raise errors.UnsafePickleError(path, f'not a readable pickle (truncated or corrupt: '
                                             f'{type(e).__name__}: {e})') from None


def load(path, encoding='ASCII'):
    """Reads a pickle file with the restricted unpickler (see ``loads``)."""
    path = errors.require_file(path)
    try:
        with open(path, 'rb') as f:
            data = f.read()
    except OSError as e:
        raise errors.UnsafePickleError(path, f'cannot be read ({e.strerror or e})') from None
    if not data:
        raise errors.UnsafePickleError(path, 'empty file, not a pickle')
    return loads(data, path, encoding)


def dump(path, obj):
    """Pickles ``obj`` (protocol 4) atomically.

    The bytes are checked with ``loads`` first, so what is written can be read back here: an
    object the restricted unpickler would refuse is an UnsafePickleError and nothing is written.
    """
    path = os.fspath(path)
    try:
        data = pickle.dumps(obj, protocol=4)
    except (pickle.PicklingError, TypeError, AttributeError, RecursionError) as e:
        raise errors.UnsafePickleError(path, f'cannot pickle {type(obj).__name__}: {e}') \
            from None
    try:
        loads(data, path)
    except errors.UnsafePickleError as e:
        raise errors.UnsafePickleError(path, f'would not be readable back: {e.problem}') \
            from None
    fileio.atomic_write_bytes(path, data)
