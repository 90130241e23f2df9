"""A development model server that speaks TF Serving's gRPC and REST APIs.

``tensorflow_model_server`` cannot be installed from PyPI or Debian, so development and tests use
this stand-in: the same ``models.config``, the same ``<base_path>/<version>/`` tree, the same
PredictionService / ModelService protos (tensorflow_serving.apis) and REST paths, the same
version policies, labels, polling, warmup and error codes. Production runs the official
``tensorflow/serving`` image (serving/docker-compose.yml, serving/k8s/). Binds 127.0.0.1.
"""

import base64
import binascii
import concurrent.futures
import contextlib
import json
import re
import threading
import time
import urllib.parse
from http import server as http_server

import grpc
import numpy as np
import tensorflow as tf
from google.protobuf import any_pb2
from google.protobuf import descriptor_pb2
from google.protobuf import descriptor_pool
from google.protobuf import json_format
from google.protobuf import message_factory
from tensorflow.core.framework import tensor_pb2
from tensorflow.core.framework import tensor_shape_pb2
from tensorflow.core.protobuf import saved_model_pb2
from tensorflow_serving.apis import get_model_metadata_pb2
from tensorflow_serving.apis import get_model_status_pb2
from tensorflow_serving.apis import model_management_pb2
from tensorflow_serving.apis import model_service_pb2_grpc
from tensorflow_serving.apis import predict_pb2
from tensorflow_serving.apis import prediction_service_pb2_grpc

from everywear_tf import spec
from everywear_tf.serving import config as serving_config
from everywear_tf.serving import manager as manager_lib
from everywear_tf.serving import wire
from everywear_tf.serving.manager import Manager
from everywear_tf.serving.manager import ServingError

# http_server.cc ToHTTPStatusCode; anything else is 500.
_HTTP_STATUS = {grpc.StatusCode.CANCELLED: 499, grpc.StatusCode.UNKNOWN: 500,
                grpc.StatusCode.INVALID_ARGUMENT: 400, grpc.StatusCode.DEADLINE_EXCEEDED: 504,
                grpc.StatusCode.NOT_FOUND: 404, grpc.StatusCode.ALREADY_EXISTS: 409,
                grpc.StatusCode.PERMISSION_DENIED: 403, grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
                grpc.StatusCode.FAILED_PRECONDITION: 400, grpc.StatusCode.ABORTED: 409,
                grpc.StatusCode.OUT_OF_RANGE: 400, grpc.StatusCode.UNIMPLEMENTED: 501,
                grpc.StatusCode.INTERNAL: 500, grpc.StatusCode.UNAVAILABLE: 503,
                grpc.StatusCode.DATA_LOSS: 500, grpc.StatusCode.UNAUTHENTICATED: 401}
_RELOAD_ONLY_LISTS = ('ServerModelConfig type not supported by HandleReloadConfigRequest. Only '
                      'ModelConfigList is currently supported')


def _signature_defs(path):
    saved_model = saved_model_pb2.SavedModel()
    with open(f'{path}/saved_model.pb', 'rb') as f:
        saved_model.ParseFromString(f.read())
    return saved_model.meta_graphs[0].signature_def


def _typed_fields(array):
    """A TensorProto with values in the typed fields, as TF Serving's Tensor::AsProtoField."""
    proto = wire.encode(array)  # uint8 and float32, without a Python step per value
    if proto is not None:
        return proto
    dtype = tf.as_dtype(array.dtype)
    proto = tensor_pb2.TensorProto(dtype=dtype.as_datatype_enum, tensor_shape=(
            tensor_shape_pb2.TensorShapeProto(dim=[
                    tensor_shape_pb2.TensorShapeProto.Dim(size=d) for d in array.shape])))
    flat = array.ravel()
    if dtype in (tf.float32,):
        proto.float_val.extend(flat.tolist())
    elif dtype == tf.float64:
        proto.double_val.extend(flat.tolist())
    elif dtype in (tf.int32, tf.int16, tf.int8, tf.uint8, tf.uint16):
        proto.int_val.extend(flat.tolist())
    elif dtype == tf.int64:
        proto.int64_val.extend(flat.tolist())
    elif dtype == tf.bool:
        proto.bool_val.extend(flat.tolist())
    elif dtype == tf.string:
        proto.string_val.extend(flat.tolist())
    else:  # half, complex, uint32/64...: the packed form, which tf.make_ndarray reads too
        return tf.make_tensor_proto(array)
    return proto


def _health_messages():
    """grpc.health.v1's HealthCheckRequest and HealthCheckResponse (health.proto; the
    grpcio-health-checking wheel is not a dependency), declared with upstream numbers."""
    pool = descriptor_pool.DescriptorPool()
    proto = descriptor_pb2.FileDescriptorProto(name='everywear/grpc_health_v1.proto',
                                               package='grpc.health.v1', syntax='proto3')
    field = descriptor_pb2.FieldDescriptorProto
    request = proto.message_type.add(name='HealthCheckRequest')
    request.field.add(name='service', number=1, type=field.TYPE_STRING,
                      label=field.LABEL_OPTIONAL)
    response = proto.message_type.add(name='HealthCheckResponse')
    status = response.enum_type.add(name='ServingStatus')
    for name, number in (('UNKNOWN', 0), ('SERVING', 1), ('NOT_SERVING', 2),
                         ('SERVICE_UNKNOWN', 3)):
        status.value.add(name=name, number=number)
    response.field.add(name='status', number=1, type=field.TYPE_ENUM, label=field.LABEL_OPTIONAL,
                       type_name='.grpc.health.v1.HealthCheckResponse.ServingStatus')
    pool.Add(proto)
    return tuple(message_factory.GetMessageClass(
            pool.FindMessageTypeByName(f'grpc.health.v1.{name}'))
                 for name in ('HealthCheckRequest', 'HealthCheckResponse'))


