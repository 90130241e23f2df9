"""TFLite flatbuffers as TensorFlow graphs of core ops, so that stock TF Serving can serve them.

``load(path)`` reads subgraph 0 of a ``.tflite`` file and returns a ``TFLiteGraph``: a
``tf.Module`` whose ``tf.function`` runs the same ops in the same order as the TFLite
interpreter, each mapped to core TF ops (no ``tf.lite`` ops, no custom-op libraries).

* Weights are float32 ``tf.Variable``s: float16 buffers and ``DEQUANTIZE`` of them are
  dequantised, and sparse (``DENSIFY``) weights densified, once at load time. Filters are stored
  in TF's layouts (HWIO, HWOI, [H, W, C*M]) so no transpose runs per call.
* The batch dimension is dynamic (``None``) when every op keeps the model's batch-1 axis 0 as a
  batch axis (checked per op at load time; reshapes then get ``-1`` as their first size);
  otherwise the signature keeps the model's batch of 1 (``TFLiteGraph.dynamic_batch`` says which).
* Input and output names are the flatbuffer's, with characters TF does not allow in names
  replaced by ``_`` (and a trailing ``:0`` dropped).
* MediaPipe's custom ``Convolution2DTransposeBias`` (a transposed convolution plus bias, options
  packed as three little-endian int32s: TfLitePadding, stride width, stride height) is mapped too.

``mediapipe_model_path(name)`` finds one of the models the ``mediapipe`` wheel ships, without
importing mediapipe (its import takes many seconds).

Errors: a missing, corrupt or unsupported file raises a ``TFLiteError`` naming the file
(``TFLiteNotFoundError``, ``TFLiteFileError``, ``UnsupportedOpError``).
"""

import dataclasses
import importlib.metadata
import importlib.util
import os
import re
import struct
from collections.abc import Callable

import numpy as np
import tensorflow as tf
from tensorflow.lite.python import schema_py_generated as schema

from everywear_tf import errors as base_errors
from everywear_tf.convert import errors

MEDIAPIPE_REQUIREMENT = 'mediapipe==0.10.21'

# Models of the mediapipe wheel, by name, relative to the installed package directory.
MEDIAPIPE_MODELS = {
    'pose_detection': 'modules/pose_detection/pose_detection.tflite',
    'pose_landmark_full': 'modules/pose_landmark/pose_landmark_full.tflite',
    'selfie_segmentation': 'modules/selfie_segmentation/selfie_segmentation.tflite',
    'face_detection_short_range': 'modules/face_detection/face_detection_short_range.tflite',
    'face_landmark': 'modules/face_landmark/face_landmark.tflite',
}

TRANSPOSE_CONV_BIAS = 'Convolution2DTransposeBias'

_OP_NAMES = {code: name for name, code in vars(schema.BuiltinOperator).items()
             if not name.startswith('_')}
_DTYPES = {schema.TensorType.FLOAT32: np.float32, schema.TensorType.FLOAT16: np.float16,
           schema.TensorType.INT32: np.int32, schema.TensorType.INT64: np.int64,
           schema.TensorType.INT8: np.int8, schema.TensorType.UINT8: np.uint8,
           schema.TensorType.INT16: np.int16, schema.TensorType.BOOL: np.bool_}
_RUNTIME_TYPES = (schema.TensorType.FLOAT32, schema.TensorType.INT32)


class TFLiteError(errors.CheckpointError):
    """A ``.tflite`` file that cannot be read or converted (``.path`` names it)."""


class TFLiteNotFoundError(TFLiteError, errors.CheckpointNotFoundError):
    """The ``.tflite`` file does not exist."""


class TFLiteFileError(TFLiteError):
    """Not a TFLite flatbuffer, or a corrupt or truncated one."""


class UnsupportedOpError(TFLiteError):
    """An op (or an op's options or tensor types) this converter does not map to core TF.

    Attributes:
        op: the op's name (``CONV_2D``, or a custom op's name).
        index: the op's position in subgraph 0.
    """

    def __init__(self, path, op: str, index: int, detail: str):
        """Names the file, the op and its position, and says what is missing (``detail``)."""
        self.op = op
        self.index = index
        super().__init__(path, f'op {index} ({op}): {detail}')


