"""A development model server that speaks TF Serving's gRPC and REST APIs.

``tensorflow_model_server`` cannot be installed from PyPI or Debian, so development and tests use
this stand-in: the same ``models.config``, the same ``<base_path>/<version>/`` tree, the same
PredictionService / ModelService protos (tensorflow_serving.apis) and REST paths, the same
version policies, labels, polling, warmup and error codes. Production runs the official
``tensorflow/serving`` image (serving/docker-compose.yml, serving/k8s/). Binds 127.0.0.1.
"""

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
from tensorflow.core.framework import types_pb2
from tensorflow.core.protobuf import saved_model_pb2
from tensorflow_serving.apis import get_model_metadata_pb2
from tensorflow_serving.apis import get_model_status_pb2
from tensorflow_serving.apis import model_management_pb2
from tensorflow_serving.apis import model_service_pb2_grpc
from tensorflow_serving.apis import predict_pb2
from tensorflow_serving.apis import prediction_service_pb2_grpc

from everywear_tf.serving import config as serving_config
from everywear_tf.serving.manager import Manager
from everywear_tf.serving.manager import ServingError
from everywear_tf.serving.manager import State

DEFAULT_SIGNATURE = 'serving_default'
_HTTP_STATUS = {grpc.StatusCode.NOT_FOUND: 404, grpc.StatusCode.INVALID_ARGUMENT: 400,
                grpc.StatusCode.FAILED_PRECONDITION: 400, grpc.StatusCode.RESOURCE_EXHAUSTED: 413,
                grpc.StatusCode.UNIMPLEMENTED: 501, grpc.StatusCode.UNAVAILABLE: 503}


def _signature_defs(path):
    saved_model = saved_model_pb2.SavedModel()
    with open(f'{path}/saved_model.pb', 'rb') as f:
        saved_model.ParseFromString(f.read())
    return saved_model.meta_graphs[0].signature_def


def run_signature(version, saved_model, signature_name, inputs):
    """Runs ``signature_name`` on {key: ndarray}; ServingError on bad inputs (TF's wording)."""
    signature = version.signature(signature_name or DEFAULT_SIGNATURE)
    expected = signature.structured_input_signature[1]
    if set(inputs) != set(expected):
        raise ServingError(grpc.StatusCode.INVALID_ARGUMENT,
                           f'input size does not match signature: {len(inputs)}!='
                           f'{len(expected)} len({sorted(inputs)}) != len({sorted(expected)})')
    for index, key in enumerate(sorted(expected)):
        spec = expected[key]
        value = inputs[key]
        if value.dtype != spec.dtype.as_numpy_dtype:
            raise ServingError(grpc.StatusCode.INVALID_ARGUMENT,
                               f'Expects arg[{index}] to be {spec.dtype.name} but '
                               f'{tf.as_dtype(value.dtype).name} is provided')
        if not spec.shape.is_compatible_with(value.shape):
            raise ServingError(grpc.StatusCode.INVALID_ARGUMENT,
                               f'input {key!r} has shape {list(value.shape)}, the signature '
                               f'takes {spec.shape}')
    del saved_model  # held by the caller until the call returns
    try:
        outputs = signature(**{k: tf.constant(v) for k, v in inputs.items()})
    except (tf.errors.InvalidArgumentError, ValueError, TypeError) as e:
        raise ServingError(grpc.StatusCode.INVALID_ARGUMENT, str(e).splitlines()[0]) from None
    return {key: value.numpy() for key, value in outputs.items()}


class PredictionService(prediction_service_pb2_grpc.PredictionServiceServicer):
    def __init__(self, manager):
        self.manager = manager

    def Predict(self, request, context):
        try:
            version, saved_model = self.manager.resolve(request.model_spec)
            inputs = {k: tf.make_ndarray(v) for k, v in request.inputs.items()}
            outputs = run_signature(version, saved_model, request.model_spec.signature_name,
                                    inputs)
        except ServingError as e:
            context.abort(e.code, e.message)
        wanted = set(request.output_filter) or set(outputs)
        unknown = wanted - set(outputs)
        if unknown:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                          f'output tensor alias not found in signature: {sorted(unknown)[0]}')
        response = predict_pb2.PredictResponse()
        response.model_spec.name = version.name
        response.model_spec.version.value = version.number
        response.model_spec.signature_name = request.model_spec.signature_name or \
            DEFAULT_SIGNATURE
        for key in wanted:
            response.outputs[key].CopyFrom(tf.make_tensor_proto(outputs[key]))
        return response

    def GetModelMetadata(self, request, context):
        if list(request.metadata_field) != ['signature_def']:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                          'Metadata field signature_def is the only one supported')
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
    response = get_model_status_pb2.GetModelStatusResponse()
    for version, state, error in manager.status(name, number):
        status = response.model_version_status.add(version=version, state=int(state))
        if error is not None:
            status.status.error_code = error[0].value[0]
            status.status.error_message = error[1]
    return response


