"""The ways of running a module that the benchmarks compare, each as ``run(module, inputs)``.

- ``keras``: the in-memory network behind its serving function (what ``tryon.Tryon`` runs);
- ``keras_xla``: the same function compiled with XLA (``jit_compile=True``);
- ``saved_model``: the exported SavedModel loaded in this process, its serving signature;
- ``saved_model_xla``: that signature called from an XLA-compiled function;
- ``grpc`` / ``rest``: the dev model server through the project's client.

Every runner takes and returns numpy arrays keyed like the signatures, so one ``tryon.chain``
makes the whole try-on over any of them.
"""

import json
import os
import urllib.request

import grpc
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2
from tensorflow_serving.config import model_server_config_pb2

from everywear_tf import spec
from everywear_tf.export import exporter
from everywear_tf.export import modules
from everywear_tf.export import warmup
from everywear_tf.serving import client as client_lib
from everywear_tf.serving import config as serving_config
from everywear_tf.serving import dev_server

KERAS = 'keras'
KERAS_XLA = 'keras_xla'
SAVED_MODEL = 'saved_model'
SAVED_MODEL_XLA = 'saved_model_xla'
GRPC = 'grpc'
REST = 'rest'
IN_PROCESS = (KERAS, KERAS_XLA, SAVED_MODEL, SAVED_MODEL_XLA)
SERVED = (GRPC, REST)
ALL = IN_PROCESS + SERVED


def _numpy(outputs):
    return {key: value.numpy() for key, value in outputs.items()}


def keras_runner(models, jit_compile=False):
    """``models``: {module: network}. The serving functions, optionally XLA-compiled."""
    functions = {}
    for module, model in models.items():
        serving = modules.ServingModule(module, model).serving_default
        functions[module] = (tf.function(serving.python_function, jit_compile=True,
                                         input_signature=modules.input_signature(module))
                             if jit_compile else serving)

    def run(module, inputs):
        return _numpy(functions[module](*[tf.constant(inputs[key])
                                          for key in spec.MODULE_INPUTS[module]]))

    run.functions = functions
    return run


def saved_model_runner(version_dirs, jit_compile=False):
    """``version_dirs``: {module: exported version directory}, loaded here."""
    loaded = {module: tf.saved_model.load(path) for module, path in version_dirs.items()}
    functions = {}
    for module, saved in loaded.items():
        signature = saved.signatures[spec.SERVING_SIGNATURE]
        functions[module] = (tf.function(lambda signature=signature, **kw: signature(**kw),
                                         jit_compile=True) if jit_compile else signature)

    def run(module, inputs):
        return _numpy(functions[module](**{key: tf.constant(value)
                                           for key, value in inputs.items()}))

    run.loaded = loaded  # the functions need their SavedModel alive
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
