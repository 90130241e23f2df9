"""The ways of running a module that the benchmarks compare, each as ``run(module, inputs)``.

- ``keras``: the in-memory network behind its serving function (what ``chain.Chain`` runs);
- ``keras_xla``: the same function compiled with XLA (``jit_compile=True``);
- ``saved_model``: the exported SavedModel loaded in this process, its serving signature;
- ``saved_model_xla``: that signature called from an XLA-compiled function;
- ``grpc`` / ``rest``: the dev model server through the project's client.

Every runner takes and returns numpy arrays keyed like the signatures, so one
``chain.run_chain`` makes the whole try-on over any of them.
"""

import concurrent.futures
import json
import os
import urllib.request

import grpc
import tensorflow as tf
from tensorflow_serving.apis import model_pb2
from tensorflow_serving.apis import predict_pb2
from tensorflow_serving.apis import prediction_service_pb2_grpc
from tensorflow_serving.config import model_server_config_pb2

from everywear_tf import spec
from everywear_tf.export import exporter
from everywear_tf.export import modules
from everywear_tf.export import warmup
from everywear_tf.serving import client as client_lib
from everywear_tf.serving import config as serving_config
from everywear_tf.serving import dev_server
from everywear_tf.serving import manager as manager_lib

KERAS = 'keras'
KERAS_XLA = 'keras_xla'
SAVED_MODEL = 'saved_model'
SAVED_MODEL_XLA = 'saved_model_xla'
GRPC = 'grpc'
REST = 'rest'
IN_PROCESS = (KERAS, KERAS_XLA, SAVED_MODEL, SAVED_MODEL_XLA)
SERVED = (GRPC, REST)
XLA = (KERAS_XLA, SAVED_MODEL_XLA)  # compiled per input shape: each batch size compiles anew
ALL = IN_PROCESS + SERVED


def _numpy(outputs):
    return {key: value.numpy() for key, value in outputs.items()}


def function_runner(functions):
    """``functions``: {module: a function of the module's signature inputs, positional in
    signature order, returning its outputs as tensors}. Numpy in, numpy out."""
    def run(module, inputs):
        return _numpy(functions[module](*[tf.constant(inputs[key])
                                          for key in spec.MODULE_INPUTS[module]]))

    run.functions = functions
    return run


def keras_runner(models, jit_compile=False):
    """``models``: {module: network}. The serving functions, optionally XLA-compiled."""
    functions = {}
    for module, model in models.items():
        serving = modules.ServingModule(module, model).serving_default
        functions[module] = (tf.function(serving.python_function, jit_compile=True,
                                         input_signature=modules.input_signature(module))
                             if jit_compile else serving)
    return function_runner(functions)


def load_saved_models(version_dirs):
    """{module: the SavedModel of each exported version directory, loaded here}."""
    return {module: tf.saved_model.load(path) for module, path in version_dirs.items()}


def saved_model_runner(saved_models, jit_compile=False):
    """``saved_models``: {module: a loaded SavedModel} (``load_saved_models``, or the dev
    server's own, ``served_saved_model``); their serving signatures, optionally called from an
    XLA-compiled function."""
    functions = {}
    for module, saved in saved_models.items():
        signature = saved.signatures[spec.SERVING_SIGNATURE]
        functions[module] = (tf.function(lambda signature=signature, **kw: signature(**kw),
                                         jit_compile=True) if jit_compile else signature)

    def run(module, inputs):
        return _numpy(functions[module](**{key: tf.constant(value)
                                           for key, value in inputs.items()}))

    run.loaded = saved_models  # the functions need their SavedModel alive
    return run


def client_runner(client, category, version=None):
    """Modules of ``category`` through a ``serving.client.Client`` (gRPC or REST)."""
    def run(module, inputs):
        return client.predict(spec.model_name(module, category), inputs, version=version)

    return run


def export_all(models_by_category, base_dir, version=1, precision='float32'):
    """Exports {category: {module: network}} under ``base_dir``; {category: {module: dir}}."""
    return {category: {module: exporter.export(model, base_dir, spec.model_name(module, category),
                                               version, overwrite=True, precision=precision)
                       for module, model in models.items()}
            for category, models in models_by_category.items()}