HealthCheckRequest, HealthCheckResponse = _health_messages()
HEALTH_SERVICE = 'grpc.health.v1.Health'
# server.cc (2.15.1) marks these two SERVING besides the whole server (""), once it has started.
HEALTH_SERVICES = ('', 'ModelService', 'PredictionService')


def _health_handler():
    """grpc.health.v1.Health/Check as TF Serving's --enable_grpc_healthcheck_service answers it
    (gRPC's default health service): SERVING for the server and its two services once the
    server runs, NOT_FOUND for any other service name."""

    def check(request, context):
        if request.service not in HEALTH_SERVICES:
            context.abort(grpc.StatusCode.NOT_FOUND, 'service name unknown')
        return HealthCheckResponse(status=HealthCheckResponse.SERVING)

    return grpc.method_handlers_generic_handler(HEALTH_SERVICE, {
            'Check': grpc.unary_unary_rpc_method_handler(
                    check, request_deserializer=HealthCheckRequest.FromString,
                    response_serializer=HealthCheckResponse.SerializeToString)})


class Metrics:
    """TF Serving's request metrics (servables/tensorflow/util.cc) and their Prometheus page
    (util/prometheus_exporter.cc): ``/tensorflow/serving/request_count`` {model_name, status},
    and the ``request_latency`` {model_name, API, entrypoint} and ``runtime_latency``
    {model_name, API, runtime} histograms in microseconds, buckets 10·1.8^i (33 of them) and +Inf.
    """

    BUCKETS = tuple(10 * 1.8 ** i for i in range(33))
    _NAMES = {'count': '/tensorflow/serving/request_count',
              'request': '/tensorflow/serving/request_latency',
              'runtime': '/tensorflow/serving/runtime_latency'}
    _LABELS = {'count': ('model_name', 'status'), 'request': ('model_name', 'API', 'entrypoint'),
               'runtime': ('model_name', 'API', 'runtime')}
    MAX_CELLS = 1000  # label sets a metric keeps; beyond, new model names count as OTHER
    OTHER = '<other>'

    def __init__(self):
        self._lock = threading.Lock()
        self._counts = {}  # (model, status) → int
        self._histograms = {'request': {}, 'runtime': {}}  # labels → [buckets..., sum]

    def _cell(self, cells, labels):
        if labels not in cells and len(cells) >= self.MAX_CELLS:
            labels = (self.OTHER,) + labels[1:]  # clients choose names: keep memory bounded
        return labels

    def count(self, model_name, code):
        """One request of ``model_name`` answered with ``code`` (grpc.StatusCode)."""
        with self._lock:
            key = self._cell(self._counts, (model_name, code.name))
            self._counts[key] = self._counts.get(key, 0) + 1

    def latency(self, kind, labels, seconds):
        """One sample of ``kind`` ('request' or 'runtime') under ``labels`` (a tuple)."""
        micros = seconds * 1e6
        with self._lock:
            cells = self._histograms[kind]
            cell = cells.setdefault(self._cell(cells, labels),
                                    [0] * (len(self.BUCKETS) + 1) + [0.0])
            index = next((i for i, limit in enumerate(self.BUCKETS) if micros < limit),
                         len(self.BUCKETS))
            cell[index] += 1
            cell[-1] += micros

    @staticmethod
    def _name(name):
        name = re.sub(r'[^a-zA-Z0-9_]', ':', name)
        return f'_{name}' if name[:1].isdigit() else name

    @staticmethod
    def _labels(names, values):
        escaped = (v.replace('\\', '\\\\').replace('"', '\\"') for v in values)
        return ','.join(f'{n}="{v}"' for n, v in zip(names, escaped))

    def page(self):
        """The Prometheus text page, metrics in name order as TF Serving's exporter writes it."""
        lines = []
        with self._lock:
            counts = sorted(self._counts.items())
            histograms = {k: sorted(v.items()) for k, v in self._histograms.items()}
        name = self._name(self._NAMES['count'])
        lines.append(f'# TYPE {name} counter')
        for labels, value in counts:
            lines.append(f'{name}{{{self._labels(self._LABELS["count"], labels)}}} {value}')
        for kind in ('request', 'runtime'):
            name = self._name(self._NAMES[kind])
            lines.append(f'# TYPE {name} histogram')
            for labels, cell in histograms[kind]:
                text = self._labels(self._LABELS[kind], labels)
                total = 0
                for i, hits in enumerate(cell[:-1]):
                    total += hits
                    limit = f'{self.BUCKETS[i]:.6g}' if i < len(self.BUCKETS) else '+Inf'
                    lines.append(f'{name}_bucket{{{text},le="{limit}"}} {total}')
                lines.append(f'{name}_sum{{{text}}} {cell[-1]:.6g}')
                lines.append(f'{name}_count{{{text}}} {total}')
        return '\n'.join(lines) + '\n'


def _tensor_parsing_error(alias):
    # saved_model::GetInputValues (TF 2.15) and tfrt_predict_util.cc word it this way.
    return ServingError(grpc.StatusCode.INVALID_ARGUMENT, f'tensor parsing error: {alias}')


def _output_bytes(function, batch, keys=None):
    """The fewest bytes the outputs ``keys`` (default all) of signature ``function`` take for a
    batch of ``batch``: known dimensions, the batch in the first unknown one, other unknown
    ones counted 1, a value at least one byte (varints) or its float width."""
    total = 0
    for key, tensor_spec in function.structured_outputs.items():
        if keys and key not in keys or tensor_spec.shape.rank is None:
            continue
        count = 1
        for index, size in enumerate(tensor_spec.shape.as_list()):
            count *= (batch if index == 0 else 1) if size is None else size
        width = {tf.float32: 4, tf.float64: 8, tf.complex64: 8,
                 tf.complex128: 16}.get(tensor_spec.dtype, 1)
        total += 0 if tensor_spec.dtype == tf.string else count * width
    return total


