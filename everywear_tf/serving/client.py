"""The thin client for the served modules: TF Serving's gRPC API by default, REST optional.

One call per module (the whole try-on, GMM → EDM → category rule → RM, is
``everywear_tf.inference.pipeline.ServerBackend``), or one call per try-on on the category's
one-call model (``tryon``), a version or label per call, deadlines,
retries with back-off on UNAVAILABLE only (never on INVALID_ARGUMENT: a bad request stays bad),
message limits raised for images, one connection reused across calls, bounded concurrency for
batches, and an optional stable/canary split by percentage. Inputs are checked against the
signature before they are sent.

Payloads: gRPC sends uint8 tensors packed (1 byte a value) and asks only for the outputs the
caller needs (``output_filter``; GMM's float32 grid is not among the chain's). REST has no
output filter in TF Serving, and JSON numbers cost megabytes a frame, so with ``encoded`` (to
become REST's default once the dev server writes ``*_bytes`` outputs as ``{"b64": ...}``, as
TF Serving does) images go as PNG files through each model's ``encoded`` signature (base64 in
``{"b64": ...}`` both ways); the caller still gives and gets uint8 arrays, the same values (PNG is
lossless), and the outputs it did not ask for are dropped on arrival.

Which version answers a call that names none: the client's own choice, by default the ``stable``
label (TF Serving resolves a call without label or version to the highest AVAILABLE version,
which during a rollout is a merely staged one). When the server answers that the model has no
such label (a config without labels) and the label was the client's default, not one the caller
chose, the call is sent again without a label, and that model's calls go without one for
``label_recheck_seconds`` before ``stable`` is tried again.
"""

import base64
import concurrent.futures
import contextlib
import dataclasses
import gc
import json
import random
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from collections.abc import Iterable
from collections.abc import Iterator
from collections.abc import Mapping
from typing import Any
from typing import Self

import cv2
import grpc
import numpy as np
from tensorflow_serving.apis import get_model_metadata_pb2
from tensorflow_serving.apis import model_pb2
from tensorflow_serving.apis import predict_pb2
from tensorflow_serving.apis import prediction_service_pb2_grpc

from everywear_tf import errors
from everywear_tf import spec
from everywear_tf.data import images
from everywear_tf.serving import signature_inputs
from everywear_tf.serving import wire

GRPC = 'grpc'
REST = 'rest'
MAX_MESSAGE_BYTES = 64 * 1024 * 1024
RETRYABLE = (grpc.StatusCode.UNAVAILABLE,)
# A per-call label that sends no label even when the client has a default one (a real label is
# never empty: TF Serving's REST paths take [a-zA-Z0-9_]+).
NO_LABEL = ''
# TF Serving 2.15's answer (INVALID_ARGUMENT) to a label its config does not define for the
# model (ServerCore::GetModelVersionForLabel); the dev server answers the same.
UNRECOGNIZED_LABEL = 'Unrecognized servable version label'

_NUMPY_TO_PROTO = {np.dtype(np.uint8): (4, 'int_val'), np.dtype(np.float32): (1, 'float_val')}


_collector_lock = threading.Lock()
_collector_state = {'pauses': 0, 'was_enabled': False}


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """Python's cyclic garbage collector waits while JSON bodies are built and read.

    A 256×192 image in JSON is hundreds of thousands of Python numbers; building them triggers
    collections, each scanning the whole heap, which in a process holding TensorFlow made up most
    of a REST call's time (BUILD.md §12). These objects form no cycles, so nothing is lost by
    waiting. Nested and concurrent pauses are counted: the collector resumes after the last.
    """
    with _collector_lock:
        if _collector_state['pauses'] == 0:
            _collector_state['was_enabled'] = gc.isenabled()
            gc.disable()
        _collector_state['pauses'] += 1
    try:
        yield
    finally:
        with _collector_lock:
            _collector_state['pauses'] -= 1
            if _collector_state['pauses'] == 0 and _collector_state['was_enabled']:
                gc.enable()


