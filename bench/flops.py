"""Floating-point operations of a traced function, counted op by op and grouped by layer.

Convolutions, transposed convolutions and matrix products count 2 FLOPs per multiply-add (the
usual convention, which the machine's peak is measured in too); element-wise arithmetic,
reductions and normalisation count one per element they produce or read. Shapes come from the
graph, so the batch size must be static: trace with a fixed-batch TensorSpec.
"""

import collections

import numpy as np
import tensorflow as tf

MULTIPLY_ADD = 'multiply_add'  # convolutions and matrix products
ELEMENTWISE = 'elementwise'

_ELEMENTWISE_OPS = {
        'Add', 'AddV2', 'Sub', 'Mul', 'RealDiv', 'Div', 'Maximum', 'Minimum', 'Neg', 'Square',
        'Sqrt', 'Rsqrt', 'Exp', 'Log', 'Tanh', 'Sigmoid', 'Relu', 'LeakyRelu', 'Floor',
        'BiasAdd', 'Abs', 'SquaredDifference', 'ClipByValue', 'Less', 'LessEqual', 'Greater',
        'GreaterEqual', 'Equal', 'Select', 'SelectV2', 'Cast',
}
_REDUCTIONS = {'Sum', 'Mean', 'Max', 'Min', 'Prod'}  # counted on the elements they read
_BATCH_NORMS = {'FusedBatchNormV3', 'FusedBatchNorm'}  # scale and shift: 2 per element


def _size(shape):
    if shape.rank is None or None in shape.as_list():
        raise ValueError(f'unknown static shape {shape}: trace with a fixed batch size')
    return int(np.prod(shape.as_list(), dtype=np.int64))


def op_flops(op):
    """(kind, FLOPs) of one graph op; (None, 0) for ops that do no arithmetic."""
    kind = op.type
    if kind in ('Conv2D', 'DepthwiseConv2dNative'):
        kernel = op.inputs[1].shape.as_list()  # [kh, kw, in, out | multiplier]
        per_output = kernel[0] * kernel[1] * (kernel[2] if kind == 'Conv2D' else 1)
        return MULTIPLY_ADD, 2 * _size(op.outputs[0].shape) * per_output
    if kind == 'Conv2DBackpropInput':  # a transposed convolution's forward pass
        kernel = op.inputs[1].shape.as_list()  # [kh, kw, out, in]
        return MULTIPLY_ADD, 2 * _size(op.inputs[2].shape) * kernel[0] * kernel[1] * kernel[2]
    if kind in ('MatMul', 'BatchMatMulV2', 'BatchMatMulV3', 'BatchMatMul'):
        a = op.inputs[0].shape.as_list()
        transpose_a = op.get_attr('transpose_a' if kind == 'MatMul' else 'adj_x')
        inner = a[-2] if transpose_a else a[-1]
        return MULTIPLY_ADD, 2 * _size(op.outputs[0].shape) * inner
    if kind in _ELEMENTWISE_OPS:
        return ELEMENTWISE, _size(op.outputs[0].shape)
    if kind in _REDUCTIONS:
        return ELEMENTWISE, _size(op.inputs[0].shape)
    if kind in _BATCH_NORMS:
        return ELEMENTWISE, 2 * _size(op.outputs[0].shape)
    return None, 0


def _graph_ops(graph):
    """Every op of ``graph`` and of the function bodies it calls."""
    seen = set()
    pending = [graph]
    while pending:
        current = pending.pop()
        yield from current.get_operations()
        for function in getattr(current, '_functions', {}).values():
            body = getattr(function, 'graph', None)
            if body is not None and id(body) not in seen:
                seen.add(id(body))
                pending.append(body)


def count(concrete_function, layer_names=()):
    """FLOPs of a concrete function: totals by kind and per layer.

    An op belongs to the layer whose name is a component of its name scope (Keras names each
    layer's ops after it); ops outside every layer (representation, warps, quantisation) go to
    'other'. Returns {'total', 'multiply_add', 'elementwise', 'layers': {name: FLOPs}}.
    """
    layer_names = set(layer_names)
    totals = collections.Counter()
    layers = collections.Counter()
    for op in _graph_ops(concrete_function.graph):
        kind, flops = op_flops(op)
        if not flops:
            continue
        totals[kind] += flops
        scope = op.name.split('/')[:-1]
        owner = next((part for part in reversed(scope) if part in layer_names), 'other')
        layers[owner] += flops
    return {'total': int(sum(totals.values())), MULTIPLY_ADD: int(totals[MULTIPLY_ADD]),
            ELEMENTWISE: int(totals[ELEMENTWISE]),
            'layers': {name: int(value) for name, value in sorted(layers.items())}}


def count_function(function, input_signature, layer_names=()):
    """``count`` of ``function`` (Python or tf.function) traced on fixed-shape TensorSpecs."""
    if not hasattr(function, 'get_concrete_function'):
        function = tf.function(function)
    return count(function.get_concrete_function(*input_signature), layer_names)
