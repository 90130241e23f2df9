"""Pickles from users, read without running their code and in bounded memory.

A pickle names callables that ``pickle.load`` imports and calls, so a crafted file runs anything.
This unpickler resolves only what NumPy arrays, scalars and dtypes need to be rebuilt, plus a few
plain builtin containers; any other global is refused in ``find_class``, before it is imported
or called, with the file and the name in the error.

A pickle can also ask an allowed callable for far more memory than the file holds: 41 bytes
spell ``bytearray(3_000_000_000)``, a few more ``frozenset(range(30_000_000))`` or a NumPy array
whose declared shape has nothing to do with the bytes that follow. So every call and every
``BUILD`` is checked before it runs (the opcodes are interpreted by the pure-Python unpickler,
whose calls can be intercepted): arguments of the types each callable needs, an array's declared
shape × dtype equal to the data that comes with it, and everything built charged against one
budget, a small multiple of the file's own size (``BUDGET_FACTOR``, plus ``BUDGET_FLOOR``). A
file larger than ``MAX_PICKLE_BYTES`` is refused before it is read. Going over is an
UnsafePickleError that names the file and the limit.
"""

import _codecs
import collections
import io
import math
import os
import pickle
import struct

import numpy as np

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

# Limits (bytes). A pickle is refused unread above MAX_PICKLE_BYTES; what its opcodes build may
# not exceed BUDGET_FACTOR × its size + BUDGET_FLOOR (arrays' data is in the file, so an honest
# pickle builds about its own size; Python 2 array data is decoded twice).
MAX_PICKLE_BYTES = 1 << 30
BUDGET_FACTOR = 8
BUDGET_FLOOR = 1 << 20
_MAX_DIMS = 32  # NumPy's limit
_CONTAINER_COST = 64  # what an empty dict, list or set costs, about
_LATIN1 = ('latin1', 'latin-1', 'iso-8859-1', 'iso8859-1', 'l1')


def _numpy_callables():
    found = {}
    for module in _NUMPY_MODULES:
        try:
            imported = __import__(module, fromlist=['_reconstruct'])
        except ImportError:
            continue
        for name in _NUMPY_NAMES:
            if hasattr(imported, name):
                found[getattr(imported, name)] = name
    return found


_NUMPY_CALLABLES = _numpy_callables()


