"""The client: whole try-ons through the dev server equal the in-process chain; retries only on
UNAVAILABLE; deadlines; large responses; REST; the canary split."""

import concurrent.futures
import threading
import time

import grpc
import numpy as np
import pytest
from tensorflow_serving.apis import predict_pb2
from tensorflow_serving.apis import prediction_service_pb2_grpc

from everywear_tf import configs
from everywear_tf import spec
from everywear_tf.export import exporter
from everywear_tf.export import warmup
from everywear_tf.inference import chain as chain_lib
from everywear_tf.inference import pipeline
from everywear_tf.models import factory
from everywear_tf.serving import client as client_lib
from everywear_tf.serving import config as serving_config
from everywear_tf.serving import dev_server
from everywear_tf.serving import signature_inputs

from tests.models.randomize import randomize

# Servers, subprocesses, exports or training: not in the fast loop (pytest -m 'not slow').
pytestmark = pytest.mark.slow

CATEGORY = spec.MEN_TSHIRTS


@pytest.fixture(scope='module')
def served(tmp_path_factory, lite_exports):
    base = tmp_path_factory.mktemp('exports')
    models = {}
    for module in spec.MODULES:  # the weights of tests/export/exporter_test.py, exported once
        model = factory.build(configs.get(module, configs.LITE))
        randomize(model, seed=0)
        models[module] = model
        lite_exports(base, module, CATEGORY, seed=0)
    exporter.export_category(CATEGORY, models[spec.GMM], models[spec.EDM], models[spec.RM], base)
    config = serving_config.serving_config(
            str(base), [spec.model_name(m, CATEGORY) for m in spec.MODULES]
            + [spec.category_model_name(CATEGORY)])
    server = dev_server.DevServer(config, file_system_poll_seconds=0).start()
    yield server, models
    server.stop()


def test_tryon_through_the_server_equals_in_process(served):
    server, models = served
    inputs = warmup.realistic_inputs(spec.GMM, batch=2, seed=3)
    backend = pipeline.ServerBackend(f'127.0.0.1:{server.grpc_port}')
    try:
        remote = backend(CATEGORY, inputs)
    finally:
        backend.close()
    local = chain_lib.Chain.from_models(CATEGORY, models[spec.GMM], models[spec.EDM],
                                        models[spec.RM])(inputs)
    # Only what the chain uses is asked for: GMM's float32 grid stays on the server.
    assert sorted(remote) == sorted(set(local) - {spec.GRID})
    for key in remote:
        np.testing.assert_array_equal(remote[key], local[key], err_msg=key)


def test_the_one_call_model_through_the_server_equals_the_three_calls(served):
    server, _ = served
    inputs = warmup.realistic_inputs(spec.GMM, batch=2, seed=3)
    address = f'127.0.0.1:{server.grpc_port}'
    three, one = pipeline.ServerBackend(address), pipeline.ServerBackend(address, one_call=True)
    try:
        expected, got = three(CATEGORY, inputs), one(CATEGORY, inputs)
        with client_lib.Client(address, encoded=True) as encoded:
            files = encoded.tryon(CATEGORY, inputs)
    finally:
        three.close()
        one.close()
    assert sorted(got) == sorted(expected) == sorted(spec.MODULE_OUTPUTS[spec.CATEGORY_MODEL])
    for key in expected:
        np.testing.assert_array_equal(got[key], expected[key], err_msg=key)
        np.testing.assert_array_equal(files[key], expected[key], err_msg=key)


def test_encoded_calls_over_grpc_give_the_same_outputs(served):
    server, _ = served
    inputs = warmup.realistic_inputs(spec.GMM, batch=2, seed=3)
    name = spec.model_name(spec.GMM, CATEGORY)
    with client_lib.Client(f'127.0.0.1:{server.grpc_port}') as plain, client_lib.Client(
            f'127.0.0.1:{server.grpc_port}', encoded=True) as encoded:
        expected = plain.predict(name, inputs, outputs=[spec.WARPED_CLOTH, spec.THETA])
        got = encoded.predict(name, inputs)
        with pytest.raises(ValueError, match='no grid'):
            encoded.predict(name, inputs, outputs=[spec.GRID])
    assert sorted(expected) == [spec.THETA, spec.WARPED_CLOTH]  # the output filter
    assert sorted(got) == sorted(set(spec.MODULE_OUTPUTS[spec.GMM]) - {spec.GRID})
    for key in expected:
        np.testing.assert_array_equal(got[key], expected[key], err_msg=key)