def check_response_size(function, batch, limit, keys=None, what='response'):
    """RESOURCE_EXHAUSTED before running when the outputs a batch of ``batch`` implies cannot fit
    in ``limit`` bytes (the server's message limit)."""
    implied = _output_bytes(function, batch, keys)
    if limit and implied > limit:
        raise ServingError(grpc.StatusCode.RESOURCE_EXHAUSTED,
                           f'a batch of {batch} makes a {what} of at least {implied} bytes, over '
                           f'the server\'s limit of {limit} bytes (max_message_bytes); send '
                           f'smaller batches')


def input_layouts(request_inputs, expected):
    """{alias: (shape, decoded bytes)} of a PredictRequest's inputs that the signature takes,
    each checked as Tensor::FromProto checks it before allocating (INVALID_ARGUMENT
    'tensor parsing error: <alias>')."""
    layouts = {}
    for alias in sorted(request_inputs):
        if alias in expected:
            try:
                layouts[alias] = wire.tensor_layout(request_inputs[alias])
            except ValueError:
                raise _tensor_parsing_error(alias) from None
    return layouts


def decode_inputs(request_inputs, layouts, limit):
    """{alias: ndarray} of the inputs ``layouts`` lists (others map to None, for predict's own
    mismatch message); RESOURCE_EXHAUSTED before decoding when together they would take more
    than ``limit`` bytes (a few bytes may declare a huge shape: values repeat to fill it)."""
    total = sum(size for _, size in layouts.values())
    if limit and total > limit:
        shapes = ', '.join(f'{a} {list(s)}' for a, (s, _) in sorted(layouts.items()))
        raise ServingError(grpc.StatusCode.RESOURCE_EXHAUSTED,
                           f'the inputs ({shapes}) take {total} bytes once decoded, over the '
                           f'server\'s limit of {limit} bytes (max_message_bytes)')
    arrays = dict.fromkeys(request_inputs)
    for alias in layouts:
        try:
            arrays[alias] = tf.make_ndarray(request_inputs[alias])
        except Exception:  # anything FromProto would refuse that the layout check let through
            raise _tensor_parsing_error(alias) from None
    return arrays


def _batch(shapes):
    return max((s[0] for s in shapes if s), default=1)


def _unexpected(exception):
    """A ServingError for an exception no check anticipated (the call fails, the server serves
    on)."""
    if isinstance(exception, MemoryError):
        return ServingError(grpc.StatusCode.RESOURCE_EXHAUSTED, 'out of memory for this request')
    return ServingError(grpc.StatusCode.INTERNAL, f'{type(exception).__name__}: {exception}'[:500])


class PredictionService(prediction_service_pb2_grpc.PredictionServiceServicer):
    """TF Serving's gRPC PredictionService (Predict, GetModelMetadata) over a Manager."""

    def __init__(self, manager, metrics=None, max_message_bytes=None, batching=None):
        self.manager = manager
        self.metrics = metrics or Metrics()
        self.max_message_bytes = max_message_bytes
        self.batching = batching

    def Predict(self, request, context):  # noqa: N802 (the API names it)
        """Runs the requested version's signature on the PredictRequest's inputs; returns a
        PredictResponse (outputs in typed fields, filtered by ``output_filter``) or aborts the
        call with TF Serving's code and message. Counted in the metrics as TF Serving counts
        it (prediction_service_impl.cc)."""
        started = time.monotonic()
        name = request.model_spec.name
        try:
            remaining = context.time_remaining() if context is not None else None
            response = self._predict(request, None if remaining is None else started + remaining)
        except ServingError as e:
            error = e
        except Exception as e:  # noqa: BLE001 (the server keeps serving)
            error = _unexpected(e)
        else:
            self.metrics.count(name, grpc.StatusCode.OK)
            self.metrics.latency('request', (name, 'Predict', 'GRPC'), time.monotonic() - started)
            return response
        self.metrics.count(name, error.code)
        context.abort(error.code, error.message)

    def _predict(self, request, deadline=None):
        version, saved_model = self.manager.resolve(request.model_spec)
        signature_name = request.model_spec.signature_name or spec.SERVING_SIGNATURE
        function = manager_lib.signature(saved_model, signature_name)
        expected = function.structured_input_signature[1]
        if set(request.inputs) != set(expected):  # predict_util.cc checks this first
            manager_lib.predict(saved_model, signature_name, dict.fromkeys(request.inputs))
        layouts = input_layouts(request.inputs, expected)
        outputs = function.structured_outputs
        seen = set()
        for alias in request.output_filter:
            if alias not in outputs:
                raise ServingError(grpc.StatusCode.INVALID_ARGUMENT,
                                   f'output tensor alias not found in signature: {alias} '
                                   f'Outputs expected to be in the set '
                                   f'{{{",".join(sorted(outputs))}}}.')
            if alias in seen:
                raise ServingError(grpc.StatusCode.INVALID_ARGUMENT,
                                   f'duplicate output tensor alias: {alias}')
            seen.add(alias)
        check_response_size(function, _batch(s for s, _ in layouts.values()),
                            self.max_message_bytes, set(request.output_filter))
        inputs = decode_inputs(request.inputs, layouts, self.max_message_bytes)
        outputs = _run(self.metrics, version, saved_model, signature_name, inputs,
                       self.batching, request.output_filter or outputs, deadline)
        response = predict_pb2.PredictResponse()
        response.model_spec.name = version.name
        response.model_spec.version.value = version.number
        response.model_spec.signature_name = signature_name
        for key in request.output_filter or outputs:
            response.outputs[key].CopyFrom(_typed_fields(outputs[key]))
        return response

    def GetModelMetadata(self, request, context):  # noqa: N802 (the API names it)
        """The resolved version's SignatureDefMap, packed under 'signature_def' (the only
        metadata field served), or aborts with INVALID_ARGUMENT / NOT_FOUND."""
        if not request.HasField('model_spec'):
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, 'Missing ModelSpec')
        if not request.metadata_field:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                          'GetModelMetadataRequest must specify at least one metadata_field')
        for field in request.metadata_field:
            if field != 'signature_def':
                context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                              f'Metadata field {field} is not supported')
        try:
            version, _ = self.manager.resolve(request.model_spec)
        except ServingError as e:
            context.abort(e.code, e.message)
        signature_map = get_model_metadata_pb2.SignatureDefMap()
        for key, value in _signature_defs(version.path).items():
            signature_map.signature_def[key].CopyFrom(value)
        response = get_model_metadata_pb2.GetModelMetadataResponse()
        response.model_spec.name = version.name
        response.model_spec.version.value = version.number
        packed = any_pb2.Any()
        packed.Pack(signature_map)
        response.metadata['signature_def'].CopyFrom(packed)
        return response