class _Unpickler(pickle._Unpickler):  # noqa: SLF001 - the pure-Python one can be intercepted
    dispatch = dict(pickle._Unpickler.dispatch)

    def __init__(self, file, path, encoding, budget):
        super().__init__(file, encoding=encoding)
        self.path = path
        self.budget = budget
        self.spent = 0

    # -- errors and the budget --------------------------------------------------------------

    def _refuse(self, problem):
        return errors.UnsafePickleError(self.path, problem)

    def _charge(self, nbytes, what):
        self.spent += int(nbytes)
        if self.spent > self.budget:
            raise self._refuse(f'{what} would take the memory it builds past the limit of '
                               f'{self.budget} bytes ({BUDGET_FACTOR}x the file\'s size + '
                               f'{BUDGET_FLOOR}): refused before allocating')

    def _length(self, value, what):
        """len(value) for the bounded sequences an argument may be; other iterables refused."""
        if isinstance(value, (bytes, bytearray, str, list, tuple, dict, set, frozenset, range)):
            return len(value)
        raise self._refuse(f'{what} of a {type(value).__name__} is not allowed')

    # -- globals ----------------------------------------------------------------------------

    def find_class(self, module, name):
        if (module, name) in ALLOWED:
            return super().find_class(module, name)
        raise self._refuse(f'refuses to load {module}.{name}: only NumPy arrays, scalars, dtypes '
                           'and plain containers are allowed (a pickle can run code)')

    def persistent_load(self, pid):
        raise self._refuse('refuses persistent ids (they need a loader that could run code)')

    # -- calls: REDUCE, NEWOBJ(_EX), INST/OBJ all come here -----------------------------------

    def _call(self, func, args, kwargs=None):
        if kwargs:
            raise self._refuse(f'keyword arguments to {getattr(func, "__name__", func)!r} are '
                               'not allowed')
        if not isinstance(args, tuple):
            raise self._refuse(f'malformed call: arguments are a {type(args).__name__}')
        name = _NUMPY_CALLABLES.get(func) if _hashable(func) else None
        if name == '_reconstruct':
            return self._reconstruct(func, args)
        if name == 'scalar':
            return self._scalar(func, args)
        if name == '_frombuffer':
            return self._frombuffer(func, args)
        if func is np.dtype:
            dtype = func(*args)
            self._check_dtype(dtype)
            return dtype
        if _one_of(func, (bytearray, set, frozenset, collections.OrderedDict)):
            what = f'{func.__name__}()'
            if len(args) > (3 if func is bytearray else 1):
                raise self._refuse(f'{what} with {len(args)} arguments')
            if not args:
                self._charge(_CONTAINER_COST, what)
                return func()
            source = args[0]
            if func is bytearray and isinstance(source, int) and not isinstance(source, bool):
                size = source  # bytearray(n) makes n zero bytes
            else:
                size = self._length(source, what)
            if size < 0:
                raise self._refuse(f'{what} of a negative size')
            # A set slot and its object, about; a string's encoding up to 4 bytes a character.
            per_item = (4 if isinstance(source, str) else 1) if func is bytearray else 72
            self._charge(_CONTAINER_COST + size * per_item, f'{what} of {size} items')
            return func(*args)
        if func is _codecs.encode:
            if (len(args) != 2 or not isinstance(args[0], str) or not isinstance(args[1], str)
                    or args[1].lower() not in _LATIN1):
                raise self._refuse("_codecs.encode is allowed only as encode(text, 'latin1')")
            self._charge(len(args[0]), 'encode()')
            return func(*args)
        if _one_of(func, (complex, slice, range)):
            if len(args) > 3 or not all(
                    value is None or isinstance(value, (int, float, str)) for value in args):
                raise self._refuse(f'{func.__name__}() of {len(args)} arguments of types '
                                   f'{[type(v).__name__ for v in args]}')
            if any(isinstance(value, str) and len(value) > 1000 for value in args):
                raise self._refuse(f'{func.__name__}() of a long string')
            self._charge(_CONTAINER_COST, f'{func.__name__}()')
            return func(*args)
        if func is np.ndarray:
            raise self._refuse('numpy.ndarray may appear only as the type an array is rebuilt '
                               'as, not be called (it would allocate any declared shape)')
        raise self._refuse(f'calls {getattr(func, "__name__", type(func).__name__)!r}, which '
                           'is not an allowed callable')

    def _shape(self, shape, what):
        if isinstance(shape, int) and not isinstance(shape, bool):
            shape = (shape,)
        if (not isinstance(shape, (tuple, list)) or len(shape) > _MAX_DIMS or not all(
                isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in shape)):
            raise self._refuse(f'{what}: malformed shape {shape!r:.100}')
        return tuple(shape)

    def _check_dtype(self, dtype):
        if not isinstance(dtype, np.dtype):
            raise self._refuse(f'an array dtype must be a numpy.dtype, got '
                               f'{type(dtype).__name__}')
        if dtype.itemsize > self.budget:
            raise self._refuse(f'dtype {dtype} has items of {dtype.itemsize} bytes, above the '
                               f'limit of {self.budget} bytes')

    def _reconstruct(self, func, args):
        if len(args) != 3 or args[0] is not np.ndarray:
            raise self._refuse('numpy _reconstruct is allowed only as _reconstruct(ndarray, '
                               'shape, dtype)')
        shape = self._shape(args[1], 'array')
        dtype = args[2]
        if isinstance(dtype, (bytes, str)):
            try:
                dtype = np.dtype(dtype)
            except TypeError:
                raise self._refuse(f'unknown dtype {args[2]!r:.50}') from None
        self._check_dtype(dtype)
        self._charge(math.prod(shape) * dtype.itemsize, f'an array of shape {shape} {dtype}')
        return func(np.ndarray, shape, dtype)

    def _scalar(self, func, args):
        if not args or len(args) > 2:
            raise self._refuse('numpy scalar() with the wrong number of arguments')
        self._check_dtype(args[0])
        if len(args) == 2 and not args[0].hasobject and not isinstance(args[1], (bytes, str)):
            raise self._refuse(f'numpy scalar() of a {type(args[1]).__name__}')
        self._charge(args[0].itemsize, f'a numpy {args[0]} scalar')
        return func(*args)

    def _frombuffer(self, func, args):
        if len(args) != 4 or not isinstance(args[0], (bytes, bytearray, memoryview)):
            raise self._refuse('numpy _frombuffer() must take a buffer, dtype, shape and order')
        buffer, dtype, shape = args[0], args[1], self._shape(args[2], 'array')
        self._check_dtype(dtype)
        nbytes = math.prod(shape) * dtype.itemsize
        if nbytes != memoryview(buffer).nbytes:
            raise self._refuse(f'an array of shape {shape} {dtype} declares {nbytes} bytes, its '
                               f'buffer holds {memoryview(buffer).nbytes}')
        return func(*args)

    def _build_array(self, array, state):
        """Checks ndarray.__setstate__'s state: (version,) shape, dtype, fortran, data."""
        if not isinstance(state, tuple) or len(state) not in (4, 5):
            raise self._refuse('malformed array state')
        shape, dtype, _, data = state[-4:]
        shape = self._shape(shape, 'array')
        self._check_dtype(dtype)
        count = math.prod(shape)
        nbytes = count * dtype.itemsize
        if dtype.hasobject:
            if not isinstance(data, list) or len(data) != count:
                raise self._refuse(f'an object array of shape {shape} comes with '
                                   f'{self._length(data, "object array data")} items')
        else:
            if not isinstance(data, (bytes, bytearray, str)):
                raise self._refuse(f'array data must be bytes, got {type(data).__name__}')
            if len(data) != nbytes:
                raise self._refuse(f'an array of shape {shape} {dtype} declares {nbytes} bytes, '
                                   f'its data holds {len(data)}')
        self._charge(nbytes, f'an array of shape {shape} {dtype}')
        array.__setstate__(state)

    # -- opcodes ----------------------------------------------------------------------------

    def load_reduce(self):
        stack = self.stack
        args = stack.pop()
        stack[-1] = self._call(stack[-1], args)

    dispatch[pickle.REDUCE[0]] = load_reduce

    def load_newobj(self):
        args = self.stack.pop()
        cls = self.stack.pop()
        self.append(self._call(cls, args))

    dispatch[pickle.NEWOBJ[0]] = load_newobj

    def load_newobj_ex(self):
        kwargs = self.stack.pop()
        args = self.stack.pop()
        cls = self.stack.pop()
        self.append(self._call(cls, args, kwargs))

    dispatch[pickle.NEWOBJ_EX[0]] = load_newobj_ex

    def _instantiate(self, klass, args):
        self.append(self._call(klass, tuple(args)))

    def load_build(self):
        stack = self.stack
        state = stack.pop()
        inst = stack[-1]
        if type(inst) is np.ndarray:
            self._build_array(inst, state)
        elif type(inst) is np.dtype or isinstance(inst, np.dtype):
            inst.__setstate__(state)
            self._check_dtype(inst)
        elif type(inst) is collections.OrderedDict and isinstance(state, dict) and not state:
            pass
        else:
            raise self._refuse(f'refuses to set the state of a {type(inst).__name__}')

    dispatch[pickle.BUILD[0]] = load_build

    def load_additems(self):
        items = self.pop_mark()
        self._charge(len(items) * 72, f'{len(items)} set items')
        target = self.stack[-1]
        if not isinstance(target, set):
            raise self._refuse(f'ADDITEMS on a {type(target).__name__}')
        target.update(items)

    dispatch[pickle.ADDITEMS[0]] = load_additems