class MediapipeNotInstalledError(base_errors.EverywearError, ModuleNotFoundError):
    """The ``mediapipe`` package, whose wheel holds the models, is not installed."""


class _UnsupportedError(Exception):
    """Raised by an op mapping; ``TFLiteGraph`` turns it into an ``UnsupportedOpError``."""


def mediapipe_model_path(name: str) -> str:
    """The path of one of the ``.tflite`` models the installed ``mediapipe`` wheel ships.

    Finds the package with ``importlib.util.find_spec``, which does not run mediapipe's code.

    Args:
        name: a key of ``MEDIAPIPE_MODELS`` (``'pose_detection'``, ...).

    Returns:
        The absolute path of the model file.

    Raises:
        ValueError: ``name`` is not a key of ``MEDIAPIPE_MODELS``.
        MediapipeNotInstalledError: mediapipe is not installed.
        TFLiteNotFoundError: the installed mediapipe does not have the file.
    """
    if name not in MEDIAPIPE_MODELS:
        raise ValueError(f'unknown mediapipe model {name!r}; known: {sorted(MEDIAPIPE_MODELS)}')
    spec = importlib.util.find_spec('mediapipe')
    if spec is None or not spec.submodule_search_locations:
        raise MediapipeNotInstalledError(
                f'the mediapipe package is not installed, so its model {name!r} '
                f'({MEDIAPIPE_MODELS[name]}) is missing; install it with '
                f"pip install '{MEDIAPIPE_REQUIREMENT}'")
    path = os.path.join(list(spec.submodule_search_locations)[0], MEDIAPIPE_MODELS[name])
    if not os.path.isfile(path):
        try:
            version = importlib.metadata.version('mediapipe')
        except importlib.metadata.PackageNotFoundError:
            version = 'unknown'
        raise TFLiteNotFoundError(path, f'not in the installed mediapipe {version}; '
                                        f"pip install '{MEDIAPIPE_REQUIREMENT}' ships it")
    return path