class ServerError(errors.EverywearError):
    """The server answered with an error (its gRPC code and message)."""

    def __init__(self, code: grpc.StatusCode, message: str, model_name: str):
        super().__init__(f'{model_name}: {code.name}: {message}')
        self.code, self.message, self.model_name = code, message, model_name

    @property
    def unreachable(self) -> bool:
        """Whether no server answered (nothing listening there, or no answer in time)."""
        return self.code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)

    @property
    def unknown_label(self) -> bool:
        """Whether the server said the model has no such version label."""
        return (self.code == grpc.StatusCode.INVALID_ARGUMENT
                and UNRECOGNIZED_LABEL in self.message)


@dataclasses.dataclass(frozen=True)
class Where:
    """The version one call asks for: a number, a label, or neither (the server's default);
    ``fallback``: the label is the client's default, dropped if the model has no such label."""
    version: int | None = None
    label: str | None = None
    fallback: bool = False

    def describe(self) -> str:
        """'version 3', 'label stable' or 'no label'."""
        if self.version is not None:
            return f'version {self.version}'
        return f'label {self.label}' if self.label else 'no label'


def _tensor_proto(array: np.ndarray):
    """A TensorProto with packed content (uint8 images stay 1 byte per value on the wire);
    strings (files) in string_val."""
    from tensorflow.core.framework import tensor_pb2
    from tensorflow.core.framework import tensor_shape_pb2
    shape = tensor_shape_pb2.TensorShapeProto(
            dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=d) for d in array.shape])
    if array.dtype == object:
        return tensor_pb2.TensorProto(dtype=7, tensor_shape=shape,
                                      string_val=list(array.ravel()))
    dtype, _ = _NUMPY_TO_PROTO[array.dtype]
    return tensor_pb2.TensorProto(dtype=dtype, tensor_shape=shape,
                                  tensor_content=np.ascontiguousarray(array).tobytes())


def encode_png(image: np.ndarray) -> bytes:
    """A uint8 [H,W,3] image or [H,W] mask as a PNG file (lossless; fastest compression)."""
    return images.encode_png(image, fast=True)


def decode_png(data: bytes) -> np.ndarray:
    """A PNG file's pixels, uint8 [H,W,3] (RGB) or [H,W]; the server writes no other kind."""
    pixels = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if pixels is None:
        raise ValueError(f'the server answered a PNG output that does not decode '
                         f'({len(data)} bytes)')
    if pixels.dtype != np.uint8 or not (pixels.ndim == 2 or pixels.shape[2] == 3):
        raise ValueError(f'the server answered a PNG output of {pixels.dtype} {pixels.shape}; '
                         f'expected 8-bit grey or RGB')
    return pixels if pixels.ndim == 2 else cv2.cvtColor(pixels, cv2.COLOR_BGR2RGB)


def encode_inputs(module: str, inputs: Mapping[str, np.ndarray]) -> dict:
    """uint8 images of a module's signature → its ``encoded`` signature's inputs (PNG files)."""
    return {spec.encoded_key(key): (np.array([encode_png(item) for item in value], dtype=object)
                                    if spec.encoded_key(key) != key else value)
            for key, value in inputs.items()}


def decode_outputs(outputs: Mapping[str, np.ndarray]) -> dict:
    """An ``encoded`` signature's outputs → uint8 arrays under the ``serving_default`` names."""
    return {spec.decoded_key(key): (np.stack([decode_png(item) for item in value])
                                    if key != spec.decoded_key(key) else value)
            for key, value in outputs.items()}


# DataType enum values of the outputs the models answer with (the front end's int32 and bool too).
_PROTO_DTYPES = {4: np.uint8, 1: np.float32, 3: np.int32, 10: np.bool_, 7: object}