def start_server(base_dir, versions, labels=None):
    """The dev model server on free ports over ``base_dir``; ``versions``: {model name: [the
    version numbers to serve]}, ``labels``: {model name: {label: version}}."""
    labels = labels or {}
    config = model_server_config_pb2.ModelServerConfig()
    for name, numbers in versions.items():
        config.model_config_list.config.append(serving_config.model_config(
                name, os.path.join(os.path.abspath(base_dir), name), list(numbers),
                labels.get(name)))
    server = dev_server.DevServer(config, file_system_poll_seconds=0,
                                  allow_labels_for_unavailable=bool(labels)).start()
    for name, numbers in versions.items():
        for number in numbers:
            server.wait_until_available(name, number, timeout=600)
    return server


def clients(server):
    """{'grpc': Client, 'rest': Client} for a started dev server."""
    return {GRPC: client_lib.Client(f'127.0.0.1:{server.grpc_port}', timeout=300),
            REST: client_lib.Client(f'127.0.0.1:{server.rest_port}', transport=client_lib.REST,
                                    timeout=300)}


def served_saved_model(server, model_name, version):
    """The SavedModel a started dev server loaded for ``model_name`` version ``version``."""
    model_spec = model_pb2.ModelSpec(name=model_name, signature_name=spec.SERVING_SIGNATURE)
    model_spec.version.value = int(version)
    _, saved_model = server.manager.resolve(model_spec)
    return saved_model


def served_model(server, model_name, version):
    """What a started dev server itself runs for ``model_name`` version ``version``: its
    manager's ``predict`` on the SavedModel it loaded, without transport. ``run(inputs)`` →
    outputs, numpy in and out."""
    saved_model = served_saved_model(server, model_name, version)

    def run(inputs):
        return manager_lib.predict(saved_model, spec.SERVING_SIGNATURE, inputs)

    return run


def grpc_server(servicer):
    """A gRPC server on a free local port with ``servicer`` as its PredictionService (e.g. a
    baseline's, over a dev server's manager); returns (grpc.Server, address). Stop it with
    ``server.stop(None)``."""
    server = grpc.server(concurrent.futures.ThreadPoolExecutor(8), options=[
            ('grpc.max_receive_message_length', client_lib.MAX_MESSAGE_BYTES),
            ('grpc.max_send_message_length', client_lib.MAX_MESSAGE_BYTES)])
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port('127.0.0.1:0')
    server.start()
    return server, f'127.0.0.1:{port}'


def payload_bytes(server, model_name, inputs):
    """Bytes on the wire of one Predict, both ways: gRPC messages and REST JSON bodies.

    gRPC: the PredictRequest as the client builds it (tensor_content) and the serialized
    response as the server sends it (typed fields, as TF Serving 2.15.1). REST: the columnar
    request body as the client writes it and the response body.
    """
    request = warmup.predict_request(model_name, inputs)
    with grpc.insecure_channel(f'127.0.0.1:{server.grpc_port}', options=[
            ('grpc.max_receive_message_length', client_lib.MAX_MESSAGE_BYTES),
            ('grpc.max_send_message_length', client_lib.MAX_MESSAGE_BYTES)]) as channel:
        raw = channel.unary_unary('/tensorflow.serving.PredictionService/Predict')
        response = raw(request.SerializeToString(), timeout=300)
    predict_pb2.PredictResponse.FromString(response)  # a real answer, not an error body
    body = json.dumps({'signature_name': spec.SERVING_SIGNATURE,
                       'inputs': {k: v.tolist() for k, v in inputs.items()}}).encode()
    http = urllib.request.Request(
            f'http://127.0.0.1:{server.rest_port}/v1/models/{model_name}:predict', body,
            {'Content-Type': 'application/json'})
    with urllib.request.urlopen(http, timeout=300) as answer:
        rest_response = answer.read()
    return {'grpc_request': len(request.SerializeToString()), 'grpc_response': len(response),
            'rest_request': len(body), 'rest_response': len(rest_response)}