def test_rest_transport_gives_the_same_outputs(served):
    server, _ = served
    inputs = warmup.realistic_inputs(spec.RM, batch=1)
    name = spec.model_name(spec.RM, CATEGORY)
    with client_lib.Client(f'127.0.0.1:{server.grpc_port}') as grpc_client:
        expected = grpc_client.predict(name, inputs)
    rest = client_lib.Client(f'127.0.0.1:{server.rest_port}', transport=client_lib.REST)
    got = rest.predict(name, inputs)
    for key in expected:
        np.testing.assert_array_equal(got[key], expected[key])
    with pytest.raises(client_lib.ServerError) as raised:
        rest.predict(name, inputs, version=5)
    assert raised.value.code == grpc.StatusCode.NOT_FOUND


def test_a_six_megabyte_response(served):
    server, _ = served
    inputs = warmup.realistic_inputs(spec.GMM, batch=16)
    with client_lib.Client(f'127.0.0.1:{server.grpc_port}', timeout=120) as client:
        outputs = client.gmm(CATEGORY, inputs)
    assert outputs[spec.GRID].nbytes + outputs[spec.WARPED_CLOTH].nbytes > 6_000_000
    assert outputs[spec.GRID].shape == (16, 256, 192, 2)


def test_inputs_are_checked_before_sending(served):
    server, _ = served
    inputs = warmup.realistic_inputs(spec.RM)
    inputs[spec.MASK] = inputs[spec.MASK].astype(np.float32)
    with client_lib.Client(f'127.0.0.1:{server.grpc_port}') as client:
        with pytest.raises(signature_inputs.SignatureInputError, match="input 'mask'"):
            client.rm(CATEGORY, inputs)


class _Flaky(prediction_service_pb2_grpc.PredictionServiceServicer):
    """Fails with ``code`` ``failures`` times, then answers; or sleeps ``delay`` first."""

    def __init__(self, code=None, failures=0, delay=0.0):
        self.code, self.failures, self.delay = code, failures, delay
        self.calls = 0
        self.lock = threading.Lock()

    def Predict(self, request, context):  # noqa: N802
        with self.lock:
            self.calls += 1
            calls = self.calls
        time.sleep(self.delay)
        if calls <= self.failures:
            context.abort(self.code, 'try again' if self.code ==
                          grpc.StatusCode.UNAVAILABLE else 'bad request')
        response = predict_pb2.PredictResponse()
        response.model_spec.name = request.model_spec.name
        return response


def _fake(servicer):
    server = grpc.server(concurrent.futures.ThreadPoolExecutor(4))
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port('127.0.0.1:0')
    server.start()
    return server, f'127.0.0.1:{port}'


def test_retries_only_unavailable():
    inputs = warmup.realistic_inputs(spec.RM)
    name = spec.model_name(spec.RM, CATEGORY)
    flaky = _Flaky(grpc.StatusCode.UNAVAILABLE, failures=2)
    server, address = _fake(flaky)
    with client_lib.Client(address, retries=3, backoff=0.01) as client:
        assert client.predict(name, inputs) == {}
    assert flaky.calls == 3
    server.stop(None)
    invalid = _Flaky(grpc.StatusCode.INVALID_ARGUMENT, failures=5)
    server, address = _fake(invalid)
    with client_lib.Client(address, retries=3, backoff=0.01) as client:
        with pytest.raises(client_lib.ServerError) as raised:
            client.predict(name, inputs)
    assert raised.value.code == grpc.StatusCode.INVALID_ARGUMENT and invalid.calls == 1
    server.stop(None)
    down = _Flaky(grpc.StatusCode.UNAVAILABLE, failures=10)
    server, address = _fake(down)
    with client_lib.Client(address, retries=2, backoff=0.01) as client:
        with pytest.raises(client_lib.ServerError, match='UNAVAILABLE'):
            client.predict(name, inputs)
    assert down.calls == 3
    server.stop(None)


