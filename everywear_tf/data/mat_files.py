"""MATLAB ``.mat`` files from users, read in bounded memory.

A v5 ``.mat`` stores each variable zlib-compressed, so a 1.7 MB file can declare (and inflate to)
a 400 MB array. ``load`` first lists the variables from their headers (``scipy.io.whosmat``
reads the headers without the data), refuses a needed variable that is missing, not numeric, or
whose declared shape × element size exceeds ``max_bytes`` — each refusal names the file, the
variable and the limit — and only then reads the needed variables, and nothing else.
"""

import math

import numpy as np
import scipy.io

from everywear_tf import errors

MAX_MAT_BYTES = 64 << 20  # the decoded size a pose or parse .mat may declare (VITON's: < 4 MB)
# Element size of each numeric MATLAB class whosmat reports.
_CLASS_BYTES = {'double': 8, 'single': 4, 'int8': 1, 'uint8': 1, 'int16': 2, 'uint16': 2,
                'int32': 4, 'uint32': 4, 'int64': 8, 'uint64': 8, 'logical': 1}


def load(path, names, error=errors.InputError, max_bytes=MAX_MAT_BYTES, missing_problem=None):
    """{name: array} of the numeric variables ``names`` of the .mat file ``path``.

    Raises ``error(path, ...)`` for a file scipy cannot read, a missing or non-numeric
    variable (``missing_problem`` says what, if given), or variables declaring more than
    ``max_bytes`` bytes together, before any of their data is decoded.
    """
    path = errors.require_file(path)
    try:
        listing = scipy.io.whosmat(path)
    except Exception as e:  # scipy raises many types for a bad file; all mean the same here
        raise error(path, f'not a readable .mat file ({type(e).__name__}: {e})') from None
    declared = {}
    for name, shape, mclass in listing:
        declared.setdefault(name, (tuple(int(n) for n in shape), mclass))
    missing = [name for name in names if name not in declared]
    if missing and missing_problem:
        raise error(path, missing_problem)
    if missing:
        quoted = ', '.join(f'"{n}"' for n in missing)
        raise error(path, f'no {quoted} array; it holds {sorted(declared)}')
    total = 0
    for name in names:
        shape, mclass = declared[name]
        if mclass not in _CLASS_BYTES:
            raise error(path, f'"{name}" must be a numeric array, it is a MATLAB {mclass}')
        nbytes = math.prod(shape) * _CLASS_BYTES[mclass]
        total += nbytes
        if total > max_bytes:
            raise error(path, f'"{name}" declares {"x".join(map(str, shape))} {mclass} '
                              f'({nbytes} bytes decoded), above the limit of {max_bytes} bytes '
                              'for a .mat input: refused before decoding')
    try:
        mat = scipy.io.loadmat(path, variable_names=list(names))
    except Exception as e:  # scipy raises many types for a bad file; all mean the same here
        raise error(path, f'not a readable .mat file ({type(e).__name__}: {e})') from None
    out = {}
    for name in names:
        if name not in mat:
            raise error(path, f'no "{name}" array could be read')
        out[name] = np.asarray(mat[name])
    return out
