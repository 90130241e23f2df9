"""The dev server over real gRPC and HTTP on localhost: TF Serving's semantics and errors."""

import json
import shutil
import time
import urllib.error
import urllib.request

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import get_model_metadata_pb2
from tensorflow_serving.apis import get_model_status_pb2
from tensorflow_serving.apis import model_management_pb2
from tensorflow_serving.apis import model_service_pb2_grpc
from tensorflow_serving.apis import prediction_service_pb2_grpc

from everywear_tf import spec
from everywear_tf.export import warmup
from everywear_tf.serving import config as serving_config
from everywear_tf.serving import dev_server

# Servers, subprocesses, exports or training: not in the fast loop (pytest -m 'not slow').
pytestmark = pytest.mark.slow

RM = spec.model_name(spec.RM, spec.MEN_PANTS)


@pytest.fixture(scope='module')
def exports(tmp_path_factory, lite_exports):
    """One lite export per module (rm with two versions of different weights)."""
    base = tmp_path_factory.mktemp('exports')
    for module in spec.MODULES:
        lite_exports(base, module, spec.MEN_PANTS, seed=1)
    lite_exports(base, spec.RM, spec.MEN_PANTS, seed=2, version=2)
    return base


def _tree(exports, tmp_path, versions=(1, 2)):
    """A private copy of the rm model's versions (tests add and remove directories)."""
    root = tmp_path / 'models'
    for number in versions:
        shutil.copytree(exports / RM / str(number), root / RM / str(number))
    return root


def _server(root, versions=None, labels=None, names=(RM,), **kwargs):
    config = serving_config.serving_config(str(root), list(names), versions, labels)
    return dev_server.DevServer(config, file_system_poll_seconds=0.2, **kwargs)


def _stubs(server):
    channel = grpc.insecure_channel(f'127.0.0.1:{server.grpc_port}', options=[
            ('grpc.max_receive_message_length', 64 << 20)])
    return (prediction_service_pb2_grpc.PredictionServiceStub(channel),
            model_service_pb2_grpc.ModelServiceStub(channel))


def _request(name=RM, version=None, label=None, module=spec.RM, **overrides):
    inputs = {**warmup.realistic_inputs(module, batch=2), **overrides}
    return warmup.predict_request(name, inputs, version=version, label=label)


def _versions(model_service, name=RM):
    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = name
    response = model_service.GetModelStatus(request)
    return {s.version: get_model_status_pb2.ModelVersionStatus.State.Name(s.state)
            for s in response.model_version_status}


def _code(call):
    with pytest.raises(grpc.RpcError) as raised:
        call()
    return raised.value.code(), raised.value.details()


def test_predict_each_module_matches_the_saved_model(exports, tmp_path):
    names = [spec.model_name(m, spec.MEN_PANTS) for m in spec.MODULES]
    with _server(exports, names=names) as server:
        predict, _ = _stubs(server)
        for module, name in zip(spec.MODULES, names):
            server.wait_until_available(name)
            request = _request(name, module=module)
            response = predict.Predict(request, timeout=60)
            assert response.model_spec.name == name
            assert response.model_spec.version.value == (2 if module == spec.RM else 1)
            number = response.model_spec.version.value
            direct = tf.saved_model.load(str(exports / name / str(number))).signatures[
                    spec.SERVING_SIGNATURE](**{k: tf.constant(tf.make_ndarray(v))
                                              for k, v in request.inputs.items()})
            assert sorted(response.outputs) == sorted(spec.MODULE_OUTPUTS[module])
            for key, value in direct.items():
                np.testing.assert_array_equal(tf.make_ndarray(response.outputs[key]),
                                              value.numpy())


def test_metadata_lists_the_signature(exports):
    with _server(exports) as server:
        predict, _ = _stubs(server)
        request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=['signature_def'])
        request.model_spec.name = RM
        response = predict.GetModelMetadata(request)
        signatures = get_model_metadata_pb2.SignatureDefMap()
        response.metadata['signature_def'].Unpack(signatures)
        inputs = signatures.signature_def[spec.SERVING_SIGNATURE].inputs
        assert sorted(inputs) == sorted(spec.MODULE_INPUTS[spec.RM])
        assert inputs[spec.MASK].dtype == tf.uint8.as_datatype_enum


@pytest.mark.parametrize('versions,available', [(None, [2]), (2, [1, 2]), ('all', [1, 2]),
                                                ([1], [1])])
def test_version_policies(exports, tmp_path, versions, available):
    with _server(_tree(exports, tmp_path), versions) as server:
        _, models = _stubs(server)
        assert _versions(models) == {v: 'AVAILABLE' for v in available}


def test_labels_resolve_and_must_point_at_available_versions(exports, tmp_path):
    root = _tree(exports, tmp_path)
    with _server(root, 'all', {'stable': 1}, allow_labels_for_unavailable=True) as server:
        predict, models = _stubs(server)
        assert predict.Predict(_request(label='stable')).model_spec.version.value == 1
        code, details = _code(lambda: predict.Predict(_request(label='canary')))
        assert (code, details) == (grpc.StatusCode.INVALID_ARGUMENT,
                                   'Unrecognized servable version label: canary')
        moved = serving_config.serving_config(str(root), [RM], 'all', {'stable': 7})
        code, details = _code(lambda: models.HandleReloadConfigRequest(
                model_management_pb2.ReloadConfigRequest(config=moved)))
        assert code == grpc.StatusCode.FAILED_PRECONDITION
        assert 'Request to assign label to version 7 of model' in details
        assert predict.Predict(_request(label='stable')).model_spec.version.value == 1
        both = serving_config.serving_config(str(root), [RM], 'all', {'stable': 1, 'canary': 2})
        models.HandleReloadConfigRequest(model_management_pb2.ReloadConfigRequest(config=both))
        assert predict.Predict(_request(label='canary')).model_spec.version.value == 2


