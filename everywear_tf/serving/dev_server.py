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
import json
import re
import threading
import time
from http import server as http_server

import grpc
import numpy as np
import tensorflow as tf
from google.protobuf import any_pb2
from google.protobuf import json_format
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


class PredictionService(prediction_service_pb2_grpc.PredictionServiceServicer):
    """TF Serving's gRPC PredictionService (Predict, GetModelMetadata) over a Manager."""

    def __init__(self, manager):
        self.manager = manager

    def Predict(self, request, context):  # noqa: N802 (the API names it)
        """Runs the requested version's signature on the PredictRequest's inputs; returns a
        PredictResponse (outputs in typed fields, filtered by ``output_filter``) or aborts the
        call with TF Serving's code and message."""
        try:
            version, saved_model = self.manager.resolve(request.model_spec)
            signature_name = request.model_spec.signature_name or spec.SERVING_SIGNATURE
            outputs = manager_lib.signature(saved_model, signature_name).structured_outputs
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
            inputs = {k: tf.make_ndarray(v) for k, v in request.inputs.items()}
            outputs = manager_lib.predict(saved_model, signature_name, inputs)
        except ServingError as e:
            context.abort(e.code, e.message)
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


# http_rest_api_util.cc kPredictionApiGegex and kModelStatusApiRegex (2.15.1).
_POST_PATH = re.compile(r'/v1/models/(?P<name>[^/:]+)(?:/versions/(?P<version>\d+)|'
                        r'/labels/(?P<label>[^/:]+))?:(?P<method>classify|regress|predict)',
                        re.IGNORECASE)
_GET_PATH = re.compile(r'/v1/models(?:/(?P<name>[^/:]+))?(?:/versions/(?P<version>\d+)|'
                       r'/labels/(?P<label>[^/:]+))?(?:/(?P<metadata>metadata))?', re.IGNORECASE)


def _json_value(array):
    return array.tolist()