def _from_proto(proto) -> np.ndarray:
    dtype = _PROTO_DTYPES.get(proto.dtype)
    if dtype is object:
        return np.array(list(proto.string_val), dtype=object).reshape(
                [d.size for d in proto.tensor_shape.dim])
    if dtype is None:
        raise ValueError(f'unexpected output dtype {proto.dtype}')
    shape = [d.size for d in proto.tensor_shape.dim]
    if proto.tensor_content:
        return np.frombuffer(proto.tensor_content, dtype).reshape(shape)
    values = wire.decode(proto)  # TF Serving's typed fields, read as arrays
    if values is None:
        field = {np.float32: proto.float_val, np.bool_: proto.bool_val}.get(dtype, proto.int_val)
        values = np.asarray(field, dtype)
    return values.reshape(shape)


def _json_input(value: np.ndarray):
    """A tensor as TF Serving's REST API takes it: files as ``{"b64": ...}``, else numbers."""
    if value.dtype == object:
        return [{'b64': base64.b64encode(item).decode('ascii')} for item in value]
    return value.tolist()


def _json_output(value, dtype_shape, key):
    """An answered tensor: ``*_bytes`` outputs ``{"b64": ...}`` → bytes, else typed numbers."""
    if key.endswith(spec.BYTES_SUFFIX):
        return np.array([base64.b64decode(item['b64']) for item in value], dtype=object)
    return np.asarray(value, dtype_shape[0])


