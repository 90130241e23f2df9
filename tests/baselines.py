"""The implementations issue 7's optimisations replaced, kept as they were.

Benchmarks time them beside their replacements (what each change bought, bench/RESULTS.md), and
tests check that each replacement gives the same numbers. Nothing else should call them.
"""

import contextlib

import numpy as np
import tensorflow as tf
from tensorflow.core.framework import tensor_pb2
from tensorflow.core.framework import tensor_shape_pb2

from everywear_tf.ops import sampling


def grid_sample(image, grid, padding_mode=sampling.BORDER):
    """ops.sampling.grid_sample before: one ``gather_nd`` with batch_dims per tap."""
    image = tf.convert_to_tensor(image)
    grid = tf.cast(grid, image.dtype)
    shape = tf.shape(image)
    height, width = shape[1], shape[2]
    max_x = tf.cast(width - 1, image.dtype)
    max_y = tf.cast(height - 1, image.dtype)
    x = (grid[..., 0] + 1.0) * 0.5 * max_x
    y = (grid[..., 1] + 1.0) * 0.5 * max_y
    if padding_mode == sampling.BORDER:
        x = tf.clip_by_value(x, 0.0, max_x)
        y = tf.clip_by_value(y, 0.0, max_y)
    else:
        x = tf.clip_by_value(x, -2.0, max_x + 2.0)
        y = tf.clip_by_value(y, -2.0, max_y + 2.0)
    x0 = tf.floor(x)
    y0 = tf.floor(y)
    x1 = x0 + 1.0
    y1 = y0 + 1.0
    wx1 = x - x0
    wx0 = 1.0 - wx1
    wy1 = y - y0
    wy0 = 1.0 - wy1

    def tap(xs, ys, weight):
        if padding_mode == sampling.ZEROS:
            inside = ((xs >= 0.0) & (xs <= max_x) & (ys >= 0.0) & (ys <= max_y))
            weight = weight * tf.cast(inside, image.dtype)
        xi = tf.cast(tf.clip_by_value(xs, 0.0, max_x), tf.int32)
        yi = tf.cast(tf.clip_by_value(ys, 0.0, max_y), tf.int32)
        values = tf.gather_nd(image, tf.stack([yi, xi], axis=-1), batch_dims=1)
        return values * weight[..., tf.newaxis]

    return (tap(x0, y0, wx0 * wy0) + tap(x1, y0, wx1 * wy0) +
            tap(x0, y1, wx0 * wy1) + tap(x1, y1, wx1 * wy1))


def resize_area(images, size):
    """ops.resize.resize_area before: TF's ResizeArea kernel, which XLA cannot compile."""
    return tf.raw_ops.ResizeArea(images=images, size=tf.constant(size, tf.int32),
                                 align_corners=False)


def typed_fields(array):
    """The dev server's output TensorProto before: typed fields filled through Python lists."""
    dtype = tf.as_dtype(array.dtype)
    proto = tensor_pb2.TensorProto(dtype=dtype.as_datatype_enum, tensor_shape=(
            tensor_shape_pb2.TensorShapeProto(dim=[
                    tensor_shape_pb2.TensorShapeProto.Dim(size=d) for d in array.shape])))
    flat = np.asarray(array).ravel()
    if dtype == tf.float32:
        proto.float_val.extend(flat.tolist())
    elif dtype == tf.uint8:
        proto.int_val.extend(flat.tolist())
    else:
        raise TypeError(f'only uint8 and float32 outputs, got {dtype.name}')
    return proto


def from_typed_fields(proto):
    """The client's reading of a typed-field TensorProto before: through Python lists."""
    dtype = {4: np.uint8, 1: np.float32}[proto.dtype]
    shape = [d.size for d in proto.tensor_shape.dim]
    values = proto.int_val if dtype == np.uint8 else proto.float_val
    return np.asarray(values, dtype).reshape(shape)


@contextlib.contextmanager
def previous_transport():
    """The dev server and the client as they encoded and decoded outputs before (for timing)."""
    from everywear_tf.serving import client
    from everywear_tf.serving import dev_server
    saved = dev_server._typed_fields, client._from_proto
    dev_server._typed_fields, client._from_proto = typed_fields, from_typed_fields
    try:
        yield
    finally:
        dev_server._typed_fields, client._from_proto = saved


@contextlib.contextmanager
def previous_graph_ops():
    """Networks traced inside this block use the previous sampler and area resize."""
    from everywear_tf.ops import resize
    saved = sampling.grid_sample, resize.resize_area
    sampling.grid_sample, resize.resize_area = grid_sample, resize_area
    try:
        yield
    finally:
        sampling.grid_sample, resize.resize_area = saved


def predict_rest(self, model_name, inputs, version, label):
    """serving.client.Client._predict_rest before: JSON built and read with the collector on."""
    import json
    import urllib.request

    from everywear_tf import spec
    path = f'http://{self.address}/v1/models/{model_name}'
    if version is not None:
        path += f'/versions/{int(version)}'
    elif label is not None:
        path += f'/labels/{label}'
    body = json.dumps({'signature_name': spec.SERVING_SIGNATURE,
                       'inputs': {k: v.tolist() for k, v in inputs.items()}}).encode()
    request = urllib.request.Request(path + ':predict', body,
                                     {'Content-Type': 'application/json'})
    with urllib.request.urlopen(request, timeout=self.timeout) as response:
        outputs = json.load(response)['outputs']
    module, _ = spec.module_of(model_name)
    return ({key: np.asarray(outputs[key], spec.OUTPUT_SPECS[key][0])
             for key in spec.MODULE_OUTPUTS[module]}, None)


@contextlib.contextmanager
def previous_rest():
    """The client's REST calls as they were (the collector running through the JSON)."""
    from everywear_tf.serving import client
    saved = client.Client._predict_rest
    client.Client._predict_rest = predict_rest
    try:
        yield
    finally:
        client.Client._predict_rest = saved