def test_unknown_model_version_and_bad_inputs(exports):
    with _server(exports) as server:
        predict, models = _stubs(server)
        assert _code(lambda: predict.Predict(_request('nope'))) == (
                grpc.StatusCode.NOT_FOUND, 'Servable not found for request: Latest(nope)')
        assert _code(lambda: predict.Predict(_request(version=9))) == (
                grpc.StatusCode.NOT_FOUND, f'Servable not found for request: Specific({RM}, 9)')
        bad = _request(mask=np.zeros((2, 256, 192), np.float32))
        code, details = _code(lambda: predict.Predict(bad))
        assert code == grpc.StatusCode.INVALID_ARGUMENT and 'to be uint8 but float' in details
        request = _request()
        request.model_spec.signature_name = 'other'
        assert _code(lambda: predict.Predict(request)) == (
                grpc.StatusCode.FAILED_PRECONDITION, 'Serving signature key "other" not found.')
        status = get_model_status_pb2.GetModelStatusRequest()
        status.model_spec.name = 'nope'
        assert _code(lambda: models.GetModelStatus(status)) == (
                grpc.StatusCode.NOT_FOUND, 'Could not find any versions of model nope')


def test_versions_appear_and_disappear_while_serving(exports, tmp_path):
    root = _tree(exports, tmp_path, versions=(1,))
    with _server(root) as server:
        predict, models = _stubs(server)
        assert _versions(models) == {1: 'AVAILABLE'}
        shutil.copytree(exports / RM / '2', root / RM / '2')
        deadline = time.monotonic() + 60
        while _versions(models) != {2: 'AVAILABLE', 1: 'END'} and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _versions(models) == {2: 'AVAILABLE', 1: 'END'}  # latest 1: the old one unloaded
        assert predict.Predict(_request()).model_spec.version.value == 2
        shutil.rmtree(root / RM / '2')
        shutil.copytree(exports / RM / '1', root / RM / '1', dirs_exist_ok=True)
        while _versions(models) != {1: 'AVAILABLE', 2: 'END'} and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _versions(models) == {1: 'AVAILABLE', 2: 'END'}


def test_a_bad_config_is_rejected_and_the_old_one_kept(exports):
    with _server(exports) as server:
        predict, models = _stubs(server)
        bad = serving_config.serving_config('/m', [RM])
        bad.model_config_list.config[0].base_path = 'relative/path'
        code, details = _code(lambda: models.HandleReloadConfigRequest(
                model_management_pb2.ReloadConfigRequest(config=bad)))
        assert code == grpc.StatusCode.INVALID_ARGUMENT and 'absolute' in details
        assert predict.Predict(_request()).model_spec.version.value == 2


def test_rest_status_metadata_and_both_predict_formats(exports):
    with _server(exports) as server:
        base = f'http://127.0.0.1:{server.rest_port}/v1/models/{RM}'
        status = json.load(urllib.request.urlopen(base))
        assert status['model_version_status'][0]['state'] == 'AVAILABLE'
        metadata = json.load(urllib.request.urlopen(base + '/versions/2/metadata'))
        assert metadata['model_spec']['version'] == '2'
        inputs = warmup.realistic_inputs(spec.RM, batch=1)
        rows = {'instances': [{k: v[0].tolist() for k, v in inputs.items()}]}
        columns = {'inputs': {k: v.tolist() for k, v in inputs.items()}}
        got = []
        for body in (rows, columns):
            request = urllib.request.Request(base + ':predict', json.dumps(body).encode())
            got.append(json.load(urllib.request.urlopen(request)))
        assert np.array_equal(np.asarray(got[0]['predictions'][0][spec.TRYON]),
                              np.asarray(got[1]['outputs'][spec.TRYON])[0])
        with pytest.raises(urllib.error.HTTPError) as raised:
            urllib.request.urlopen(f'http://127.0.0.1:{server.rest_port}/v1/models/nope')
        assert raised.value.code == 404
        assert 'Could not find any versions' in json.load(raised.value)['error']


def test_a_bad_warmup_file_fails_that_version(exports, tmp_path):
    root = _tree(exports, tmp_path, versions=(1,))
    broken = warmup.predict_request(RM, {'mask': np.zeros((1, 2), np.uint8)})
    from tensorflow_serving.apis import prediction_log_pb2
    path = root / RM / '1' / warmup.WARMUP_DIRECTORY / warmup.WARMUP_FILE
    with tf.io.TFRecordWriter(str(path)) as writer:
        writer.write(prediction_log_pb2.PredictionLog(
                predict_log=prediction_log_pb2.PredictLog(request=broken)).SerializeToString())
    with pytest.raises(dev_server.ServingError, match='did not become available'):
        _server(root).start()  # TF Serving does not start either
    served = dev_server.Manager()
    with pytest.raises(dev_server.ServingError):
        served.reload(serving_config.serving_config(str(root), [RM]))
    assert [(n, s.name) for n, s, _ in served.status(RM)] == [(1, 'END')]


def test_oversized_requests_are_resource_exhausted(exports):
    with _server(exports, max_message_bytes=100_000) as server:
        predict, _ = _stubs(server)
        assert _code(lambda: predict.Predict(_request()))[0] == grpc.StatusCode.RESOURCE_EXHAUSTED