def _batchable(saved_model, signature_name, inputs):
    """Whether ``inputs`` are what the signature takes (names, dtypes, shapes) and it takes any
    batch size, so a batch they join cannot fail for another caller's sake; others run alone
    (predict's message for a bad request; a signature of a fixed batch, such as the front
    end's, could never run a merged batch)."""
    expected = manager_lib.signature(saved_model, signature_name).structured_input_signature[1]
    return set(inputs) == set(expected) and all(
            s.shape.rank and s.shape[0] is None and inputs[k].dtype == s.dtype.as_numpy_dtype
            and s.shape.is_compatible_with(inputs[k].shape) for k, s in expected.items())


def _run(metrics, version, saved_model, signature_name, inputs, batching=None, outputs=(),
         deadline=None):
    """manager.predict, its successful runs timed as TF Serving's runtime_latency ('TF1').

    With ``batching`` (a batching.ServerBatching) and the version batched, the request joins the
    queue of its version, signature and requested ``outputs`` (BatchingSession's
    TensorSignature) and waits for its batch; ``deadline`` (time.monotonic()) is the caller's.
    """
    started = time.monotonic()
    signature_name = signature_name or spec.SERVING_SIGNATURE
    parameters = batching.parameters_of(version) if batching else None
    if parameters is None or not _batchable(saved_model, signature_name, inputs):
        result = manager_lib.predict(saved_model, signature_name, inputs)
    else:
        result = batching.scheduler.submit(
                (version, signature_name, tuple(sorted(outputs))), parameters,
                lambda merged: manager_lib.predict(saved_model, signature_name, merged), inputs,
                deadline)
    metrics.latency('runtime', (version.name, 'Predict', 'TF1'), time.monotonic() - started)
    return result


class _BatchingManager(Manager):
    """A Manager whose loads read each version's batching parameters before its warmup, as TF
    Serving wraps a session for batching when it loads it (a bad per-model file fails the
    load)."""

    batching = None  # a batching.ServerBatching when --enable_batching

    def _run_warmup(self, version):
        if self.batching is not None:
            self.batching.load(version)
        super()._run_warmup(version)


def _status_proto(manager, name, number):
    """GetModelStatusResponse; a label is ignored, as GetModelStatusImpl ignores it."""
    response = get_model_status_pb2.GetModelStatusResponse()
    for version, state, error in manager.status(name, number):
        status = response.model_version_status.add(version=version, state=int(state))
        status.status.SetInParent()  # ToStatusProto: an OK status is printed too
        if error is not None:
            status.status.error_code = error[0].value[0]
            status.status.error_message = error[1]
    return response


class ModelService(model_service_pb2_grpc.ModelServiceServicer):
    """TF Serving's gRPC ModelService (GetModelStatus, HandleReloadConfigRequest) over a
    Manager."""

    def __init__(self, manager):
        self.manager = manager

    def GetModelStatus(self, request, context):  # noqa: N802 (the API names it)
        """The state of every version of the model (or of the one version asked for), newest
        first, as a GetModelStatusResponse."""
        if not request.HasField('model_spec'):
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, 'Missing ModelSpec')
        number = request.model_spec.version.value if request.model_spec.HasField(
                'version') else None
        try:
            return _status_proto(self.manager, request.model_spec.name, number)
        except ServingError as e:
            context.abort(e.code, e.message)

    def HandleReloadConfigRequest(self, request, context):  # noqa: N802 (the API names it)
        """Applies the request's ModelConfigList (``Manager.reload``); an empty
        ReloadConfigResponse, or the call aborted with the reason the config was refused."""
        response = model_management_pb2.ReloadConfigResponse()
        if request.config.WhichOneof('config') != 'model_config_list':
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, _RELOAD_ONLY_LISTS)
        try:
            self.manager.reload(request.config)
        except ServingError as e:
            context.abort(e.code, e.message)
        return response


# http_rest_api_util.cc kPredictionApiGegex and kModelStatusApiRegex (2.15.1), matched against
# the path with its query (evhttp_request.cc's uri_path() keeps it), as TF Serving matches them.
_POST_PATH = re.compile(r'/v1/models/(?P<name>[^/:]+)(?:/versions/(?P<version>\d+)|'
                        r'/labels/(?P<label>[^/:]+))?:(?P<method>classify|regress|predict)',
                        re.IGNORECASE | re.ASCII)
_GET_PATH = re.compile(r'/v1/models(?:/(?P<name>[^/:]+))?(?:/versions/(?P<version>\d+)|'
                       r'/labels/(?P<label>[^/:]+))?(?:/(?P<metadata>metadata))?',
                       re.IGNORECASE | re.ASCII)
_API_PATH = re.compile(r'/v1/.*', re.IGNORECASE)  # kHTTPRestApiHandlerPathRegex
_INT64_MAX = 2 ** 63 - 1
_DRAIN_LIMIT = 256 << 20  # a refused body is read and dropped up to this, beyond it the
#                           connection closes unanswered-to-the-end
_QUOTED = 200  # characters of a JSON value quoted back in an error


