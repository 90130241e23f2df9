"""serving/check against an in-process gRPC PredictionService that runs exported SavedModels."""

import concurrent.futures
import os
import subprocess
import sys

import grpc
import pytest
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2
from tensorflow_serving.apis import prediction_service_pb2_grpc

from everywear_tf import configs
from everywear_tf import spec
from everywear_tf.export import exporter
from everywear_tf.models import factory
from everywear_tf.serving import check

# Servers, subprocesses, exports or training: not in the fast loop (pytest -m 'not slow').
pytestmark = pytest.mark.slow

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class _Predictions(prediction_service_pb2_grpc.PredictionServiceServicer):
    """Just enough of TF Serving's Predict: latest version, NOT_FOUND for unknown models."""

    def __init__(self, models):
        self.models = models

    def Predict(self, request, context):  # noqa: N802
        name = request.model_spec.name
        if name not in self.models:
            context.abort(grpc.StatusCode.NOT_FOUND,
                          f'Servable not found for request: Latest({name})')
        signature = self.models[name].signatures[request.model_spec.signature_name]
        outputs = signature(**{k: tf.constant(tf.make_ndarray(v))
                               for k, v in request.inputs.items()})
        response = predict_pb2.PredictResponse()
        response.model_spec.name = name
        response.model_spec.version.value = 1
        for key, value in outputs.items():
            response.outputs[key].CopyFrom(tf.make_tensor_proto(value.numpy()))
        return response


@pytest.fixture(scope='module')
def server(tmp_path_factory):
    base = tmp_path_factory.mktemp('exported')
    models = {}
    for module in spec.MODULES:
        name = spec.model_name(module, spec.MEN_PANTS)
        path = exporter.export(factory.build(configs.get(module, configs.LITE)), base, name)
        models[name] = tf.saved_model.load(path)
    grpc_server = grpc.server(concurrent.futures.ThreadPoolExecutor(2), options=[
            ('grpc.max_send_message_length', check.MAX_MESSAGE_BYTES)])
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(_Predictions(models),
                                                                        grpc_server)
    port = grpc_server.add_insecure_port('127.0.0.1:0')
    grpc_server.start()
    yield f'127.0.0.1:{port}'
    grpc_server.stop(None)


def test_every_model_answers(server):
    names = [spec.model_name(m, spec.MEN_PANTS) for m in spec.MODULES]
    results = check.check(server, names)
    assert all(r['ok'] for r in results), results
    gmm = results[0]['outputs']
    assert gmm[spec.WARPED_CLOTH] == ('uint8', (1, 256, 192, 3))
    assert gmm[spec.THETA] == ('float32', (1, 50))
    assert 'ok    gmm_men_pants v1' in check.report(results)


def test_binary_reports_failures(server):
    result = subprocess.run([sys.executable, os.path.join(ROOT, 'serving', 'check.py'),
                             f'--server={server}', '--models=rm_men_pants,rm_men_long'],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 1
    assert 'ok    rm_men_pants' in result.stdout
    assert 'FAIL  rm_men_long: NOT_FOUND: Servable not found' in result.stdout


def test_by_default_every_served_model_is_checked(server):
    results = check.check(server)  # the men_pants models only are served here
    assert [r['model'] for r in results] == list(spec.served_model_names())
    assert results[-1]['model'] == spec.FRONTEND_MODEL
    ok = {r['model'] for r in results if r['ok']}
    assert ok == {spec.model_name(m, spec.MEN_PANTS) for m in spec.MODULES}
    assert 'FAIL  frontend: NOT_FOUND: Servable not found' in check.report(results)