class _RestHandler(http_server.BaseHTTPRequestHandler):
    server_version = 'EverywearDevServer'
    manager = None
    max_body = None

    def log_message(self, *args):
        pass

    def _send(self, code, body):
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header('Content-Type', 'application/json')
        self.send_header('Content-Length', str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _error(self, code, message):
        self._send(_HTTP_STATUS.get(code, 500), {'error': message})

    def _spec(self, match):
        spec = predict_pb2.PredictRequest().model_spec
        spec.name = match['name']
        if match['version']:
            spec.version.value = int(match['version'])
        elif match['label']:
            spec.version_label = match['label']
        return spec

    def _malformed(self, method):
        return ServingError(grpc.StatusCode.INVALID_ARGUMENT,
                            f'Malformed request: {method} {self.path}')

    def do_GET(self):  # noqa: N802 (the API names it)
        """REST model status (``/v1/models/<name>[/versions/<n>]``) or, with ``/metadata``,
        the signature defs, as TF Serving's JSON."""
        try:
            match = _GET_PATH.fullmatch(self.path)
            if not match:
                raise self._malformed('GET')
            if not match['name']:
                raise ServingError(grpc.StatusCode.INVALID_ARGUMENT,
                                   'Missing model name in request.')
            if match['metadata']:
                version, _ = self.manager.resolve(self._spec(match))
                response = get_model_metadata_pb2.GetModelMetadataResponse()
                response.model_spec.name = version.name
                response.model_spec.version.value = version.number
                signatures = get_model_metadata_pb2.SignatureDefMap()
                for key, value in _signature_defs(version.path).items():
                    signatures.signature_def[key].CopyFrom(value)
                return self._send(200, {
                        'model_spec': _json(response.model_spec),
                        'metadata': {'signature_def': _json(signatures)}})
            number = int(match['version']) if match['version'] else None
            response = _status_proto(self.manager, match['name'], number)
        except ServingError as e:
            return self._error(e.code, e.message)
        self._send(200, _json(response))

    def do_POST(self):  # noqa: N802 (the API names it)
        """REST ``:predict`` on ``/v1/models/<name>[/versions/<n>|/labels/<label>]``, in the
        row (``instances``) or columnar (``inputs``) format; classify and regress answer
        UNIMPLEMENTED."""
        match = _POST_PATH.fullmatch(self.path)
        if not match:
            return self._error(grpc.StatusCode.INVALID_ARGUMENT,
                               f'Malformed request: POST {self.path}')
        if match['method'].lower() != 'predict':
            return self._error(grpc.StatusCode.UNIMPLEMENTED,
                               f'{match["method"]} is not implemented by the development server')
        length = int(self.headers.get('Content-Length', 0))
        if self.max_body and length > self.max_body:
            self.rfile.read(length)  # drain it, so the client reads the answer
            return self._error(grpc.StatusCode.RESOURCE_EXHAUSTED,
                               f'request of {length} bytes exceeds {self.max_body}')
        try:
            body = json.loads(self.rfile.read(length) or b'{}')
            version, saved_model = self.manager.resolve(self._spec(match))
            signature_name = body.get('signature_name') or spec.SERVING_SIGNATURE
            if signature_name not in saved_model.signatures:
                raise ServingError(grpc.StatusCode.INVALID_ARGUMENT,
                                   f'Serving signature name: "{signature_name}" not found in '
                                   'signature def')
            expected = saved_model.signatures[signature_name].structured_input_signature[1]
            row = 'instances' in body
            if row == ('inputs' in body):
                raise ServingError(grpc.StatusCode.INVALID_ARGUMENT,
                                   'Missing \'inputs\' or \'instances\' key')
            inputs = _rest_inputs(body['instances'] if row else body['inputs'], expected, row)
            outputs = manager_lib.predict(saved_model, signature_name, inputs)
        except ServingError as e:
            return self._error(e.code, e.message)
        except (ValueError, KeyError, TypeError) as e:
            return self._error(grpc.StatusCode.INVALID_ARGUMENT, f'Malformed request: {e}')
        if row:
            count = len(next(iter(outputs.values())))
            predictions = [{k: _json_value(v[i]) for k, v in outputs.items()}
                           for i in range(count)]
            if len(outputs) == 1:
                predictions = [next(iter(p.values())) for p in predictions]
            return self._send(200, {'predictions': predictions})
        out = {k: _json_value(v) for k, v in outputs.items()}
        self._send(200, {'outputs': next(iter(out.values())) if len(out) == 1 else out})


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
                 log=None, read_config=None):
        """``read_config(path)`` reads the polled config file (default: as written)."""
        self.read_config = read_config or serving_config.read_models
        self.log = log or (lambda message: None)
        self.manager = Manager(allow_labels_for_unavailable=allow_labels_for_unavailable,
                               log=self.log)
        self._initial_config = config
        self.config_file = config_file
        self.host = host
        self._ports = (grpc_port, rest_port)
        self.file_system_poll_seconds = file_system_poll_seconds
        self.config_poll_seconds = config_poll_seconds
        self.max_message_bytes = max_message_bytes
        self._stop = threading.Event()
        self._threads = []

    def start(self):
        """Loads the initial config, starts the gRPC and REST servers (ports chosen when 0, then
        in ``grpc_port``, ``rest_port``) and the polling threads; returns the server."""
        self.manager.reload(self._initial_config)
        options = [('grpc.max_receive_message_length', self.max_message_bytes),
                   ('grpc.max_send_message_length', self.max_message_bytes)]
        self._grpc = grpc.server(concurrent.futures.ThreadPoolExecutor(8), options=options)
        prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(
                PredictionService(self.manager), self._grpc)
        model_service_pb2_grpc.add_ModelServiceServicer_to_server(ModelService(self.manager),
                                                                  self._grpc)
        self.grpc_port = self._grpc.add_insecure_port(f'{self.host}:{self._ports[0]}')
        self._grpc.start()
        handler = type('Handler', (_RestHandler,), {'manager': self.manager,
                                                    'max_body': self.max_message_bytes})
        self._http = http_server.ThreadingHTTPServer((self.host, self._ports[1]), handler)
        self.rest_port = self._http.server_address[1]
        self._spawn(self._http.serve_forever)
        if self.file_system_poll_seconds > 0:
            self._spawn(self._poll_files)
        if self.config_file and self.config_poll_seconds > 0:
            self._spawn(self._poll_config)
        self.log(f'serving gRPC on {self.host}:{self.grpc_port}, REST on '
                 f'{self.host}:{self.rest_port} (development server)')
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


