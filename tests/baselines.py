"""The implementations the speed optimisations (BUILD.md §12) replaced, kept as they were.

Benchmarks call them beside their replacements on the same inputs (what each change bought,
bench/RESULTS.md), and tests check that each replacement gives the same numbers. Nothing here
replaces anything in the library: a network path that used a replaced function is rebuilt here
with it passed in (``gmm_outputs``), and the server and client that used the previous encoding
are subclasses (``PredictionService``, ``Client``). Nothing else should call them.
"""

import concurrent.futures
import json
import os
import time
import urllib.request

import grpc
import numpy as np
import tensorflow as tf
from tensorflow.core.framework import tensor_pb2
from tensorflow.core.framework import tensor_shape_pb2
from tensorflow_serving.apis import model_pb2
from tensorflow_serving.apis import predict_pb2

from everywear_tf import fileio
from everywear_tf import spec
from everywear_tf.data import representation
from everywear_tf.inference import batch as batch_lib
from everywear_tf.ops import quantize
from everywear_tf.ops import sampling
from everywear_tf.ops import tps
from everywear_tf.serving import client as client_lib
from everywear_tf.serving import dev_server
from everywear_tf.serving import manager as manager_lib


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


def gmm_outputs(model, person, parse, keypoints, cloth, cloth_mask, sampler=grid_sample):
    """GMM's serving function (export.modules.gmm_outputs) with ``sampler`` warping the cloth
    and its mask: by default the previous sampler, i.e. GMM's graph as it was.

    The network's own steps (models.gmm.Gmm.call) are spelled out so that the sampler can be
    passed in: the regression, the TPS grid, then the two warps. With
    ``sampler=sampling.grid_sample`` the outputs are those of the serving function. (The other
    replaced graph op, ``resize_area``, is on EDM's path only.)
    """
    variant = model.config.variant
    theta = model.regress(representation.gmm_agnostic(person, parse, keypoints, variant),
                          representation.gmm_cloth(cloth, cloth_mask, variant), training=False)
    config = model.config
    grid = tps.cpvton_tps_grid(theta, config.height, config.width, config.grid_size)
    warped_cloth = sampler(representation.to_signed(cloth), grid, sampling.BORDER)
    warped_mask = sampler(representation.binary_cloth_mask(cloth_mask), grid, sampling.ZEROS)
    return {
            spec.WARPED_CLOTH: quantize.signed_to_uint8(warped_cloth),
            spec.WARPED_MASK: quantize.unit_to_uint8(warped_mask[..., 0]),
            spec.THETA: theta,
            spec.GRID: grid,
    }


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


class PredictionService(dev_server.PredictionService):
    """The dev server's gRPC Predict before: each output encoded by ``typed_fields``.

    Serve it over a running DevServer's manager (the same loaded SavedModels) on a gRPC server
    of its own. Output filters are refused: the benchmarks send none.
    """

    def Predict(self, request, context):  # noqa: N802 (the gRPC API names it)
        if request.output_filter:
            context.abort(grpc.StatusCode.UNIMPLEMENTED, 'no output_filter in the baseline')
        try:
            version, saved_model = self.manager.resolve(request.model_spec)
            signature_name = request.model_spec.signature_name or spec.SERVING_SIGNATURE
            inputs = {k: tf.make_ndarray(v) for k, v in request.inputs.items()}
            outputs = manager_lib.predict(saved_model, signature_name, inputs)
        except manager_lib.ServingError as e:
            context.abort(e.code, e.message)
        response = predict_pb2.PredictResponse()
        response.model_spec.name = version.name
        response.model_spec.version.value = version.number
        response.model_spec.signature_name = signature_name
        for key, value in outputs.items():
            response.outputs[key].CopyFrom(typed_fields(value))
        return response