def _json_value(array, key=''):
    """An output as JSON: numbers as they are; strings as json_tensor.cc writes them, binary
    ones (the alias ends in ``_bytes``, TF Serving's convention) as ``{"b64": ...}``, others as
    text."""
    array = np.asarray(array)
    if array.dtype.kind not in 'OSU':
        return array.tolist()

    def one(value):
        if isinstance(value, str):
            value = value.encode()
        if key.endswith('_bytes'):
            return {'b64': base64.b64encode(value).decode('ascii')}
        return value.decode('utf-8', errors='replace')

    return np.vectorize(one, otypes=[object])(array).tolist() if array.ndim else one(array.item())


class _HttpError(Exception):
    """A request refused before it reaches the REST API: an HTTP status and a message."""

    def __init__(self, status, message):
        super().__init__(message)
        self.status, self.message = status, message


def _quoted(value):
    text = json.dumps(value, separators=(',', ':'))  # as rapidjson's Writer prints it
    return text if len(text) <= _QUOTED else f'{text[:_QUOTED]}...'


def _format_error(value, *words):
    # json_tensor.cc FormatError: 'JSON Value: <the value> <words>'.
    return ServingError(grpc.StatusCode.INVALID_ARGUMENT,
                        f'JSON Value: {_quoted(value)} {"".join(words)}')


def parse_json_body(data):
    """The JSON object a REST predict body holds, refused as json_tensor.cc's ParseJson refuses
    it: empty, not UTF-8 JSON, nested deeper than the parser goes, or not an object."""
    if not data:
        raise ServingError(grpc.StatusCode.INVALID_ARGUMENT,
                           'JSON Parse error: The document is empty')
    try:
        body = json.loads(data.decode('utf-8'))
    except UnicodeDecodeError as e:
        raise ServingError(grpc.StatusCode.INVALID_ARGUMENT,
                           f'JSON Parse error: Invalid encoding in string. at offset: '
                           f'{e.start}') from None
    except json.JSONDecodeError as e:
        raise ServingError(grpc.StatusCode.INVALID_ARGUMENT,
                           f'JSON Parse error: {e.msg} at offset: {e.pos}') from None
    except RecursionError:
        raise ServingError(grpc.StatusCode.INVALID_ARGUMENT,
                           'JSON Parse error: nested deeper than the parser allows') from None
    if not isinstance(body, dict):
        raise _format_error(body, 'Is not object')
    return body