class ModelService(model_service_pb2_grpc.ModelServiceServicer):
    def __init__(self, manager):
        self.manager = manager

    def GetModelStatus(self, request, context):
        number = request.model_spec.version.value if request.model_spec.HasField(
                'version') else None
        try:
            return _status_proto(self.manager, request.model_spec.name, number)
        except ServingError as e:
            context.abort(e.code, e.message)

    def HandleReloadConfigRequest(self, request, context):
        response = model_management_pb2.ReloadConfigResponse()
        try:
            self.manager.reload(request.config)
        except ServingError as e:
            context.abort(e.code, e.message)
        return response


_PATH = re.compile(r'^/v1/models/(?P<name>[^/:]+)(?:/versions/(?P<version>\d+)|'
                   r'/labels/(?P<label>[a-zA-Z0-9_]+))?(?P<rest>/metadata|:predict)?$')


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

    def do_GET(self):
        match = _PATH.match(self.path)
        if not match or match['rest'] == ':predict':
            return self._error(grpc.StatusCode.NOT_FOUND, f'Malformed request: GET {self.path}')
        try:
            if match['rest'] == '/metadata':
                version, _ = self.manager.resolve(self._spec(match))
                defs = _signature_defs(version.path)
                metadata = {k: _signature_json(v) for k, v in defs.items()}
                return self._send(200, {'model_spec': {'name': version.name,
                                                       'version': str(version.number)},
                                        'metadata': {'signature_def': {
                                                'signature_def': metadata}}})
            number = int(match['version']) if match['version'] else None
            if match['label']:
                number = self.manager.resolve(self._spec(match))[0].number
            statuses = self.manager.status(match['name'], number)
        except ServingError as e:
            return self._error(e.code, e.message)
        self._send(200, {'model_version_status': [
                {'version': str(n), 'state': State(s).name,
                 'status': {'error_code': error[0].name if error else 'OK',
                            'error_message': error[1] if error else ''}}
                for n, s, error in statuses]})

    def do_POST(self):
        match = _PATH.match(self.path)
        if not match or match['rest'] != ':predict':
            return self._error(grpc.StatusCode.NOT_FOUND, f'Malformed request: POST {self.path}')
        length = int(self.headers.get('Content-Length', 0))
        if self.max_body and length > self.max_body:
            return self._error(grpc.StatusCode.RESOURCE_EXHAUSTED,
                               f'request of {length} bytes exceeds {self.max_body}')
        try:
            body = json.loads(self.rfile.read(length) or b'{}')
            version, saved_model = self.manager.resolve(self._spec(match))
            signature_name = body.get('signature_name', DEFAULT_SIGNATURE)
            expected = version.signature(signature_name).structured_input_signature[1]
            row = 'instances' in body
            if row == ('inputs' in body):
                raise ServingError(grpc.StatusCode.INVALID_ARGUMENT,
                                   'Missing \'inputs\' or \'instances\' key')
            inputs = _rest_inputs(body['instances'] if row else body['inputs'], expected, row)
            outputs = run_signature(version, saved_model, signature_name, inputs)
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
    return {key: np.asarray(value, dtype=expected[key].dtype.as_numpy_dtype
                            if key in expected else None) for key, value in columns.items()}


def _signature_json(signature_def):
    def tensors(mapping):
        return {k: {'dtype': types_pb2.DataType.Name(v.dtype),
                    'tensor_shape': {'dim': [{'size': str(d.size)} for d in v.tensor_shape.dim]},
                    'name': v.name} for k, v in mapping.items()}

    return {'inputs': tensors(signature_def.inputs), 'outputs': tensors(signature_def.outputs),
            'method_name': signature_def.method_name}


class DevServer:
    """gRPC + REST front of a Manager, with file-system (and optionally config-file) polling."""

    def __init__(self, config, host='127.0.0.1', grpc_port=0, rest_port=0,
                 file_system_poll_seconds=1.0, config_file=None, config_poll_seconds=0.0,
                 allow_labels_for_unavailable=False, max_message_bytes=64 * 1024 * 1024,
                 log=None):
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
                config = serving_config.read_models(self.config_file)
                if config != self.manager.config:
                    self.manager.reload(config)
            except Exception as e:  # a bad file keeps the old config, as TF Serving does
                self.log(f'config reload failed, keeping the old one: {e}')

    def stop(self):
        self._stop.set()
        self._http.shutdown()
        self._http.server_close()
        self._grpc.stop(None)

    def wait_until_available(self, name, version=None, timeout=60.0):
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