def test_deadline_is_respected():
    slow = _Flaky(delay=3.0)
    server, address = _fake(slow)
    started = time.monotonic()
    with client_lib.Client(address, timeout=0.5, retries=0) as client:
        with pytest.raises(client_lib.ServerError) as raised:
            client.predict(spec.model_name(spec.RM, CATEGORY), warmup.realistic_inputs(spec.RM))
    assert raised.value.code == grpc.StatusCode.DEADLINE_EXCEEDED
    assert time.monotonic() - started < 2.0
    server.stop(None)


def test_canary_split_and_batch_map():
    client = client_lib.Client('127.0.0.1:1', canary_percent=30, seed=7)
    routes = [client.route() for _ in range(2000)]
    share = routes.count(spec.CANARY) / len(routes)
    assert 0.27 < share < 0.33 and set(routes) == {spec.CANARY, spec.STABLE}
    assert client_lib.Client('127.0.0.1:1').route() is None
    results = client.map(lambda x: 1 / x, [1, 0, 2])
    assert results[0] == 1 and isinstance(results[1], ZeroDivisionError) and results[2] == 0.5
    with pytest.raises(ValueError):
        client_lib.Client(canary_percent=150)


class _Unlabelled(prediction_service_pb2_grpc.PredictionServiceServicer):
    """A server whose config defines no labels: a labelled call gets TF Serving 2.15's answer
    (ServerCore::GetModelVersionForLabel), an unlabelled one an empty response."""

    def __init__(self):
        self.labels = []  # the label of every call, '' for none

    def Predict(self, request, context):  # noqa: N802
        label = request.model_spec.version_label
        self.labels.append(label)
        if label:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                          f'Unrecognized servable version label: {label}')
        return predict_pb2.PredictResponse()


def test_the_default_label_falls_back_once_and_is_tried_again_later():
    inputs = warmup.realistic_inputs(spec.RM)
    name = spec.model_name(spec.RM, CATEGORY)
    servicer = _Unlabelled()
    server, address = _fake(servicer)
    try:
        with client_lib.Client(address, label_recheck_seconds=3600) as client:
            assert client.predict(name, inputs) == {} and client.predict(name, inputs) == {}
            # stable once, refused; then without a label, and no label for the next call.
            assert servicer.labels == [spec.STABLE, '', '']
            assert client.where(name) == client_lib.Where()
            assert client.where('other') == client_lib.Where(label=spec.STABLE, fallback=True)
            with pytest.raises(client_lib.ServerError, match='Unrecognized servable version '
                                                             'label: canary'):
                client.predict(name, inputs, label=spec.CANARY)  # asked for: no fallback
        servicer.labels.clear()
        with client_lib.Client(address, label_recheck_seconds=0) as client:
            client.predict(name, inputs)
            client.predict(name, inputs)
        assert servicer.labels == [spec.STABLE, '', spec.STABLE, '']
        servicer.labels.clear()
        with client_lib.Client(address, label_fallback=False) as client:
            with pytest.raises(client_lib.ServerError) as raised:
                client.predict(name, inputs)
        assert raised.value.unknown_label and servicer.labels == [spec.STABLE]
    finally:
        server.stop(None)


def test_encoded_calls_over_rest_give_the_same_outputs(served):
    # PNG files travel as {"b64": ...} both ways (outputs whose alias ends in _bytes), as TF
    # Serving's json_tensor.cc writes them.
    server, _ = served
    inputs = warmup.realistic_inputs(spec.GMM, batch=2, seed=4)
    name = spec.model_name(spec.GMM, CATEGORY)
    with client_lib.Client(f'127.0.0.1:{server.grpc_port}') as plain:
        expected = plain.predict(name, inputs, outputs=[spec.WARPED_CLOTH, spec.THETA])
    rest = client_lib.Client(f'127.0.0.1:{server.rest_port}', transport=client_lib.REST,
                             encoded=True)
    got = rest.predict(name, inputs)
    assert spec.GRID not in got
    for key in expected:
        np.testing.assert_array_equal(got[key], expected[key], err_msg=key)
