"""Checks a module's inputs against its serving signature before they reach a graph or a server.

TF itself rejects a wrong dtype with "input #4 was expected to be a uint8 tensor" and a wrong frame
size deep inside the graph; this check names the input, what the signature expects and what came.
No TensorFlow here: clients use it too.
"""

import numpy as np

from everywear_tf import errors
from everywear_tf import spec


class SignatureInputError(errors.EverywearError, ValueError):
    """Inputs that do not fit a module's serving signature."""


def _describe(dtype, shape):
    dims = ','.join('N' if d is None else str(d) for d in shape)
    return f'{dtype} [{dims}]'


def check_inputs(module, inputs):
    """Returns ``inputs`` as numpy arrays keyed like the signature, or raises SignatureInputError.

    Every key must be present, nothing extra, dtypes exact (no silent casts: a float image in
    [0, 1] sent as uint8 would be black), shapes equal but for the batch, one batch size for all.
    """
    if module not in spec.MODULE_INPUTS:
        raise SignatureInputError(f'unknown module {module!r}; expected one of {spec.MODULES}')
    expected = spec.MODULE_INPUTS[module]
    missing = [k for k in expected if k not in inputs]
    extra = sorted(set(inputs) - set(expected))
    if missing or extra:
        raise SignatureInputError(f'{module} takes inputs {list(expected)}; missing {missing}, '
                                  f'unexpected {extra}')
    arrays = {}
    batch = None
    for key in expected:
        value = np.asarray(inputs[key])
        dtype, shape = spec.INPUT_SPECS[key]
        if value.dtype != np.dtype(dtype) or value.ndim != len(shape) or any(
                want is not None and want != got for want, got in zip(shape, value.shape)):
            raise SignatureInputError(f'{module} input {key!r} must be {_describe(dtype, shape)}, '
                                      f'got {_describe(value.dtype, value.shape)}')
        if batch is not None and value.shape[0] != batch:
            raise SignatureInputError(f'{module} inputs disagree on the batch size: {key!r} has '
                                      f'{value.shape[0]}, earlier inputs {batch}')
        batch = value.shape[0]
        arrays[key] = value
    return arrays


def check_files(module, files):
    """The ``encoded`` signature's inputs (spec.encoded_inputs): each ``*_bytes`` a list of
    ``bytes`` (one file per item), the others checked as ``check_inputs`` checks them; returns
    {key: numpy array (object arrays of bytes for the files)} or raises SignatureInputError."""
    if module not in spec.MODULE_INPUTS:
        raise SignatureInputError(f'unknown module {module!r}')
    expected = spec.encoded_inputs(module)
    missing = [k for k in expected if k not in files]
    extra = sorted(set(files) - set(expected))
    if missing or extra:
        raise SignatureInputError(f'{module} (encoded) takes inputs {list(expected)}; missing '
                                  f'{missing}, unexpected {extra}')
    arrays = {}
    for key in expected:
        if key == spec.decoded_key(key):
            arrays[key] = check_inputs_of(module, key, files[key])
            continue
        items = list(files[key])
        if not all(isinstance(item, bytes) for item in items):
            raise SignatureInputError(f'{module} input {key!r} must be a list of PNG/JPEG file '
                                      f'contents (bytes)')
        arrays[key] = np.array(items, dtype=object)
    batches = {len(value) for value in arrays.values()}
    if len(batches) > 1:
        raise SignatureInputError(f'{module} inputs disagree on the batch size: {sorted(batches)}')
    return arrays


def check_inputs_of(module, key, value):
    """One uint8/float32 input checked against its spec (dtype exact, shape but for the batch)."""
    value = np.asarray(value)
    dtype, shape = spec.INPUT_SPECS[key]
    if value.dtype != np.dtype(dtype) or value.ndim != len(shape) or any(
            want is not None and want != got for want, got in zip(shape, value.shape)):
        raise SignatureInputError(f'{module} input {key!r} must be {_describe(dtype, shape)}, '
                                  f'got {_describe(value.dtype, value.shape)}')
    return value