def read_model(path) -> schema.ModelT:
    """The flatbuffer at ``path`` as the schema's object tree.

    Raises:
        TFLiteNotFoundError: no such file.
        TFLiteFileError: not a TFLite flatbuffer, or a corrupt one.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise TFLiteNotFoundError(path, 'no such file')
    with open(path, 'rb') as f:
        data = f.read()
    if len(data) < 8 or not schema.Model.ModelBufferHasIdentifier(data, 0):
        raise TFLiteFileError(path, "not a TFLite flatbuffer (no 'TFL3' file identifier)")
    try:
        model = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(data, 0))
    except Exception as e:  # A corrupt flatbuffer fails anywhere in the generated reader.
        raise TFLiteFileError(path, f'corrupt flatbuffer ({type(e).__name__}: {e})') from e
    if not model.subgraphs or model.subgraphs[0].operators is None:
        raise TFLiteFileError(path, 'the flatbuffer has no subgraph with operators')
    for buffer in model.buffers or ():
        if buffer.offset > 1:  # Models over 2 GB keep buffers after the flatbuffer.
            buffer.data = np.frombuffer(data, np.uint8, buffer.size, buffer.offset)
    return model


def op_name(model: schema.ModelT, opcode_index: int) -> str:
    """A builtin op's schema name (``'CONV_2D'``), or a custom op's own name."""
    code = model.operatorCodes[opcode_index]
    builtin = max(code.builtinCode, code.deprecatedBuiltinCode)
    if builtin == schema.BuiltinOperator.CUSTOM:
        return code.customCode.decode()
    return _OP_NAMES.get(builtin, f'BUILTIN_{builtin}')


def list_ops(path) -> list[str]:
    """The names of the ops of subgraph 0 of ``path``, in order (see ``op_name``)."""
    model = read_model(path)
    return [op_name(model, op.opcodeIndex) for op in model.subgraphs[0].operators]


def tf_name(name) -> str:
    """A flatbuffer tensor name as a TF tensor/argument name (``serving_x:0`` -> ``serving_x``)."""
    name = name.decode() if isinstance(name, bytes) else str(name)
    name = re.sub(r'[^A-Za-z0-9_.\-/]', '_', re.sub(r':0$', '', name)).strip('/')
    return name if re.match(r'[A-Za-z]', name) else f't_{name}'


# ---------------------------------------------------------------------------------------------
# Constants: buffers, float16, sparsity.


def densify(values: np.ndarray, shape, sparsity: schema.SparsityParametersT) -> np.ndarray:
    """A TFLite sparse tensor (values in traversal order) as a dense array of ``shape``.

    Each level of ``sparsity.dimMetadata`` is one dimension in ``traversalOrder``: DENSE levels
    enumerate all coordinates, SPARSE_CSR levels read theirs from segments and indices. Block
    dimensions (``blockMap``) add their coordinate to the original dimension they split.
    """
    rank, order = len(shape), list(sparsity.traversalOrder)
    block_map = list(sparsity.blockMap) if sparsity.blockMap is not None else []
    positions, coords = np.zeros(1, np.int64), []
    for level in sparsity.dimMetadata:
        if level.format == schema.DimensionType.DENSE:
            size = level.denseSize
            coords = [np.repeat(c, size) for c in coords] + [np.tile(np.arange(size),
                                                                      len(positions))]
            positions = (positions[:, None] * size + np.arange(size)).reshape(-1)
        else:
            segments = np.asarray(level.arraySegments.values, np.int64)
            indices = np.asarray(level.arrayIndices.values, np.int64)
            counts = segments[positions + 1] - segments[positions]
            starts = np.repeat(segments[positions], counts)
            children = starts + np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts,
                                                                    counts)
            coords = [np.repeat(c, counts) for c in coords] + [indices[children]]
            positions = children
    by_dim = dict(zip(order, coords, strict=True))
    dense_coords = []
    for dim in range(rank):
        coord = by_dim[dim]
        for block, original in enumerate(block_map):
            block_size = sparsity.dimMetadata[order.index(rank + block)].denseSize
            coord = coord * block_size + by_dim[rank + block] if original == dim else coord
        dense_coords.append(coord)
    dense = np.zeros(shape, values.dtype)
    dense[tuple(dense_coords)] = values[positions]
    return dense


def _buffer_array(path, model, tensor):
    """The constant of ``tensor`` (raw values if sparse), or None for a runtime tensor."""
    data = model.buffers[tensor.buffer].data if tensor.buffer < len(model.buffers) else None
    if data is None or len(data) == 0:
        return None
    dtype = _DTYPES.get(tensor.type)
    if dtype is None:
        raise TFLiteFileError(path, f'tensor {tf_name(tensor.name)}: unsupported type '
                                    f'{tensor.type}')
    shape = [] if tensor.shape is None else [int(v) for v in tensor.shape]
    values = np.frombuffer(np.asarray(data, np.uint8).tobytes(), np.dtype(dtype).newbyteorder('<'))
    try:
        if tensor.sparsity is not None:
            return densify(values, shape, tensor.sparsity)
        return values.reshape(shape).astype(dtype)
    except (ValueError, IndexError, AttributeError) as e:
        raise TFLiteFileError(path, f'tensor {tf_name(tensor.name)}: buffer of {len(data)} '
                                    f'bytes does not fit shape {shape} ({e})') from e


def _constants(path, model):
    """{tensor index: array} of subgraph 0, float16 as float32, DEQUANTIZE/DENSIFY folded."""
    graph = model.subgraphs[0]
    constants = {}
    for index, tensor in enumerate(graph.tensors):
        array = _buffer_array(path, model, tensor)
        if array is not None:
            constants[index] = array.astype(np.float32) if array.dtype == np.float16 else array
    folded = set()
    for position, op in enumerate(graph.operators):
        name = op_name(model, op.opcodeIndex)
        if name in ('DEQUANTIZE', 'DENSIFY') and op.inputs[0] in constants:
            source = constants[op.inputs[0]]
            if source.dtype != np.float32:
                raise UnsupportedOpError(path, name, position,
                                         f'quantised {source.dtype} constants are not '
                                         f'supported (float16 and float32 only)')
            constants[op.outputs[0]] = source
            folded.add(position)
    return constants, folded


# ---------------------------------------------------------------------------------------------
# Op mappings: each takes (op record, resolved inputs) and returns the output tensor.

_ACTIVATIONS = {
    schema.ActivationFunctionType.NONE: lambda x: x,
    schema.ActivationFunctionType.RELU: tf.nn.relu,
    schema.ActivationFunctionType.RELU_N1_TO_1: lambda x: tf.clip_by_value(x, -1.0, 1.0),
    schema.ActivationFunctionType.RELU6: tf.nn.relu6,
    schema.ActivationFunctionType.TANH: tf.tanh,
}


def _activate(x, options):
    code = getattr(options, 'fusedActivationFunction', 0) if options is not None else 0
    if code not in _ACTIVATIONS:
        raise _UnsupportedError(f'fused activation {code} is not supported')
    return _ACTIVATIONS[code](x)


def _padding(code) -> str:
    return {schema.Padding.SAME: 'SAME', schema.Padding.VALID: 'VALID'}[code]


def _strides_and_dilations(o):
    strides, dilations = [o.strideH, o.strideW], [o.dilationHFactor, o.dilationWFactor]
    if max(strides) > 1 and max(dilations) > 1:
        raise _UnsupportedError('strides and dilations both above 1 (TF does not run that on CPU)')
    return strides, dilations


def _conv_2d(op, x, w, b=None):
    strides, dilations = _strides_and_dilations(op.options)
    if w.shape[2] != x.shape[-1]:
        raise _UnsupportedError(f'grouped convolution ({x.shape[-1]} input channels, filter of '
                           f'{w.shape[2]})')
    y = tf.nn.conv2d(x, w, strides, _padding(op.options.padding), dilations=dilations)
    return _activate(y if b is None else tf.nn.bias_add(y, b), op.options)


def _depthwise_conv_2d(op, x, w, b=None):
    strides, dilations = _strides_and_dilations(op.options)
    channels = int(x.shape[-1])
    filters = tf.reshape(w, [w.shape[0], w.shape[1], channels, w.shape[2] // channels])
    y = tf.nn.depthwise_conv2d(x, filters, [1, *strides, 1], _padding(op.options.padding),
                               dilations=dilations)
    return _activate(y if b is None else tf.nn.bias_add(y, b), op.options)


def _transpose_conv_same(x, w, b, strides, same):
    """A transposed conv whose SAME padding is TFLite's (``Convolution2DTransposeBias``).

    The full (VALID) output is cropped by ``pad // 2`` in front, with ``pad = max(0, k - (in - 1)
    % stride - 1)`` per spatial axis, which is what MediaPipe's kernel computes.
    """
    sizes, crops = [], []
    for axis, stride in zip((1, 2), strides, strict=True):
        size, kernel = int(x.shape[axis]), int(w.shape[axis - 1])
        pad = max(0, kernel - (size - 1) % stride - 1) if same else 0
        sizes.append(stride * (size - 1) + kernel)
        crops.append((pad // 2, sizes[-1] - pad))
    shape = tf.stack([tf.shape(x)[0], sizes[0], sizes[1], int(w.shape[2])])
    y = tf.nn.conv2d_transpose(x, w, shape, [1, *strides, 1], 'VALID')
    y = y[:, crops[0][0]:crops[0][0] + crops[0][1], crops[1][0]:crops[1][0] + crops[1][1], :]
    return tf.nn.bias_add(y, b)


def _transpose_conv_bias(op, x, w, b):
    if op.custom is None or len(op.custom) < 12:
        raise _UnsupportedError('custom options shorter than the 12 bytes of padding and strides')
    padding, stride_w, stride_h = struct.unpack('<3i', bytes(op.custom[:12]))
    if padding not in (0, 1, 2) or min(stride_w, stride_h) < 1:
        raise _UnsupportedError(f'bad options: padding {padding}, strides {stride_h}x{stride_w}')
    return _transpose_conv_same(x, w, b, (stride_h, stride_w), padding == 1)  # 1: kTfLiteSame.


def _transpose_conv(op, output_shape, w, x, b=None):
    o = op.options
    shape = tf.concat([tf.shape(x)[:1], tf.constant(output_shape[1:], tf.int32)], 0)
    y = tf.nn.conv2d_transpose(x, w, shape, [1, o.strideH, o.strideW, 1], _padding(o.padding))
    return _activate(y if b is None else tf.nn.bias_add(y, b), o)


def _fully_connected(op, x, w, b=None):
    if op.options is not None and op.options.weightsFormat != 0:
        raise _UnsupportedError('shuffled FULLY_CONNECTED weights are not supported')
    y = tf.matmul(tf.reshape(x, [-1, w.shape[0]]), w)
    y = _activate(y if b is None else tf.nn.bias_add(y, b), op.options)
    return tf.reshape(y, op.output_shape)


def _pool(pool):
    def mapped(op, x):
        o = op.options
        y = pool(x, [o.filterHeight, o.filterWidth], [o.strideH, o.strideW], _padding(o.padding))
        return _activate(y, o)
    return mapped


def _binary(fn):
    return lambda op, a, b: _activate(fn(a, b), op.options)


def _resize(raw_op):
    def mapped(op, x, size):
        y = raw_op(images=x, size=np.asarray(size, np.int32),
                   align_corners=op.options.alignCorners,
                   half_pixel_centers=op.options.halfPixelCenters)
        return tf.cast(y, x.dtype)  # ResizeBilinear gives float32 whatever its input.
    return mapped


def _pad(x, pads, value):
    # PadV2 even for zeros: TF 2.15's oneDNN rewrite of Conv2D + BiasAdd + Add(Pad(x)) (BlazeFace's
    # channel-padded shortcut) crashes the process (SIGSEGV); PadV2 is not matched by it.
    return tf.raw_ops.PadV2(input=x, paddings=np.asarray(pads, np.int32),
                            constant_values=tf.cast(tf.reshape(value, []), x.dtype))


def _softmax(op, x):
    beta = op.options.beta if op.options is not None else 1.0
    return tf.nn.softmax(x if beta == 1.0 else x * beta)


def _dequantize(op, x):
    if x.dtype != tf.float16:
        raise _UnsupportedError(f'DEQUANTIZE of a runtime {x.dtype.name} tensor')
    return tf.cast(x, op.dtype)


# {op name: (mapping, {input position: weight layout})}. A layout turns a TFLite constant into
# the one the TF op takes, once at load time.
_OHWI_TO_HWIO, _OHWI_TO_HWOI = (1, 2, 3, 0), (1, 2, 0, 3)
_MAPPINGS: dict[str, tuple[Callable, dict]] = {
    'ADD': (_binary(tf.add), {}),
    'SUB': (_binary(tf.subtract), {}),
    'MUL': (_binary(tf.multiply), {}),
    'DIV': (_binary(tf.divide), {}),
    'CONCATENATION': (lambda op, *xs: _activate(tf.concat(xs, op.options.axis), op.options), {}),
    'CONV_2D': (_conv_2d, {1: _OHWI_TO_HWIO}),
    'DEPTHWISE_CONV_2D': (_depthwise_conv_2d, {1: 'squeeze0'}),
    'TRANSPOSE_CONV': (_transpose_conv, {1: _OHWI_TO_HWOI}),
    TRANSPOSE_CONV_BIAS: (_transpose_conv_bias, {1: _OHWI_TO_HWOI}),
    'FULLY_CONNECTED': (_fully_connected, {1: (1, 0)}),
    'MAX_POOL_2D': (_pool(tf.nn.max_pool2d), {}),
    'AVERAGE_POOL_2D': (_pool(tf.nn.avg_pool2d), {}),
    'DEPTH_TO_SPACE': (lambda op, x: tf.nn.depth_to_space(x, op.options.blockSize), {}),
    'PAD': (lambda op, x, pads: _pad(x, pads, 0.0), {}),
    'PADV2': (lambda op, x, pads, value: _pad(x, pads, value), {}),
    'RESHAPE': (lambda op, x, *shape: tf.reshape(x, op.output_shape), {}),
    'RESIZE_BILINEAR': (_resize(tf.raw_ops.ResizeBilinear), {}),
    'RESIZE_NEAREST_NEIGHBOR': (_resize(tf.raw_ops.ResizeNearestNeighbor), {}),
    'MEAN': (lambda op, x, axis: tf.reduce_mean(x, axis, keepdims=op.options.keepDims), {}),
    'LOGISTIC': (lambda op, x: tf.sigmoid(x), {}),
    'TANH': (lambda op, x: tf.tanh(x), {}),
    'RELU': (lambda op, x: tf.nn.relu(x), {}),
    'RELU6': (lambda op, x: tf.nn.relu6(x), {}),
    'RELU_N1_TO_1': (lambda op, x: tf.clip_by_value(x, -1.0, 1.0), {}),
    'HARD_SWISH': (lambda op, x: x * tf.nn.relu6(x + 3.0) / 6.0, {}),
    'PRELU': (lambda op, x, alpha: tf.where(x >= 0.0, x, alpha * x), {}),
    'SOFTMAX': (_softmax, {}),
    'DEQUANTIZE': (_dequantize, {}),
}
SUPPORTED_OPS = tuple(sorted(_MAPPINGS))


def _layout(array, layout):
    if layout == 'squeeze0':
        return array[0]
    return np.ascontiguousarray(array.transpose(layout)) if layout is not None else array


# ---------------------------------------------------------------------------------------------
# The graph.


@dataclasses.dataclass(frozen=True)
class _Op:
    """One op of subgraph 0, ready to run: its mapping, tensors and weight variables."""

    index: int
    name: str
    inputs: tuple
    outputs: tuple
    options: object
    custom: bytes | None
    output_shape: tuple  # The first output's static shape; -1 first when the batch is dynamic.
    weights: dict  # {input position: index into TFLiteGraph._weights}
    dtype: tf.DType  # What float tensors are computed in.


def _static_shape(tensor) -> list[int]:
    return [] if tensor.shape is None else [int(v) for v in tensor.shape]


def _keeps_batch_axis(graph, op, constants) -> bool:
    """Whether ``op`` treats axis 0 of its batch-1 runtime tensors as a batch axis."""
    runtime = [i for i in (*op.inputs, *op.outputs) if i >= 0 and i not in constants]
    if any(_static_shape(graph.tensors[i])[:1] != [1] for i in runtime):
        return False
    options = op.builtinOptions
    rank = len(_static_shape(graph.tensors[op.outputs[0]]))
    if isinstance(options, schema.ConcatenationOptionsT):
        return options.axis % rank != 0
    if isinstance(options, (schema.PadOptionsT, schema.PadV2OptionsT)):
        return not np.any(constants[op.inputs[1]][0])
    if isinstance(options, schema.ReducerOptionsT):
        axes = np.atleast_1d(constants[op.inputs[1]]) % len(_static_shape(
                graph.tensors[op.inputs[0]]))
        return 0 not in axes
    return True


class TFLiteGraph(tf.Module):
    """Subgraph 0 of a ``.tflite`` file as a TF graph of core ops.

    Calling the module (or its ``signature`` ``tf.function``, the one to export as
    ``serving_default``) returns ``{output name: tensor}`` as the TFLite interpreter would.

    Attributes:
        path: the source file.
        dynamic_batch: whether the inputs' batch dimension is ``None`` (else the model's 1).
        input_specs: one ``tf.TensorSpec`` per model input, named as in the flatbuffer.
        output_specs: ``{output name: tf.TensorSpec}``.
        op_names: the names of the ops of the model, in order (folded weight ops included).
        signature: the ``tf.function`` with ``input_specs`` as its input signature.
    """

    def __init__(self, path, dynamic_batch: bool = True, dtype: tf.DType = tf.float32):
        """Reads and converts the model.

        Args:
            path: a ``.tflite`` file.
            dynamic_batch: allow any batch size where every op keeps axis 0 as a batch axis.
            dtype: what float inputs, weights and activations are: ``tf.float32`` as in the
                model, or ``tf.float64`` to measure the float32 rounding of either runtime.

        Raises:
            TFLiteError: see ``load``.
        """
        super().__init__(name='tflite_graph')
        self.path = os.fspath(path)
        self.dtype = tf.as_dtype(dtype)
        if self.dtype not in (tf.float32, tf.float64):
            raise ValueError(f'dtype must be float32 or float64, got {self.dtype.name}')
        model = read_model(self.path)
        graph = model.subgraphs[0]
        constants, folded = _constants(self.path, model)
        self.op_names = tuple(op_name(model, op.opcodeIndex) for op in graph.operators)
        self._check_ops(graph, constants, folded)
        live = [(i, op) for i, op in enumerate(graph.operators) if i not in folded]
        self.dynamic_batch = dynamic_batch and all(
                _keeps_batch_axis(graph, op, constants) for _, op in live)
        self._constants = {i: a for i, a in constants.items() if a.dtype != np.float32}
        self._folded = {graph.operators[i].outputs[0]: constants[graph.operators[i].outputs[0]]
                        for i in folded}
        self._weights = []
        self._ops = tuple(self._prepare(i, op, graph, constants) for i, op in live)
        self._inputs = tuple(int(i) for i in graph.inputs)
        self._outputs = {tf_name(graph.tensors[i].name): int(i) for i in graph.outputs}
        self.input_specs = tuple(
                tf.TensorSpec(self._batched(_static_shape(graph.tensors[i])),
                              self._dtype_of(graph.tensors[i]), name=tf_name(graph.tensors[i].name))
                for i in self._inputs)
        # No autograph: the op loop is plain Python over a fixed list, and autograph would
        # rewrite the errors raised while tracing.
        self.signature = tf.function(self._forward, input_signature=self.input_specs,
                                     autograph=False)
        try:
            outputs = self.signature.get_concrete_function().structured_outputs
        except _UnsupportedError as e:
            raise UnsupportedOpError(self.path, *e.args) from e
        self.output_specs = {name: tf.TensorSpec(t.shape, t.dtype, name)
                             for name, t in outputs.items()}

    def _batched(self, shape) -> list:
        return [None, *shape[1:]] if self.dynamic_batch and shape else shape

    def _dtype_of(self, tensor) -> tf.DType:
        return self.dtype if tensor.type == schema.TensorType.FLOAT32 else tf.as_dtype(
                _DTYPES[tensor.type])

    def _check_ops(self, graph, constants, folded):
        for index, (name, op) in enumerate(zip(self.op_names, graph.operators, strict=True)):
            if index in folded:
                continue
            for i in (*op.inputs, *op.outputs):
                tensor = graph.tensors[i] if i >= 0 else None
                if tensor is not None and i not in constants and (
                        tensor.type not in _RUNTIME_TYPES
                        and not (name == 'DEQUANTIZE' and i == op.inputs[0])):
                    raise UnsupportedOpError(self.path, name, index,
                                             f'tensor {tf_name(tensor.name)} has type '
                                             f'{tensor.type}; only float32 models convert '
                                             f'(float16 weights too), not quantised ones')
            if name not in _MAPPINGS:
                raise UnsupportedOpError(self.path, name, index,
                                         f'no core-TF mapping; supported: {SUPPORTED_OPS}')

    def _prepare(self, index, op, graph, constants) -> _Op:
        name = self.op_names[index]
        layouts = _MAPPINGS[name][1]
        weights = {}
        for position, i in enumerate(op.inputs):
            if i in constants and constants[i].dtype == np.float32:
                array = _layout(constants[i], layouts.get(position))
                weights[position] = len(self._weights)
                self._weights.append(tf.Variable(array.astype(self.dtype.as_numpy_dtype),
                                                 trainable=False,
                                                 name=tf_name(graph.tensors[i].name)))
        shape = [-1 if v is None else v
                 for v in self._batched(_static_shape(graph.tensors[op.outputs[0]]))]
        custom = bytes(op.customOptions) if op.customOptions is not None else None
        return _Op(index, name, tuple(int(i) for i in op.inputs), tuple(int(i) for i in
                   op.outputs), op.builtinOptions, custom, tuple(shape), weights, self.dtype)

    def _apply(self, op, values):
        """``op``'s output, its runtime inputs read from ``values`` ({tensor index: tensor})."""
        args = [None if i < 0 else self._weights[op.weights[p]] if p in op.weights
                else values[i] if i in values else self._constants[i]
                for p, i in enumerate(op.inputs)]
        while args and args[-1] is None:  # Optional trailing inputs (a bias) absent.
            args.pop()
        with tf.name_scope(f'op{op.index}_{op.name}'):
            try:
                return _MAPPINGS[op.name][0](op, *args)
            except _UnsupportedError as e:
                raise _UnsupportedError(op.name, op.index, str(e)) from e

    def _run(self, inputs) -> dict:
        """Every tensor of one pass, by flatbuffer tensor index."""
        values = dict(zip(self._inputs, inputs, strict=True))
        for op in self._ops:
            values[op.outputs[0]] = self._apply(op, values)
        return values

    def _forward(self, *inputs):
        values = self._run(inputs)
        return {name: tf.identity(values[i], name=name) for name, i in self._outputs.items()}

    def __call__(self, *inputs, **named) -> dict:
        """The outputs for ``inputs`` (positional in flatbuffer order, or by input name)."""
        if named:
            missing = [s.name for s in self.input_specs if s.name not in named]
            extra = sorted(set(named) - {s.name for s in self.input_specs})
            if inputs or missing or extra:
                raise TypeError(f'{self.path}: give inputs either by position or by name '
                                f'{[s.name for s in self.input_specs]}; missing {missing}, '
                                f'unknown {extra}')
            inputs = [named[s.name] for s in self.input_specs]
        return self.signature(*inputs)

    def tensors(self, *inputs) -> dict:
        """Every tensor of one eager pass, weights folded at load time included.

        Args:
            *inputs: the model's inputs, in flatbuffer order.

        Returns:
            ``{flatbuffer tensor index: ndarray}``, to compare with
            ``tf.lite.Interpreter(..., experimental_preserve_all_tensors=True)``.
        """
        values = self._run([tf.convert_to_tensor(x, s.dtype)
                            for x, s in zip(inputs, self.input_specs, strict=True)])
        return {**self._folded, **{i: np.asarray(v) for i, v in values.items()}}

    def replay(self, tensors: dict) -> dict:
        """Each op alone, on given values of its runtime inputs (op-by-op checks).

        Args:
            tensors: ``{flatbuffer tensor index: array}`` holding at least every runtime input
                of every op (the interpreter's, with all tensors preserved).

        Returns:
            ``{op output tensor index: ndarray}`` for every op (weight ops folded at load time
            excluded: ``tensors()`` has their results).
        """
        values = {i: tf.convert_to_tensor(a) for i, a in tensors.items()}
        return {op.outputs[0]: np.asarray(self._apply(op, values)) for op in self._ops}


def load(path, dynamic_batch: bool = True, dtype: tf.DType = tf.float32) -> TFLiteGraph:
    """Converts subgraph 0 of a ``.tflite`` file to a TF graph of core ops.

    Args:
        path: the ``.tflite`` file.
        dynamic_batch: allow any batch size where the model permits (``TFLiteGraph``).
        dtype: ``tf.float32`` (the model's), or ``tf.float64`` for a rounding reference.

    Returns:
        The ``TFLiteGraph``; export its ``signature`` as ``serving_default``.

    Raises:
        TFLiteNotFoundError: no such file.
        TFLiteFileError: not a TFLite flatbuffer, or a corrupt one.
        UnsupportedOpError: an op (or its options or tensor types) with no core-TF mapping.
    """
    return TFLiteGraph(path, dynamic_batch, dtype)