class Client:
    """A connection to one TF Serving (or the dev server) and the calls made through it."""

    def __init__(self, address: str = 'localhost:8500', transport: str = GRPC,
                 timeout: float = 30.0, retries: int = 3, backoff: float = 0.2,
                 max_message_bytes: int = MAX_MESSAGE_BYTES, concurrency: int = 4,
                 canary_percent: float = 0.0, seed: int | None = None,
                 label: str | None = spec.STABLE, version: int | None = None,
                 label_fallback: bool = True, label_recheck_seconds: float = 30.0,
                 encoded: bool | None = None):
        """Opens the connection (gRPC; REST opens one per call).

        Args:
          address: host:port of the server's gRPC or REST port, to match ``transport``.
          transport: ``GRPC`` or ``REST``.
          timeout: deadline of each request, in seconds.
          retries: further attempts after an UNAVAILABLE answer (no other code is retried).
          backoff: seconds before the first retry, doubled before each further one.
          max_message_bytes: gRPC send and receive limit (images exceed gRPC's 4 MiB default).
          concurrency: calls ``map`` keeps in flight at most.
          canary_percent: share of whole try-ons ``route`` sends to the canary label, 0..100.
          seed: seeds the stable/canary draw (None: unseeded).
          label: the label of calls that name no version or label (None: send none, and the
            server answers with its highest AVAILABLE version).
          version: the version of calls that name none (takes precedence over ``label``).
          label_fallback: if the server answers that a model has no ``label`` (its config
            defines none), send that model's calls without a label instead of failing. Pass
            False when the user asked for the label.
          label_recheck_seconds: how long a model found without the label is called without
            one before the label is tried again (a rollout may add labels to a config).
          encoded: send images as PNG files through the models' ``encoded`` signature and get
            PNG files back (off by default: versions exported before it have no such signature).
        """
        if transport not in (GRPC, REST):
            raise ValueError(f'transport must be {GRPC!r} or {REST!r}, got {transport!r}')
        if not 0 <= canary_percent <= 100:
            raise ValueError(f'canary_percent must be within 0..100, got {canary_percent}')
        self.address, self.transport, self.timeout = address, transport, timeout
        self.retries, self.backoff, self.concurrency = retries, backoff, concurrency
        self.canary_percent = canary_percent
        self.label = label or None
        self.version = None if version is None else int(version)
        self.label_fallback, self.label_recheck_seconds = label_fallback, label_recheck_seconds
        self.encoded = bool(encoded)
        self._unlabelled = {}  # model name → time.monotonic() of its "no such label" answer
        self._random = random.Random(seed)
        self._random_lock = threading.Lock()
        if transport == GRPC:
            self._channel = grpc.insecure_channel(address, options=[
                    ('grpc.max_receive_message_length', max_message_bytes),
                    ('grpc.max_send_message_length', max_message_bytes)])
            self._stub = prediction_service_pb2_grpc.PredictionServiceStub(self._channel)

    def close(self) -> None:
        """Closes the gRPC channel (nothing to close for REST)."""
        if self.transport == GRPC:
            self._channel.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def route(self) -> str | None:
        """The label of the next whole try-on under the stable/canary split (None: no split)."""
        if not self.canary_percent:
            return None
        with self._random_lock:
            draw = self._random.uniform(0, 100)
        return spec.CANARY if draw < self.canary_percent else spec.STABLE

    # --- one module ----------------------------------------------------------------------------

    def where(self, model_name: str, version: int | str | None = None,
              label: str | None = None) -> Where:
        """The version a call on ``model_name`` asks for: ``version`` (a number) or else
        ``label`` if given (``NO_LABEL``: none), else the client's default version or label."""
        if version is not None:
            return Where(version=int(version))
        if label is not None:
            return Where(label=label or None)
        if self.version is not None:
            return Where(version=self.version)
        if self.label is None:
            return Where()
        if not self.label_fallback:
            return Where(label=self.label)
        with self._random_lock:
            since = self._unlabelled.get(model_name)
        if since is not None and time.monotonic() - since < self.label_recheck_seconds:
            return Where()
        return Where(label=self.label, fallback=True)

    def _call(self, call, model_name, where):
        """``call(where)`` with retries on UNAVAILABLE, and without the label if the server has
        none for the model and the label was the client's default."""
        delay = self.backoff
        attempt = 0
        while True:
            try:
                return call(where)
            except ServerError as e:
                if where.fallback and e.unknown_label:
                    with self._random_lock:
                        self._unlabelled[model_name] = time.monotonic()
                    where = Where()
                    continue
                if e.code not in RETRYABLE or attempt == self.retries:
                    raise
                attempt += 1
                time.sleep(delay)
                delay *= 2

    def predict(self, model_name: str, inputs: Mapping[str, np.ndarray],
                version: int | str | None = None, label: str | None = None,
                with_version: bool = False, outputs: Iterable[str] | None = None
                ) -> dict[str, np.ndarray] | tuple[dict[str, np.ndarray], int | None]:
        """Runs a model on numpy ``inputs``; returns numpy outputs.

        ``version`` (a number) or else ``label`` (such as 'stable', 'canary'; ``NO_LABEL``:
        none) picks the model version; neither: the client's default (``where``). With
        ``with_version`` returns (outputs, the version that answered; None over REST, which
        does not say). ``outputs``: the output names wanted (gRPC's ``output_filter``; over
        REST the others are dropped on arrival); None: all of them. With the client's
        ``encoded``, the uint8 images travel as PNG files (the ``encoded`` signature, which has
        no GMM grid). Retries UNAVAILABLE answers with back-off; raises ServerError for any
        other, or when the retries run out.
        """
        module, _ = spec.module_of(model_name)
        inputs = signature_inputs.check_inputs(module, inputs)
        wanted = None if outputs is None else tuple(outputs)
        if wanted is not None:
            unknown = sorted(set(wanted) - set(spec.MODULE_OUTPUTS[module]))
            if unknown:
                raise ValueError(f'{model_name} has no outputs {unknown}; it has '
                                 f'{list(spec.MODULE_OUTPUTS[module])}')
        signature = spec.SERVING_SIGNATURE
        if self.encoded and module != spec.FRONTEND:
            if wanted is not None and spec.GRID in wanted:
                raise ValueError(f'{model_name}: the encoded signature has no {spec.GRID}; '
                                 f'make the client with encoded=False for it')
            inputs = encode_inputs(module, inputs)
            signature = spec.ENCODED_SIGNATURE
            wanted = (None if wanted is None else tuple(spec.encoded_key(k) for k in wanted))
        call = self._predict_grpc if self.transport == GRPC else self._predict_rest
        answer, served = self._call(
                lambda where: call(model_name, inputs, where.version, where.label, signature,
                                   wanted),
                model_name, self.where(model_name, version, label))
        if signature == spec.ENCODED_SIGNATURE:
            with _collector_paused():
                answer = decode_outputs(answer)
        return (answer, served) if with_version else answer

    def served_version(self, model_name: str, version: int | str | None = None,
                       label: str | None = None) -> tuple[int, Where]:
        """(the version that answers ``model_name``'s calls, what was asked for), from the
        server's GetModelMetadata, which resolves versions and labels as Predict does; raises
        ServerError (UNAVAILABLE: no server there, NOT_FOUND: no such model or version
        AVAILABLE, INVALID_ARGUMENT: no such label)."""
        def call(where):
            if self.transport == GRPC:
                return self._metadata_grpc(model_name, where), where
            return self._metadata_rest(model_name, where), where

        return self._call(call, model_name, self.where(model_name, version, label))

    def _metadata_grpc(self, model_name, where):
        request = get_model_metadata_pb2.GetModelMetadataRequest(
                model_spec=model_pb2.ModelSpec(name=model_name), metadata_field=['signature_def'])
        if where.version is not None:
            request.model_spec.version.value = where.version
        elif where.label is not None:
            request.model_spec.version_label = where.label
        try:
            response = self._stub.GetModelMetadata(request, timeout=self.timeout)
        except grpc.RpcError as e:
            raise ServerError(e.code(), e.details(), model_name) from None
        return response.model_spec.version.value

    def _metadata_rest(self, model_name, where):
        answer = self._rest(self._rest_path(model_name, where.version, where.label) + '/metadata',
                            None, model_name)
        return int(json.loads(answer)['model_spec']['version'])

    @staticmethod
    def _http_error(e, model_name):
        code = {404: grpc.StatusCode.NOT_FOUND, 400: grpc.StatusCode.INVALID_ARGUMENT,
                503: grpc.StatusCode.UNAVAILABLE}.get(e.code, grpc.StatusCode.UNKNOWN)
        try:
            message = json.load(e).get('error', str(e))
        except (ValueError, AttributeError):
            message = str(e)
        return ServerError(code, message, model_name)

    def _rest_path(self, model_name, version, label):
        path = f'http://{self.address}/v1/models/{model_name}'
        if version is not None:
            path += f'/versions/{int(version)}'
        elif label is not None:
            path += f'/labels/{label}'
        return path

    def _rest(self, path, body, model_name):
        """The answer's bytes to a GET (``body`` None) or a JSON POST; ServerError otherwise."""
        request = urllib.request.Request(path, body, {'Content-Type': 'application/json'}
                                         if body is not None else {})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return response.read()
        except urllib.error.HTTPError as e:
            raise self._http_error(e, model_name) from None
        except (urllib.error.URLError, ConnectionError) as e:
            raise ServerError(grpc.StatusCode.UNAVAILABLE, str(e), model_name) from None

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
            request.inputs[key].CopyFrom(_tensor_proto(value))
        try:
            response = self._stub.Predict(request, timeout=self.timeout)
        except grpc.RpcError as e:
            raise ServerError(e.code(), e.details(), model_name) from None
        return ({key: _from_proto(value) for key, value in response.outputs.items()},
                response.model_spec.version.value)

    def _predict_rest(self, model_name, inputs, version, label,
                      signature=spec.SERVING_SIGNATURE, outputs=None):
        module, _ = spec.module_of(model_name)
        with _collector_paused():
            body = json.dumps({'signature_name': signature,
                               'inputs': {k: _json_input(v) for k, v in inputs.items()}}).encode()
        answer = self._rest(self._rest_path(model_name, version, label) + ':predict', body,
                            model_name)
        with _collector_paused():
            answered = json.loads(answer)['outputs']
            if signature == spec.ENCODED_SIGNATURE:
                keys = spec.encoded_outputs(module)
            else:
                keys = spec.MODULE_OUTPUTS[module]
            if outputs is not None:
                keys = [key for key in keys if key in outputs]
            specs = spec.FRONTEND_OUTPUT_SPECS if module == spec.FRONTEND else spec.OUTPUT_SPECS
            return ({key: _json_output(answered[key], specs.get(spec.decoded_key(key)), key)
                     for key in keys}, None)

    # --- the modules ----------------------------------------------------------------------------

    def tryon(self, category: str, inputs: Mapping[str, np.ndarray],
              outputs: Iterable[str] | None = None, **where: Any
              ) -> dict[str, np.ndarray] | tuple[dict[str, np.ndarray], int | None]:
        """The whole try-on in one call on ``category``'s one-call model (``tryon_<category>``):
        the GMM signature's keys of ``inputs`` in, the chain's outputs out (every stage's but
        GMM's grid; ``outputs`` to ask for fewer). ``where``: ``predict``'s version, label,
        with_version."""
        return self.predict(spec.category_model_name(category),
                            self._module_inputs(spec.CATEGORY_MODEL, inputs), outputs=outputs,
                            **where)

    def _module_inputs(self, module: str, inputs: Mapping[str, np.ndarray]
                       ) -> dict[str, np.ndarray]:
        return {key: inputs[key] for key in spec.MODULE_INPUTS[module]}

    def gmm(self, category: str, inputs: Mapping[str, np.ndarray], **where: Any
            ) -> dict[str, np.ndarray] | tuple[dict[str, np.ndarray], int | None]:
        """``category``'s GMM on the person, parse, keypoints, cloth and cloth mask of ``inputs``
        (other keys are ignored): warped_cloth [B,256,192,3] and warped_mask [B,256,192] uint8,
        theta [B,50] and grid [B,256,192,2] float32. ``where``: ``predict``'s version, label,
        with_version."""
        return self.predict(spec.model_name(spec.GMM, category),
                            self._module_inputs(spec.GMM, inputs), **where)

    def edm(self, category: str, inputs: Mapping[str, np.ndarray], **where: Any
            ) -> dict[str, np.ndarray] | tuple[dict[str, np.ndarray], int | None]:
        """``category``'s EDM on the person, parse, keypoints and cloth of ``inputs`` (other keys
        are ignored): the coarse person [B,256,192,3] and its clothing mask [B,256,192], uint8.
        ``where``: ``predict``'s version, label, with_version."""
        return self.predict(spec.model_name(spec.EDM, category),
                            self._module_inputs(spec.EDM, inputs), **where)

    def rm(self, category: str, inputs: Mapping[str, np.ndarray], **where: Any
           ) -> dict[str, np.ndarray] | tuple[dict[str, np.ndarray], int | None]:
        """``category``'s RM on the warped cloth, coarse person and mask of ``inputs`` (other keys
        are ignored): tryon [B,256,192,3], alpha and tps_mask [B,256,192], uint8. ``where``:
        ``predict``'s version, label, with_version."""
        return self.predict(spec.model_name(spec.RM, category),
                            self._module_inputs(spec.RM, inputs), **where)

    def map(self, function: Callable[[Any], Any], items: Iterable[Any]) -> list[Any]:
        """Applies ``function`` to items with at most ``concurrency`` calls in flight; results
        in order, exceptions returned in place (a batch never stops on one bad item)."""
        def guarded(item):
            try:
                return function(item)
            except Exception as e:  # recorded per item by the caller
                return e

        with concurrent.futures.ThreadPoolExecutor(self.concurrency) as pool:
            return list(pool.map(guarded, items))