def _charging(load):
    """An opcode's loader that first charges one container to the budget."""
    def charged(self):
        self._charge(_CONTAINER_COST, 'a container')
        load(self)
    return charged


for _opcode in (pickle.EMPTY_DICT, pickle.EMPTY_LIST, pickle.EMPTY_SET, pickle.DICT, pickle.LIST,
                pickle.TUPLE, pickle.FROZENSET):
    _Unpickler.dispatch[_opcode[0]] = _charging(_Unpickler.dispatch[_opcode[0]])


def _one_of(value, candidates):
    return any(value is candidate for candidate in candidates)


def _hashable(value):
    try:
        hash(value)
    except TypeError:
        return False
    return True


def _budget(size):
    return BUDGET_FACTOR * size + BUDGET_FLOOR


def loads(data, path='<memory>', encoding='ASCII'):
    """Unpickles ``data`` (bytes); a refused global or call, a pickle that would build more than
    its budget (see the module docstring), or a malformed pickle is an UnsafePickleError naming
    ``path``. ``encoding='latin1'`` reads Python 2 pickles of arrays."""
    path = os.fspath(path)
    try:
        return _Unpickler(io.BytesIO(data), path, encoding, _budget(len(data))).load()
    except errors.UnsafePickleError:
        raise
    except UnicodeDecodeError as e:
        hint = " (a Python 2 pickle? read it with encoding='latin1')" if encoding.lower() in (
                'ascii', 'utf-8', 'utf8') else ''
        raise errors.UnsafePickleError(path, f'not a readable pickle: {e}{hint}') from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError,
            KeyError, ImportError, OverflowError, MemoryError, RecursionError, LookupError,
            struct.error) as e:
        raise errors.UnsafePickleError(path, f'not a readable pickle (truncated or corrupt: '
                                             f'{type(e).__name__}: {e})') from None


def load(path, encoding='ASCII', max_bytes=MAX_PICKLE_BYTES):
    """Reads a pickle file with the restricted unpickler (see ``loads``); a file larger than
    ``max_bytes`` is refused before it is read."""
    path = errors.require_file(path)
    try:
        size = os.path.getsize(path)
        if size > max_bytes:
            raise errors.UnsafePickleError(path, f'is {size} bytes, above the limit of '
                                                 f'{max_bytes} bytes for a pickle')
        with open(path, 'rb') as f:
            data = f.read(max_bytes + 1)
    except OSError as e:
        raise errors.UnsafePickleError(path, f'cannot be read ({e.strerror or e})') from None
    if not data:
        raise errors.UnsafePickleError(path, 'empty file, not a pickle')
    if len(data) > max_bytes:
        raise errors.UnsafePickleError(path, f'is above the limit of {max_bytes} bytes for a '
                                             'pickle')
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