class _RestHandler(http_server.BaseHTTPRequestHandler):
    server_version = 'EverywearDevServer'
    timeout = 30  # seconds a socket read may wait (a silent client frees its worker)
    manager = None
    metrics = None
    metrics_path = None  # MonitoringConfig's Prometheus path, None when off
    max_body = None
    batching = None  # batching.ServerBatching when --enable_batching

    def log_message(self, *args):
        pass

    def _send(self, code, body, content_type='application/json'):
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(code)
        self.send_header('Content-Type', content_type)
        self.send_header('Content-Length', str(len(data)))
        if self.close_connection:
            self.send_header('Connection', 'close')
        self.end_headers()
        if self.command != 'HEAD':
            self.wfile.write(data)

    def _error(self, code, message):
        self._send(_HTTP_STATUS.get(code, 500), {'error': message})

    def send_error(self, code, message=None, explain=None):
        """Errors http.server raises itself (a bad request line, an unknown method, headers
        too long) as JSON ``{"error": ...}`` like every other answer, not an HTML page."""
        self.close_connection = True
        phrase = self.responses.get(code, ('',))[0]
        body = json.dumps({'error': message or phrase}).encode()
        self.send_response(code, phrase)
        self.send_header('Content-Type', 'application/json')
        self.send_header('Content-Length', str(len(body)))
        self.send_header('Connection', 'close')
        self.end_headers()
        if self.command != 'HEAD' and code >= 200 and code not in (204, 304):
            self.wfile.write(body)

    def do_GET(self):  # noqa: N802 (the API names it)
        """REST model status (``/v1/models/<name>[/versions/<n>]``) or, with ``/metadata``,
        the signature defs, as TF Serving's JSON; the Prometheus page at its configured path."""
        self._handle()

    def do_POST(self):  # noqa: N802 (the API names it)
        """REST ``:predict`` on ``/v1/models/<name>[/versions/<n>|/labels/<label>]``, in the
        row (``instances``) or columnar (``inputs``) format; classify and regress answer
        UNIMPLEMENTED."""
        self._handle()

    # TF Serving's evhttp takes these and its handler answers 'Malformed request' (400).
    do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = do_POST  # noqa: N815

    # --- reading --------------------------------------------------------------------------------

    def _body(self):
        """The request body (Content-Length or chunked), refused past ``max_body``."""
        if 'chunked' in self.headers.get('Transfer-Encoding', '').lower():
            return self._chunked()
        length = self.headers.get('Content-Length')
        if length is None:
            return b''
        if not length.strip().isdigit():
            self.close_connection = True
            raise _HttpError(400, f'Content-Length {length[:40]!r} is not a number of bytes')
        length = int(length)
        if self.max_body and length > self.max_body:
            self._drain(length)
            raise ServingError(grpc.StatusCode.RESOURCE_EXHAUSTED,
                               f'request of {length} bytes exceeds {self.max_body}')
        data = self.rfile.read(length)
        if len(data) < length:
            self.close_connection = True
            raise _HttpError(400, f'the body ended after {len(data)} of {length} bytes')
        return data

    def _drain(self, length):
        """Reads and drops ``length`` bytes in pieces, so the client reads the answer; past
        _DRAIN_LIMIT the connection is closed instead."""
        if length > _DRAIN_LIMIT:
            self.close_connection = True
            return
        while length > 0:
            piece = self.rfile.read(min(length, 1 << 16))
            if not piece:
                break
            length -= len(piece)

    def _chunked(self):
        data = bytearray()
        while True:
            line = self.rfile.readline(1024)
            try:
                size = int(line.split(b';')[0].strip(), 16)
            except ValueError:
                self.close_connection = True
                raise _HttpError(400, 'a malformed chunk size in a chunked body') from None
            if size == 0:
                while self.rfile.readline(1024).strip():  # trailers
                    pass
                return bytes(data)
            if self.max_body and len(data) + size > self.max_body:
                self.close_connection = True
                raise ServingError(grpc.StatusCode.RESOURCE_EXHAUSTED,
                                   f'request of more than {self.max_body} bytes exceeds '
                                   f'{self.max_body}')
            data += self.rfile.read(size)
            self.rfile.readline(1024)

    # --- dispatch -------------------------------------------------------------------------------

    def _handle(self):
        path = self.path
        bare = path.split('#', 1)[0].split('?', 1)[0]
        try:
            body = self._body()
        except _HttpError as e:
            return self._send(e.status, {'error': e.message})
        except ServingError as e:
            return self._error(e.code, e.message)
        if self.metrics_path is not None and bare == self.metrics_path:
            return self._metrics_page(path)
        if not _API_PATH.fullmatch(path):
            # TF Serving's evhttp answers 404 with an HTML page; the status is the same here.
            return self._send(404, {'error': f'Not found: {self.command} {path}'})
        started = time.monotonic()
        name, api = '', ''
        try:
            name, api, response = self._api(self.command, path, body)
        except ServingError as e:
            error = e
        except Exception as e:  # noqa: BLE001 (the server keeps serving)
            error = _unexpected(e)
        else:
            self.metrics.latency('request', (name, api, 'REST'), time.monotonic() - started)
            self.metrics.count(name, grpc.StatusCode.OK)
            return self._send(200, response)
        self.metrics.count(getattr(error, 'model_name', name), error.code)
        self._error(error.code, error.message)

    def _metrics_page(self, path):
        if path != self.metrics_path:  # http_server.cc ProcessPrometheusRequest
            return self._send(400, f'Unexpected path: {path}. Should be {self.metrics_path}'
                              .encode(), 'text/plain')
        self._send(200, self.metrics.page().encode(), 'text/plain')

    def _api(self, method, path, body):
        """(model name, method, JSON answer) of a REST API call, as HttpRestApiHandler's
        ProcessRequest answers it; ServingError (with ``model_name`` for the metrics) if not."""
        if method == 'OPTIONS':
            if re.search('https?://', self.headers.get('Origin', '')):
                return '', '', {}
            raise ServingError(grpc.StatusCode.FAILED_PRECONDITION,
                               'Origin header is missing in CORS preflight')
        match = {'POST': _POST_PATH, 'GET': _GET_PATH}.get(method)
        match = match.fullmatch(path) if match else None
        name = urllib.parse.unquote(match['name']) if match and match['name'] else ''
        try:
            model_spec = self._spec(match, name) if match else None
            if not match:
                raise ServingError(grpc.StatusCode.INVALID_ARGUMENT,
                                   f'Malformed request: {method} {path}')
            if method == 'POST':
                api = match['method'].lower()
                if api != 'predict':
                    raise ServingError(grpc.StatusCode.UNIMPLEMENTED,
                                       f'{match["method"]} is not implemented by the development '
                                       'server')
                return name, api, self._predict(model_spec, body)
            if not name:
                raise ServingError(grpc.StatusCode.INVALID_ARGUMENT,
                                   'Missing model name in request.')
            if match['metadata']:
                return name, '', self._metadata(model_spec)
            number = model_spec.version.value if model_spec.HasField('version') else None
            return name, '', _json(_status_proto(self.manager, name, number))
        except ServingError as e:
            e.model_name = name
            raise

    @staticmethod
    def _spec(match, name):
        """The ModelSpec of a matched path (ParseModelInfo: name and label URL-decoded, the
        version an int64)."""
        model_spec = predict_pb2.PredictRequest().model_spec
        model_spec.name = name
        if match['version']:
            number = int(match['version'])
            if number > _INT64_MAX:
                raise ServingError(grpc.StatusCode.INVALID_ARGUMENT,
                                   f'Failed to convert version: {match["version"]} to numeric.')
            model_spec.version.value = number
        elif match['label']:
            model_spec.version_label = urllib.parse.unquote(match['label'])
        return model_spec

    def _metadata(self, model_spec):
        version, _ = self.manager.resolve(model_spec)
        response = get_model_metadata_pb2.GetModelMetadataResponse()
        response.model_spec.name = version.name
        response.model_spec.version.value = version.number
        signatures = get_model_metadata_pb2.SignatureDefMap()
        for key, value in _signature_defs(version.path).items():
            signatures.signature_def[key].CopyFrom(value)
        return {'model_spec': _json(response.model_spec),
                'metadata': {'signature_def': _json(signatures)}}

    def _predict(self, model_spec, data):
        """ProcessPredictRequest: the body parsed and its keys checked (json_tensor.cc's order:
        JSON, signature_name, the model, instances/inputs), the response size the batch implies
        checked, then the signature run."""
        body = parse_json_body(data)
        signature_name = body.get('signature_name', '')
        if not isinstance(signature_name, str):
            raise _format_error(body, "not formatted correctly. 'signature_name' key must be a "
                                      'string value.')
        signature_name = signature_name or spec.SERVING_SIGNATURE
        version, saved_model = self.manager.resolve(model_spec)
        if signature_name not in saved_model.signatures:
            raise ServingError(grpc.StatusCode.INVALID_ARGUMENT,
                               f'Serving signature name: "{signature_name}" not found in '
                               'signature def')
        function = saved_model.signatures[signature_name]
        expected = function.structured_input_signature[1]
        row = 'instances' in body
        if row and 'inputs' in body:
            raise _format_error(body, "Not formatted correctly expecting only one of 'inputs' or "
                                      "'instances' keys to exist ")
        if row and not isinstance(body['instances'], list):
            raise _format_error(body, "Expecting 'instances' to be an list/array")
        if row and not body['instances']:
            raise _format_error(body, "No values in 'instances' array")
        if not row and 'inputs' not in body:
            raise ServingError(grpc.StatusCode.INVALID_ARGUMENT,
                               "Missing 'inputs' or 'instances' key")
        try:
            inputs = _rest_inputs(body['instances'] if row else body['inputs'], expected, row)
        except (ValueError, KeyError, TypeError, RecursionError) as e:
            raise ServingError(grpc.StatusCode.INVALID_ARGUMENT,
                               f'Malformed request: {str(e)[:_QUOTED]}') from None
        # The answer is JSON text: at least 3 bytes a value ('0, ').
        check_response_size(function, _batch(v.shape for v in inputs.values()),
                            self.max_body and self.max_body // 3)
        outputs = _run(self.metrics, version, saved_model, signature_name, inputs,
                       self.batching, function.structured_outputs)
        if row:
            count = len(next(iter(outputs.values())))
            predictions = [{k: _json_value(v[i], k) for k, v in outputs.items()}
                           for i in range(count)]
            if len(outputs) == 1:
                predictions = [next(iter(p.values())) for p in predictions]
            return {'predictions': predictions}
        out = {k: _json_value(v, k) for k, v in outputs.items()}
        return {'outputs': next(iter(out.values())) if len(out) == 1 else out}


class _PooledHTTPServer(http_server.HTTPServer):
    """An HTTP server whose connections are handled by ``threads`` worker threads, at most
    ``max_connections`` accepted at once (the rest queue for a worker); a connection beyond
    that is answered 503 UNAVAILABLE at once and closed, so threads and memory stay bounded."""

    def __init__(self, address, handler, threads, max_connections):
        super().__init__(address, handler)
        self.max_connections = max_connections
        self._slots = threading.BoundedSemaphore(max_connections)
        self._pool = concurrent.futures.ThreadPoolExecutor(threads,
                                                           thread_name_prefix='dev-server-rest')

    def process_request(self, request, client_address):
        if not self._slots.acquire(blocking=False):
            return self._refuse(request)
        try:
            self._pool.submit(self._work, request, client_address)
        except RuntimeError:  # shutting down
            self._slots.release()
            self.shutdown_request(request)

    def _work(self, request, client_address):
        try:
            self.finish_request(request, client_address)
        except Exception:  # noqa: BLE001 (one connection's failure is its own)
            pass
        finally:
            self.shutdown_request(request)
            self._slots.release()

    def _refuse(self, request):
        body = json.dumps({'error': f'the server already holds {self.max_connections} '
                                    'connections, its limit; retry later'}).encode()
        try:
            request.settimeout(0.2)
            with contextlib.suppress(OSError):
                request.recv(1 << 16)  # the request line, so closing sends no reset over it
            request.sendall(b'HTTP/1.0 503 Service Unavailable\r\nContent-Type: application/json'
                            b'\r\nConnection: close\r\nContent-Length: ' +
                            str(len(body)).encode() + b'\r\n\r\n' + body)
        except OSError:
            pass
        finally:
            self.shutdown_request(request)

    def server_close(self):
        super().server_close()
        self._pool.shutdown(wait=False, cancel_futures=True)


def _json(message):
    """A proto as TF Serving's REST handler prints it (field names kept, defaults printed)."""
    return json_format.MessageToDict(message, preserving_proto_field_name=True,
                                     including_default_value_fields=True)


def _rest_inputs(payload, expected, row):
    """JSON instances (row) or inputs (columnar) → {key: ndarray} typed by the signature."""
    if row:
        if not isinstance(payload, list) or not payload:
            raise ServingError(grpc.StatusCode.INVALID_ARGUMENT, 'instances must be a non-empty '
                                                                 'list')
        if not isinstance(payload[0], dict):
            if len(expected) != 1:
                raise ServingError(grpc.StatusCode.INVALID_ARGUMENT,
                                   'instances of a multi-input signature must be objects')
            payload = [{next(iter(expected)): item} for item in payload]
        columns = {key: [item[key] for item in payload] for key in payload[0]}
    else:
        columns = payload if isinstance(payload, dict) else {next(iter(expected)): payload}
    arrays = {}
    for key, value in columns.items():
        if key in expected and expected[key].dtype == tf.string:
            arrays[key] = np.asarray(_bytes_of(value), dtype=object)
        else:
            arrays[key] = np.asarray(value, dtype=expected[key].dtype.as_numpy_dtype
                                     if key in expected else None)
    return arrays


def _bytes_of(value):
    """A string tensor's JSON values as bytes: ``{"b64": ...}`` objects base64-decoded (TF
    Serving's convention for binary strings, json_tensor.cc), plain strings UTF-8 encoded."""
    if isinstance(value, list):
        return [_bytes_of(item) for item in value]
    if isinstance(value, dict):
        if set(value) != {'b64'} or not isinstance(value['b64'], str):
            raise ServingError(grpc.StatusCode.INVALID_ARGUMENT,
                               f'JSON Value: {json.dumps(value)[:200]} not formatted correctly '
                               f'for base64 data')
        try:
            return base64.b64decode(value['b64'], validate=True)
        except (binascii.Error, ValueError):
            raise ServingError(grpc.StatusCode.INVALID_ARGUMENT,
                               'Unable to base64 decode') from None
    if isinstance(value, str):
        return value.encode()
    raise ServingError(grpc.StatusCode.INVALID_ARGUMENT,
                       f'JSON Value: {json.dumps(value)[:200]} Type: {type(value).__name__} is '
                       f'not of expected type: string')


class DevServer:
    """gRPC + REST front of a Manager, with file-system (and optionally config-file) polling."""

    def __init__(self, config, host='127.0.0.1', grpc_port=0, rest_port=0,
                 file_system_poll_seconds=1.0, config_file=None, config_poll_seconds=0.0,
                 allow_labels_for_unavailable=False, max_message_bytes=64 * 1024 * 1024,
                 log=None, read_config=None, monitoring_config=None,
                 enable_grpc_healthcheck_service=False, grpc_threads=8,
                 max_concurrent_rpcs=64, rest_threads=8, max_connections=64, batching=None):
        """``read_config(path)`` reads the polled config file (default: as written).

        ``monitoring_config``: a MonitoringConfig (``serving.config``); with its
        ``prometheus_config`` enabled, TF Serving's request metrics are served on the REST port
        at its path (default ``/monitoring/prometheus/metrics``), as with
        ``--monitoring_config_file``. ``enable_grpc_healthcheck_service`` adds grpc.health.v1
        as TF Serving's flag of that name does. ``grpc_threads`` run RPCs, at most
        ``max_concurrent_rpcs`` at once (beyond: RESOURCE_EXHAUSTED); ``rest_threads`` serve
        REST connections, at most ``max_connections`` open at once (beyond: 503).
        ``batching`` (a batching.ServerBatching) merges concurrent Predict requests as
        ``--enable_batching`` does; the server closes its scheduler when it stops.
        """
        self.read_config = read_config or serving_config.read_models
        self.log = log or (lambda message: None)
        self.manager = _BatchingManager(
                allow_labels_for_unavailable=allow_labels_for_unavailable, log=self.log)
        self.manager.batching = self.batching = batching
        self._initial_config = config
        self.config_file = config_file
        self.host = host
        self._ports = (grpc_port, rest_port)
        self.file_system_poll_seconds = file_system_poll_seconds
        self.config_poll_seconds = config_poll_seconds
        self.max_message_bytes = max_message_bytes
        self.metrics = Metrics()
        prometheus = monitoring_config.prometheus_config if monitoring_config else None
        self.metrics_path = ((prometheus.path or serving_config.PROMETHEUS_PATH)
                             if prometheus is not None and prometheus.enable else None)
        self.enable_grpc_healthcheck_service = enable_grpc_healthcheck_service
        self._grpc_threads = (grpc_threads, max_concurrent_rpcs)
        self._rest_threads = (rest_threads, max_connections)
        self._stop = threading.Event()
        self._threads = []

    def start(self):
        """Loads the initial config, starts the gRPC and REST servers (ports chosen when 0, then
        in ``grpc_port``, ``rest_port``) and the polling threads; returns the server."""
        self.manager.reload(self._initial_config)
        options = [('grpc.max_receive_message_length', self.max_message_bytes),
                   ('grpc.max_send_message_length', self.max_message_bytes)]
        threads, concurrent_rpcs = self._grpc_threads
        self._grpc = grpc.server(concurrent.futures.ThreadPoolExecutor(threads), options=options,
                                 maximum_concurrent_rpcs=concurrent_rpcs)
        prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(
                PredictionService(self.manager, self.metrics, self.max_message_bytes,
                                  self.batching),
                self._grpc)
        model_service_pb2_grpc.add_ModelServiceServicer_to_server(ModelService(self.manager),
                                                                  self._grpc)
        if self.enable_grpc_healthcheck_service:
            self._grpc.add_generic_rpc_handlers((_health_handler(),))
        self.grpc_port = self._grpc.add_insecure_port(f'{self.host}:{self._ports[0]}')
        self._grpc.start()
        handler = type('Handler', (_RestHandler,), {
                'manager': self.manager, 'max_body': self.max_message_bytes,
                'metrics': self.metrics, 'metrics_path': self.metrics_path,
                'batching': self.batching})
        self._http = _PooledHTTPServer((self.host, self._ports[1]), handler, *self._rest_threads)
        self.rest_port = self._http.server_address[1]
        self._spawn(self._http.serve_forever)
        if self.file_system_poll_seconds > 0:
            self._spawn(self._poll_files)
        if self.config_file and self.config_poll_seconds > 0:
            self._spawn(self._poll_config)
        metrics = f', metrics at {self.metrics_path}' if self.metrics_path else ''
        self.log(f'serving gRPC on {self.host}:{self.grpc_port}, REST on '
                 f'{self.host}:{self.rest_port}{metrics} (development server)')
        return self

    def _spawn(self, target):
        thread = threading.Thread(target=target, daemon=True)
        thread.start()
        self._threads.append(thread)

    def _poll_files(self):
        while not self._stop.wait(self.file_system_poll_seconds):
            try:
                self.manager.poll()
            except Exception as e:  # keep serving whatever happens on disk
                self.log(f'poll failed: {e!r}')

    def _poll_config(self):
        while not self._stop.wait(self.config_poll_seconds):
            try:
                config = self.read_config(self.config_file)
                if config != self.manager.config:
                    self.manager.reload(config)
            except Exception as e:  # a bad file keeps the old config, as TF Serving does
                self.log(f'config reload failed, keeping the old one: {e}')

    def stop(self):
        """Stops polling and shuts both servers down."""
        self._stop.set()
        self._http.shutdown()
        self._http.server_close()
        self._grpc.stop(None)
        if self.batching is not None:
            self.batching.close()

    def wait_until_available(self, name, version=None, timeout=60.0):
        """Returns True once version ``version`` (None: any) of ``name`` is AVAILABLE;
        TimeoutError after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.manager.available(name, version):
                return True
            time.sleep(0.05)
        raise TimeoutError(f'{name} version {version or "latest"} not AVAILABLE after '
                           f'{timeout} s')

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