class Client(client_lib.Client):
    """serving.client.Client before: gRPC outputs read by ``from_typed_fields``, REST bodies
    built and read with the garbage collector running."""

    def _predict_grpc(self, model_name, inputs, version, label,
                      signature=spec.SERVING_SIGNATURE, outputs=None):
        request = predict_pb2.PredictRequest(model_spec=model_pb2.ModelSpec(
                name=model_name, signature_name=signature))
        request.output_filter.extend(outputs or ())
        if version is not None:
            request.model_spec.version.value = int(version)
        elif label is not None:
            request.model_spec.version_label = label
        for key, value in inputs.items():
            request.inputs[key].CopyFrom(client_lib._tensor_proto(value))
        try:
            response = self._stub.Predict(request, timeout=self.timeout)
        except grpc.RpcError as e:
            raise client_lib.ServerError(e.code(), e.details(), model_name) from None
        return ({key: from_typed_fields(value) for key, value in response.outputs.items()},
                response.model_spec.version.value)

    def _predict_rest(self, model_name, inputs, version, label,
                      signature=spec.SERVING_SIGNATURE, outputs=None):
        path = f'http://{self.address}/v1/models/{model_name}'
        if version is not None:
            path += f'/versions/{int(version)}'
        elif label is not None:
            path += f'/labels/{label}'
        body = json.dumps({'signature_name': signature,
                           'inputs': {k: v.tolist() for k, v in inputs.items()}}).encode()
        request = urllib.request.Request(path + ':predict', body,
                                         {'Content-Type': 'application/json'})
        with urllib.request.urlopen(request, timeout=self.timeout) as response:
            outputs = json.load(response)['outputs']
        module, _ = spec.module_of(model_name)
        return ({key: np.asarray(outputs[key], spec.OUTPUT_SPECS[key][0])
                 for key in outputs or spec.MODULE_OUTPUTS[module]}, None)


class Batch(batch_lib.Batch):
    """inference.batch.Batch before the journal: after every finished job, every job's final
    image is looked for and report.json rewritten with an fsync (quadratic in the jobs); every
    job submitted to the pool at once; a progress line per job."""

    def _locked_run(self, jobs):
        removed = fileio.remove_stale_temporaries(self.workspace)
        if removed:
            self.log(f'removed {removed} temporary files of an interrupted run')
        earlier = self._earlier_jobs()
        batch_lib.check_names(jobs, earlier)
        todo = [job for job in jobs if not os.path.isfile(self.final_path(job))]
        self._check_backend(todo)
        return self._old_run(jobs, todo, earlier)

    def _old_run(self, jobs, todo, earlier):
        report_path = self.names.report()
        failed = {}
        if os.path.isfile(report_path):
            try:
                with open(report_path) as f:
                    failed = dict(json.load(f).get('failed', {}))
            except (OSError, ValueError, AttributeError, TypeError):
                failed = {}
        recorded = {job.name: [job.person, job.top, job.bottom]
                    for job in list(earlier) + list(jobs)}
        skipped = len(jobs) - len(todo)
        if skipped:
            self.log(f'{skipped} of {len(jobs)} jobs already done; {len(todo)} to go')
        started, count = time.monotonic(), 0

        def save():
            done = [job.name for job in jobs if os.path.isfile(self.final_path(job))]
            report = {'total': len(jobs), 'done': done,
                      'failed': {k: failed[k] for k in sorted(failed)},
                      'jobs': {k: recorded[k] for k in sorted(recorded)}}
            fileio.atomic_write_bytes(report_path, json.dumps(report, indent=1).encode())
            return report

        pool = concurrent.futures.ThreadPoolExecutor(self.workers)
        try:
            futures = {pool.submit(self._attempt, job): job for job in todo}
            for future in concurrent.futures.as_completed(futures):
                job = futures[future]
                problem = future.result()
                if problem is None:
                    failed.pop(job.name, None)
                else:
                    failed[job.name] = problem
                count += 1
                rate = count / max(time.monotonic() - started, 1e-9)
                self.log(f'{count}/{len(todo)} {job.name} {"ok" if problem is None else "FAILED"}'
                         f' | {rate:.2f} jobs/s, {len(failed)} failed')
                save()
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
        return save()
