"""TF Serving's behaviour, checked against the dev server and against tensorflow_model_server.

Every expectation here is taken from TF Serving's own source at tag 2.15.1 (the file is named in
each test), not from the dev server. ``TestDevServer`` runs every check against
``everywear_tf.serving.dev_server``; ``TestTensorflowModelServer`` runs the same checks against the
real binary when ``tensorflow_model_server`` is on PATH (tier 3).

Where the dev server does not behave like TF Serving yet, the check is marked with ``@diverges``:
for the dev server only it is a strict xfail that names the difference, so a fix turns it into an
XPASS failure asking for the mark to go. The real server runs it as an ordinary test.
"""

import contextlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
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
from tensorflow_serving.apis import prediction_log_pb2
from tensorflow_serving.apis import prediction_service_pb2_grpc
from tensorflow_serving.config import model_server_config_pb2

from everywear_tf import fileio
from everywear_tf import spec
from everywear_tf.export import warmup
from everywear_tf.serving import config as serving_config
from everywear_tf.serving import dev_server
from everywear_tf.serving import manager

# Servers, subprocesses, exports or training: not in the fast loop (pytest -m 'not slow').
pytestmark = pytest.mark.slow

RM = spec.model_name(spec.RM, spec.MEN_PANTS)
OTHER = spec.model_name(spec.RM, spec.MEN_TSHIRTS)  # a second model: a copy of RM's versions
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TFS_BINARY = shutil.which('tensorflow_model_server')
_State = get_model_status_pb2.ModelVersionStatus.State
_NOT_AVAILABLE = (f'Request to assign label to version {{}} of model {RM}, which is not currently '
                  'available for inference')


class StartupFailedError(Exception):
    """The server refused to start (TF Serving exits; the dev server's start() raises)."""


def diverges(reason, raises=AssertionError):
    """Marks a check the dev server fails today (strict xfail for the dev server only)."""

    def mark(function):
        function.dev_divergence = (reason, raises)
        return function

    return mark


# --- exports and trees ---------------------------------------------------------------------------

@pytest.fixture(scope='module')
def exports(tmp_path_factory, lite_exports):
    """RM (lite, random weights) as versions 1 and 2 with different weights, exported once."""
    base = tmp_path_factory.mktemp('exports')
    for version, seed in ((1, 1), (2, 2)):
        lite_exports(base, spec.RM, None, seed=seed, version=version, name=RM)
    return base


def _add_version(exports, root, number, name=RM, broken=False):
    """Copies RM version ``number`` under ``root/name``; ``broken`` gives it a bad warmup record."""
    target = root / name / str(number)
    staging = root / name / f'.staging-{number}'  # published by rename, like exporter.export
    shutil.copytree(exports / RM / str(number), staging)
    if broken:
        request = warmup.predict_request(RM, {spec.MASK: np.zeros((1, 2), np.uint8)})
        path = staging / warmup.WARMUP_DIRECTORY / warmup.WARMUP_FILE
        with tf.io.TFRecordWriter(str(path)) as writer:
            writer.write(prediction_log_pb2.PredictionLog(
                    predict_log=prediction_log_pb2.PredictLog(request=request))
                         .SerializeToString())
    os.rename(staging, target)
    return target


def _tree(exports, tmp_path, versions=(1, 2), name=RM, broken=()):
    root = tmp_path / 'models'
    for number in versions:
        _add_version(exports, root, number, name, broken=number in broken)
    return root


def _config(root, versions=None, labels=None, names=(RM,)):
    return serving_config.serving_config(str(root), list(names), versions, labels)


# --- requests ------------------------------------------------------------------------------------

def _inputs(batch=2):
    return warmup.realistic_inputs(spec.RM, batch=batch)


def _request(name=RM, version=None, label=None, **overrides):
    return warmup.predict_request(name, {**_inputs(), **overrides}, version=version, label=label)


def _code(call):
    """(code, details) of a gRPC call; (OK, '') when it succeeds."""
    try:
        call()
    except grpc.RpcError as e:
        return e.code(), e.details()
    return grpc.StatusCode.OK, ''


def _http(url, body=None):
    """(HTTP status, decoded JSON) of a GET, or of a POST when ``body`` is given."""
    data = None if body is None else json.dumps(body).encode()
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data), timeout=60) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as e:
        return e.code, json.load(e)


def _eventually(probe, timeout=60.0):
    """Polls ``probe`` until it returns something true; returns its last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.1)


class Running:
    """Stubs and URLs of a started server."""

    def __init__(self, grpc_port, rest_port, config_path):
        self.channel = grpc.insecure_channel(f'127.0.0.1:{grpc_port}', options=[
                ('grpc.max_receive_message_length', 64 << 20)])
        self.predict = prediction_service_pb2_grpc.PredictionServiceStub(self.channel)
        self.models = model_service_pb2_grpc.ModelServiceStub(self.channel)
        self.rest = f'http://127.0.0.1:{rest_port}/v1/models'
        self.config_path = config_path

    def states(self, name=RM):
        """[(version, state name, error_code)] in the order the server lists them."""
        request = get_model_status_pb2.GetModelStatusRequest()
        request.model_spec.name = name
        return [(s.version, _State.Name(s.state), s.status.error_code)
                for s in self.models.GetModelStatus(request, timeout=30).model_version_status]

    def available(self, name=RM):
        code, _ = _code(lambda: self.states(name))
        return sorted(v for v, state, _ in self.states(name)
                      if state == 'AVAILABLE') if code == grpc.StatusCode.OK else []

    def reload(self, config):
        return _code(lambda: self.models.HandleReloadConfigRequest(
                model_management_pb2.ReloadConfigRequest(config=config), timeout=120))

    def served_version(self, **spec_fields):
        return self.predict.Predict(_request(**spec_fields), timeout=60).model_spec.version.value


def _free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


# --- the checks ----------------------------------------------------------------------------------

class TFServingBehaviour:
    """The checks; subclasses say which server runs them (``serve``)."""

    poll_seconds = 1.0  # how long one file-system or config-file poll may take

    def serve(self, tmp_path, config, allow_labels=False, poll_config=False):
        raise NotImplementedError

    # Predict and metadata (predict_util.cc, get_model_metadata_impl.cc).

    def test_predict_matches_the_saved_model_and_names_the_version(self, exports, tmp_path):
        root = _tree(exports, tmp_path)
        with self.serve(tmp_path, _config(root, 'all')) as server:
            for version, spec_fields in ((2, {}), (1, {'version': 1})):
                request = _request(**spec_fields)
                response = server.predict.Predict(request, timeout=60)
                assert (response.model_spec.name, response.model_spec.version.value,
                        response.model_spec.signature_name) == (RM, version,
                                                                spec.SERVING_SIGNATURE)
                direct = tf.saved_model.load(str(root / RM / str(version))).signatures[
                        spec.SERVING_SIGNATURE](**{k: tf.constant(v) for k, v in _inputs().items()})
                assert sorted(response.outputs) == sorted(direct)
                for key, value in direct.items():
                    np.testing.assert_array_equal(tf.make_ndarray(response.outputs[key]),
                                                  value.numpy())

    def test_metadata_is_the_signature_def_of_the_version_served(self, exports, tmp_path):
        with self.serve(tmp_path, _config(_tree(exports, tmp_path))) as server:
            request = get_model_metadata_pb2.GetModelMetadataRequest(
                    metadata_field=['signature_def'])
            request.model_spec.name = RM
            response = server.predict.GetModelMetadata(request, timeout=30)
            assert (response.model_spec.name, response.model_spec.version.value) == (RM, 2)
            signatures = get_model_metadata_pb2.SignatureDefMap()
            assert response.metadata['signature_def'].Unpack(signatures)
            signature = signatures.signature_def[spec.SERVING_SIGNATURE]
            assert signature.method_name == 'tensorflow/serving/predict'
            for tensors, keys, specs in ((signature.inputs, spec.MODULE_INPUTS[spec.RM],
                                          spec.INPUT_SPECS),
                                         (signature.outputs, spec.MODULE_OUTPUTS[spec.RM],
                                          spec.OUTPUT_SPECS)):
                assert sorted(tensors) == sorted(keys)
                for key in keys:
                    dtype, shape = specs[key]
                    assert tensors[key].dtype == tf.as_dtype(dtype).as_datatype_enum, key
                    assert [d.size for d in tensors[key].tensor_shape.dim] == [
                            -1 if d is None else d for d in shape], key

    def test_unknown_models_versions_and_labels(self, exports, tmp_path):
        with self.serve(tmp_path, _config(_tree(exports, tmp_path))) as server:
            predict = server.predict.Predict
            assert _code(lambda: predict(_request('nope'))) == (
                    grpc.StatusCode.NOT_FOUND, 'Servable not found for request: Latest(nope)')
            assert _code(lambda: predict(_request(version=1))) == (  # not in latest 1
                    grpc.StatusCode.NOT_FOUND, f'Servable not found for request: Specific({RM}, 1)')
            assert _code(lambda: predict(_request(label='canary'))) == (
                    grpc.StatusCode.INVALID_ARGUMENT, 'Unrecognized servable version label: canary')
            assert _code(lambda: predict(_request(''))) == (
                    grpc.StatusCode.INVALID_ARGUMENT, 'ModelSpec has no name specified.')
            status = get_model_status_pb2.GetModelStatusRequest()
            status.model_spec.name = 'nope'
            assert _code(lambda: server.models.GetModelStatus(status)) == (
                    grpc.StatusCode.NOT_FOUND, 'Could not find any versions of model nope')
            status.model_spec.name = RM
            status.model_spec.version.value = 9
            assert _code(lambda: server.models.GetModelStatus(status)) == (
                    grpc.StatusCode.NOT_FOUND, f'Could not find version 9 of model {RM}')

    def test_wrong_dtype_unknown_signature_and_unknown_output(self, exports, tmp_path):
        with self.serve(tmp_path, _config(_tree(exports, tmp_path))) as server:
            predict = server.predict.Predict
            code, details = _code(lambda: predict(_request(
                    mask=np.zeros((2,) + spec.FRAME_SHAPE, np.float32))))
            assert code == grpc.StatusCode.INVALID_ARGUMENT
            assert 'uint8' in details and 'float' in details, details
            request = _request()
            request.model_spec.signature_name = 'other'
            assert _code(lambda: predict(request)) == (
                    grpc.StatusCode.FAILED_PRECONDITION, 'Serving signature key "other" not found.')
            request = _request()
            request.output_filter.append('nope')
            code, details = _code(lambda: predict(request))
            assert code == grpc.StatusCode.INVALID_ARGUMENT
            assert details.startswith('output tensor alias not found in signature: nope'), details
            missing = _request()
            del missing.inputs[spec.MASK]
            code, details = _code(lambda: predict(missing))
            assert code == grpc.StatusCode.INVALID_ARGUMENT
            assert details.startswith('input size does not match signature: 2!=3'), details

    def test_predict_errors_name_what_the_signature_expects(self, exports, tmp_path):
        with self.serve(tmp_path, _config(_tree(exports, tmp_path))) as server:
            missing = _request()
            del missing.inputs[spec.MASK]
            assert sorted(spec.MODULE_INPUTS[spec.RM]) == ['coarse', 'mask', 'warped_cloth']
            assert _code(lambda: server.predict.Predict(missing))[1] == (
                    'input size does not match signature: 2!=3 len({coarse,warped_cloth}) != '
                    'len({coarse,mask,warped_cloth}). Sent extra: {}. Missing but required: '
                    '{mask}.')
            request = _request()
            request.output_filter.append('nope')
            outputs = ','.join(sorted(spec.MODULE_OUTPUTS[spec.RM]))
            assert _code(lambda: server.predict.Predict(request))[1] == (
                    'output tensor alias not found in signature: nope Outputs expected to be in '
                    f'the set {{{outputs}}}.')

    def test_metadata_field_must_be_signature_def(self, exports, tmp_path):
        with self.serve(tmp_path, _config(_tree(exports, tmp_path))) as server:
            for fields, message in (
                    ([], 'GetModelMetadataRequest must specify at least one metadata_field'),
                    (['signature_def', 'nope'], 'Metadata field nope is not supported')):
                request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=fields)
                request.model_spec.name = RM
                assert _code(lambda r=request: server.predict.GetModelMetadata(r)) == (
                        grpc.StatusCode.INVALID_ARGUMENT, message)

    def test_response_tensors_use_the_typed_fields(self, exports, tmp_path):
        with self.serve(tmp_path, _config(_tree(exports, tmp_path))) as server:
            response = server.predict.Predict(_request(), timeout=60)
            for key, tensor in response.outputs.items():
                size = int(np.prod([d.size for d in tensor.tensor_shape.dim]))
                assert tensor.tensor_content == b'' and len(tensor.int_val) == size, key

    # Version policies, polling, AvailabilityPreservingPolicy (aspired_versions_manager.cc,
    # availability_preserving_policy.cc, servable_state_monitor.h).

    @pytest.mark.parametrize('versions,available', [(None, [2]), (2, [1, 2]), ('all', [1, 2]),
                                                    ([1], [1])])
    def test_version_policies(self, exports, tmp_path, versions, available):
        with self.serve(tmp_path, _config(_tree(exports, tmp_path), versions)) as server:
            assert server.available() == available

    def test_a_new_version_is_loaded_and_the_old_one_unloaded(self, exports, tmp_path):
        root = _tree(exports, tmp_path, versions=(1,))
        with self.serve(tmp_path, _config(root)) as server:
            assert server.served_version() == 1
            _add_version(exports, root, 2)
            assert _eventually(lambda: server.available() == [2])
            assert server.served_version() == 2
            assert _code(lambda: server.served_version(version=1))[0] == grpc.StatusCode.NOT_FOUND

    def test_a_bad_warmup_record_fails_that_version(self, exports, tmp_path):
        root = _tree(exports, tmp_path, versions=(1,))
        with self.serve(tmp_path, _config(root)) as server:
            _add_version(exports, root, 2, broken=True)
            failed = _eventually(lambda: [s for s in server.states() if s[0] == 2 and
                                          s[1] == 'END'])
            assert failed and failed[0][2] != 0, server.states()  # END with an error status
            assert _code(lambda: server.served_version(version=2)) == (
                    grpc.StatusCode.NOT_FOUND, f'Servable not found for request: Specific({RM}, 2)')

    def test_a_new_version_that_fails_leaves_the_old_one_serving(self, exports, tmp_path):
        root = _tree(exports, tmp_path, versions=(1,))
        with self.serve(tmp_path, _config(root)) as server:
            _add_version(exports, root, 2, broken=True)
            _eventually(lambda: any(s[0] == 2 and s[1] == 'END' for s in server.states()))
            time.sleep(self.poll_seconds)
            assert server.available() == [1]
            assert _code(lambda: server.served_version())[0] == grpc.StatusCode.OK

    def test_unloaded_versions_stay_listed_as_end_newest_first(self, exports, tmp_path):
        root = _tree(exports, tmp_path, versions=(1,))
        _tree(exports, tmp_path, versions=(1,), name=OTHER)
        with self.serve(tmp_path, _config(root, names=(RM, OTHER))) as server:
            _add_version(exports, root, 2)
            assert _eventually(lambda: server.available() == [2])
            swapped = [(2, 'AVAILABLE', 0), (1, 'END', 0)]
            assert _eventually(lambda: server.states() == swapped, 3 * self.poll_seconds), \
                server.states()
            assert server.reload(_config(root, names=(RM,)))[0] == grpc.StatusCode.OK
            other = lambda: _code(lambda: server.states(OTHER))[0] == grpc.StatusCode.OK and \
                server.states(OTHER) == [(1, 'END', 0)]  # noqa: E731
            assert _eventually(other, 3 * self.poll_seconds)

    # Labels (server_core.cc UpdateModelVersionLabelMap).

    def test_labels_resolve_and_only_move_to_available_versions(self, exports, tmp_path):
        root = _tree(exports, tmp_path)
        with self.serve(tmp_path, _config(root, 'all', {'stable': 1}),
                        allow_labels=True) as server:
            assert server.served_version(label='stable') == 1
            assert server.reload(_config(root, 'all', {'stable': 7})) == (
                    grpc.StatusCode.FAILED_PRECONDITION, _NOT_AVAILABLE.format(7))
            assert server.served_version(label='stable') == 1
            both = _config(root, 'all', {'stable': 1, 'canary': 2})
            assert server.reload(both)[0] == grpc.StatusCode.OK
            assert server.served_version(label='canary') == 2

    def test_without_the_flag_a_new_label_needs_an_available_version(self, exports, tmp_path):
        root = _tree(exports, tmp_path)
        with self.serve(tmp_path, _config(root, [2])) as server:
            assert server.reload(_config(root, [1, 2], {'canary': 1})) == (
                    grpc.StatusCode.FAILED_PRECONDITION, _NOT_AVAILABLE.format(1))
            assert server.available() == [2]  # the refused config was not applied

    def test_labels_in_the_start_up_config_need_the_flag(self, exports, tmp_path):
        root = _tree(exports, tmp_path)
        try:
            with self.serve(tmp_path, _config(root, [2], {'stable': 2})):
                started = True
        except StartupFailedError as e:
            started = False
            assert _NOT_AVAILABLE.format(2) in str(e)
        assert not started

    def test_the_flag_accepts_an_unchanged_label_on_an_unloaded_version(self, exports, tmp_path):
        root = _tree(exports, tmp_path)
        with self.serve(tmp_path, _config(root, [1, 2], {'stable': 1}),
                        allow_labels=True) as server:
            assert server.reload(_config(root, [2], {'stable': 1}))[0] == grpc.StatusCode.OK
            assert _eventually(lambda: server.available() == [2])
            assert server.reload(_config(root, [2], {'stable': 1, 'canary': 2})) == (
                    grpc.StatusCode.OK, '')

    # Config reloads (model_service_impl.cc, server_core.cc).

    def test_a_bad_config_is_refused_and_the_old_one_kept(self, exports, tmp_path):
        root = _tree(exports, tmp_path)
        with self.serve(tmp_path, _config(root)) as server:
            bad = _config(root)
            bad.model_config_list.config[0].base_path = 'relative/path'
            assert server.reload(bad)[0] == grpc.StatusCode.INVALID_ARGUMENT
            time.sleep(self.poll_seconds)
            assert server.available() == [2] and server.served_version() == 2

    def test_models_left_out_of_a_reload_are_unloaded(self, exports, tmp_path):
        root = _tree(exports, tmp_path)
        _tree(exports, tmp_path, versions=(1,), name=OTHER)
        with self.serve(tmp_path, _config(root, names=(RM, OTHER))) as server:
            assert server.available(OTHER) == [1]
            assert server.reload(_config(root, names=(RM,)))[0] == grpc.StatusCode.OK
            assert _eventually(lambda: server.available(OTHER) == [])
            assert _code(lambda: server.served_version(name=OTHER)) == (
                    grpc.StatusCode.NOT_FOUND, f'Servable not found for request: Latest({OTHER})')
            assert server.served_version() == 2

    def test_config_errors_use_tf_serving_wording(self, exports, tmp_path):
        root = _tree(exports, tmp_path)
        with self.serve(tmp_path, _config(root)) as server:
            twice = _config(root, names=(RM, RM))
            relative = _config(root)
            relative.model_config_list.config[0].base_path = 'relative/path'
            no_platform = _config(root)
            no_platform.model_config_list.config[0].model_platform = ''
            assert [server.reload(c) for c in (twice, relative, no_platform)] == [
                    (grpc.StatusCode.INVALID_ARGUMENT,
                     f'Illegal to list model {RM} multiple times in config list'),
                    (grpc.StatusCode.INVALID_ARGUMENT,
                     f'Expected model {RM} to have an absolute path or URI; got '
                     'base_path()=relative/path'),
                    (grpc.StatusCode.INVALID_ARGUMENT,
                     'Illegal setting neither ModelServerConfig::model_type (deprecated) nor '
                     f'ModelServerConfig::model_platform, model name is {RM}')]

    def test_a_reload_takes_only_a_model_config_list(self, exports, tmp_path):
        with self.serve(tmp_path, _config(_tree(exports, tmp_path))) as server:
            custom = model_server_config_pb2.ModelServerConfig()
            custom.custom_model_config.SetInParent()
            for config in (model_server_config_pb2.ModelServerConfig(), custom):
                assert server.reload(config) == (
                        grpc.StatusCode.INVALID_ARGUMENT,
                        'ServerModelConfig type not supported by HandleReloadConfigRequest. Only '
                        'ModelConfigList is currently supported')
            assert server.available() == [2]

    def test_a_reload_adding_a_model_that_cannot_load_fails(self, exports, tmp_path):
        root = _tree(exports, tmp_path)
        _tree(exports, tmp_path, versions=(1,), name=OTHER, broken=(1,))
        with self.serve(tmp_path, _config(root)) as server:
            code, details = server.reload(_config(root, names=(RM, OTHER)))
            assert code == grpc.StatusCode.UNKNOWN
            assert details.startswith('1 model(s) did not become available'), details

    def test_a_start_up_model_that_cannot_load_stops_the_server(self, exports, tmp_path):
        root = _tree(exports, tmp_path, versions=(1,), broken=(1,))
        try:
            with self.serve(tmp_path, _config(root)):
                started = True
        except StartupFailedError as e:
            started = False
            assert 'did not become available' in str(e)
        assert not started

    def test_the_config_file_is_polled(self, exports, tmp_path):
        root = _tree(exports, tmp_path)
        _tree(exports, tmp_path, versions=(1,), name=OTHER)
        with self.serve(tmp_path, _config(root), poll_config=True) as server:
            serving_config.write(server.config_path, _config(root, names=(RM, OTHER)))
            assert _eventually(lambda: server.available(OTHER) == [1])

    def test_an_empty_config_file_changes_nothing(self, exports, tmp_path):
        with self.serve(tmp_path, _config(_tree(exports, tmp_path)), poll_config=True) as server:
            fileio.atomic_write_bytes(server.config_path, b'')
            time.sleep(3 * self.poll_seconds)
            assert server.available() == [2]

    # REST (http_rest_api_handler.cc, http_rest_api_util.cc, http_server.cc).

    def test_rest_status_metadata_and_both_predict_formats(self, exports, tmp_path):
        root = _tree(exports, tmp_path)
        with self.serve(tmp_path, _config(root, 'all', {'stable': 1}),
                        allow_labels=True) as server:
            url = f'{server.rest}/{RM}'
            assert _http(f'{url}/versions/1') == (200, {'model_version_status': [{
                    'version': '1', 'state': 'AVAILABLE',
                    'status': {'error_code': 'OK', 'error_message': ''}}]})
            status, metadata = _http(f'{url}/labels/stable/metadata')
            assert status == 200 and metadata['model_spec']['version'] == '1'
            signature = metadata['metadata']['signature_def']['signature_def'][
                    spec.SERVING_SIGNATURE]
            assert signature['inputs'][spec.MASK]['dtype'] == 'DT_UINT8'
            inputs = _inputs(batch=2)
            expected = server.predict.Predict(_request(), timeout=60).outputs
            rows = {'instances': [{k: v[i].tolist() for k, v in inputs.items()}
                                  for i in range(2)]}
            status, got = _http(f'{url}:predict', rows)
            assert status == 200
            for key in spec.MODULE_OUTPUTS[spec.RM]:
                np.testing.assert_array_equal([p[key] for p in got['predictions']],
                                              tf.make_ndarray(expected[key]))
            columns = {'inputs': {k: v.tolist() for k, v in inputs.items()}}
            status, got = _http(f'{url}/versions/2:predict', columns)
            assert status == 200
            for key in spec.MODULE_OUTPUTS[spec.RM]:
                np.testing.assert_array_equal(got['outputs'][key], tf.make_ndarray(expected[key]))
            status, got = _http(f'{url}/labels/stable:predict', columns)
            assert status == 200 and not np.array_equal(got['outputs'][spec.TRYON],
                                                        tf.make_ndarray(expected[spec.TRYON]))
            assert _http(f'{server.rest}/nope') == (
                    404, {'error': 'Could not find any versions of model nope'})
            assert _http(f'{server.rest}/nope:predict', columns) == (
                    404, {'error': 'Servable not found for request: Latest(nope)'})
            bad = {'inputs': {**columns['inputs'], spec.MASK: np.zeros(
                    (2,) + spec.FRAME_SHAPE).tolist()}, 'signature_name': 'nope'}
            assert _http(f'{url}:predict', bad)[0] == 400

    def test_rest_errors_use_tf_serving_statuses(self, exports, tmp_path):
        with self.serve(tmp_path, _config(_tree(exports, tmp_path))) as server:
            port = server.rest.split(':')[2].split('/')[0]
            assert _http(f'http://127.0.0.1:{port}/v1/modelz') == (
                    400, {'error': 'Malformed request: GET /v1/modelz'})
            body = {'signature_name': 'nope',
                    'inputs': {k: v.tolist() for k, v in _inputs(1).items()}}
            assert _http(f'{server.rest}/{RM}:predict', body) == (
                    400, {'error': 'Serving signature name: "nope" not found in signature def'})

    def test_rest_protocol_edges(self, exports, tmp_path):
        # http_rest_api_handler.cc ProcessRequest (any method but GET and POST is malformed),
        # http_rest_api_util.cc ParseModelInfo (name URL-decoded, version an int64, the path
        # matched with its query), json_tensor.cc ParseJson (the body must be an object).
        with self.serve(tmp_path, _config(_tree(exports, tmp_path, versions=(1,)))) as server:
            def call(method, path, body=None):
                request = urllib.request.Request(f'{server.rest}{path}', body, method=method)
                try:
                    with urllib.request.urlopen(request, timeout=60) as response:
                        return response.status, json.load(response)
                except urllib.error.HTTPError as e:
                    return e.code, json.load(e)

            assert call('PUT', f'/{RM}', b'{}') == (
                    400, {'error': f'Malformed request: PUT /v1/models/{RM}'})
            assert call('GET', f'/{RM}/versions/{2 ** 64}') == (
                    400, {'error': f'Failed to convert version: {2 ** 64} to numeric.'})
            assert call('POST', f'/{RM}:predict', b'[1, 2]') == (
                    400, {'error': 'JSON Value: [1,2] Is not object'})
            assert call('POST', f'/{RM}:predict', b'') == (
                    400, {'error': 'JSON Parse error: The document is empty'})
            status, body = call('GET', f'/{RM.replace("_", "%5F")}/versions/1')
            assert status == 200 and body['model_version_status'][0]['state'] == 'AVAILABLE'
            assert call('GET', f'/{RM}?x=1') == (
                    404, {'error': f'Could not find any versions of model {RM}?x=1'})

    def test_malformed_tensor_protos_are_tensor_parsing_errors(self, exports, tmp_path):
        # saved_model::GetInputValues via predict_util.cc: Tensor::FromProto refuses them.
        with self.serve(tmp_path, _config(_tree(exports, tmp_path, versions=(1,)))) as server:
            short = _request()
            short.inputs[spec.MASK].tensor_content = short.inputs[spec.MASK].tensor_content[:-1]
            invalid = _request()
            invalid.inputs[spec.COARSE].dtype = 0  # DT_INVALID
            negative = _request()
            negative.inputs[spec.WARPED_CLOTH].tensor_shape.dim[1].size = -256
            for request, alias in ((short, spec.MASK), (invalid, spec.COARSE),
                                   (negative, spec.WARPED_CLOTH)):
                assert _code(lambda r=request: server.predict.Predict(r, timeout=60)) == (
                        grpc.StatusCode.INVALID_ARGUMENT, f'tensor parsing error: {alias}')
            assert server.served_version() == 1  # and it serves on

    def test_rest_status_with_a_label_lists_every_version(self, exports, tmp_path):
        root = _tree(exports, tmp_path)
        with self.serve(tmp_path, _config(root, 'all', {'stable': 1}),
                        allow_labels=True) as server:
            status, body = _http(f'{server.rest}/{RM}/labels/stable')
            assert status == 200 and [s['version'] for s in body['model_version_status']] == [
                    '2', '1']

    def test_rest_metadata_is_the_proto_printed_as_json(self, exports, tmp_path):
        with self.serve(tmp_path, _config(_tree(exports, tmp_path))) as server:
            status, metadata = _http(f'{server.rest}/{RM}/metadata')
            assert status == 200
            assert metadata['model_spec'] == {'name': RM, 'signature_name': '', 'version': '2'}
            signature = metadata['metadata']['signature_def']['signature_def'][
                    spec.SERVING_SIGNATURE]
            assert signature['defaults'] == {}
            assert signature['inputs'][spec.MASK]['tensor_shape'] == {
                    'dim': [{'size': str(d), 'name': ''} for d in (-1,) + spec.FRAME_SHAPE],
                    'unknown_rank': False}


# --- the servers ---------------------------------------------------------------------------------

class TestDevServer(TFServingBehaviour):
    """The checks against everywear_tf.serving.dev_server, in process."""

    poll_seconds = 0.5

    @pytest.fixture(autouse=True)
    def _known_divergences(self, request):
        divergence = getattr(request.function, 'dev_divergence', None)
        if divergence:
            reason, raises = divergence
            request.applymarker(pytest.mark.xfail(strict=True, raises=raises,
                                                  reason=f'dev server differs: {reason}'))

    @contextlib.contextmanager
    def serve(self, tmp_path, config, allow_labels=False, poll_config=False):
        path = tmp_path / serving_config.MODELS_CONFIG
        serving_config.write(path, config)
        server = dev_server.DevServer(config, file_system_poll_seconds=0.2,
                                      config_file=str(path) if poll_config else None,
                                      config_poll_seconds=0.2 if poll_config else 0.0,
                                      allow_labels_for_unavailable=allow_labels)
        try:
            server.start()
        except manager.ServingError as e:
            raise StartupFailedError(e.message) from e
        try:
            yield Running(server.grpc_port, server.rest_port, path)
        finally:
            server.stop()

    # Dev-server-only checks: its own limits, internals and binary.

    def test_a_rest_body_over_the_limit_is_resource_exhausted(self, exports, tmp_path):
        config = _config(_tree(exports, tmp_path))
        with dev_server.DevServer(config, file_system_poll_seconds=0,
                                  max_message_bytes=100_000) as server:
            body = {'inputs': {k: v.tolist() for k, v in _inputs(1).items()}}
            try:
                status, error = _http(
                        f'http://127.0.0.1:{server.rest_port}/v1/models/{RM}:predict', body)
            except (urllib.error.URLError, ConnectionError) as e:  # answered before reading
                status, error = None, {'connection': repr(e)}
            assert status == 429 and 'error' in error, (status, error)

    def test_a_request_keeps_the_version_it_resolved(self, exports, tmp_path):
        root = _tree(exports, tmp_path)
        served = manager.Manager(_config(root, [1, 2]))
        version, saved_model = served.resolve(_request(version=1).model_spec)
        served.reload(_config(root, [2]))  # version 1 unloads while the request holds it
        assert not served.available(RM, 1)
        del version  # the request's own reference is ``saved_model``
        outputs = manager.predict(saved_model, spec.SERVING_SIGNATURE, _inputs())
        assert sorted(outputs) == sorted(spec.MODULE_OUTPUTS[spec.RM])

    def _binary(self, tmp_path, *flags):
        log = open(tmp_path / 'dev_server.log', 'w+')
        process = subprocess.Popen([sys.executable, os.path.join(REPO, 'serving', 'dev_server.py'),
                                    '--port=0', '--rest_api_port=0', *flags],
                                   stdout=log, stderr=subprocess.STDOUT, cwd=REPO)
        return process, log

    @staticmethod
    def _log_text(log):
        log.flush()
        log.seek(0)
        return log.read()

    def test_the_binary_logs_what_it_loaded(self, exports, tmp_path):
        root = _tree(exports, tmp_path)
        config_path = tmp_path / 'models.config'
        serving_config.write(config_path, _config('/models', 'all'))
        process, log = self._binary(tmp_path, f'--model_config_file={config_path}',
                                    f'--model_base_path_prefix={root}')
        try:
            assert _eventually(lambda: 'serving gRPC on 127.0.0.1:' in self._log_text(log))
            text = self._log_text(log)
            assert f'loaded {RM} version 1' in text and f'loaded {RM} version 2' in text, text
            assert 'development server' in text
        finally:
            process.terminate()
            assert process.wait(60) == 0
            log.close()

    def test_the_binary_serves_metrics_and_health_with_the_deploy_flags(self, exports, tmp_path):
        root = _tree(exports, tmp_path, versions=(1,))
        config_path = tmp_path / 'models.config'
        serving_config.write(config_path, _config(root))
        process, log = self._binary(
                tmp_path, f'--model_config_file={config_path}', '--enable_grpc_healthcheck_service',
                f'--monitoring_config_file={REPO}/serving/{serving_config.MONITORING_CONFIG}')
        try:
            assert _eventually(lambda: 'serving gRPC on 127.0.0.1:' in self._log_text(log))
            ports = re.search(r'gRPC on 127\.0\.0\.1:(\d+), REST on 127\.0\.0\.1:(\d+), '
                              r'metrics at (\S+) ', self._log_text(log))
            grpc_port, rest_port, path = ports.groups()
            assert path == serving_config.PROMETHEUS_PATH
            running = Running(grpc_port, rest_port, config_path)
            assert running.served_version() == 1
            with urllib.request.urlopen(f'http://127.0.0.1:{rest_port}{path}', timeout=60) as r:
                page = r.read().decode()
            assert f':tensorflow:serving:request_count{{model_name="{RM}",status="OK"}} 1' in page
            check = running.channel.unary_unary(
                    f'/{dev_server.HEALTH_SERVICE}/Check',
                    request_serializer=dev_server.HealthCheckRequest.SerializeToString,
                    response_deserializer=dev_server.HealthCheckResponse.FromString)
            assert check(dev_server.HealthCheckRequest(), timeout=30).status == (
                    dev_server.HealthCheckResponse.SERVING)
        finally:
            process.terminate()
            assert process.wait(60) == 0
            log.close()

    def test_the_binary_polls_the_config_file_with_a_base_path_prefix(self, exports, tmp_path):
        root = _tree(exports, tmp_path)
        _tree(exports, tmp_path, versions=(1,), name=OTHER)
        config_path = tmp_path / 'models.config'
        serving_config.write(config_path, _config('/models'))
        process, log = self._binary(tmp_path, f'--model_config_file={config_path}',
                                    f'--model_base_path_prefix={root}',
                                    '--model_config_file_poll_wait_seconds=0.2')
        try:
            assert _eventually(lambda: 'serving gRPC on' in self._log_text(log))
            serving_config.write(config_path, _config('/models', names=(RM, OTHER)))
            time.sleep(5)
            assert f'loaded {OTHER} version 1' in self._log_text(log)
        finally:
            process.terminate()
            process.wait(60)
            log.close()


@pytest.mark.skipif(TFS_BINARY is None,
                    reason='tensorflow_model_server is not on PATH: it is not on PyPI or in '
                           'Debian, so these checks ran only against '
                           'the dev server (TestDevServer)')
class TestTensorflowModelServer(TFServingBehaviour):
    """The same checks against the real tensorflow_model_server (skipped when it is absent)."""

    poll_seconds = 2.0

    @contextlib.contextmanager
    def serve(self, tmp_path, config, allow_labels=False, poll_config=False):
        path = tmp_path / serving_config.MODELS_CONFIG
        serving_config.write(path, config)
        grpc_port, rest_port = _free_port(), _free_port()
        flags = [f'--port={grpc_port}', f'--rest_api_port={rest_port}',
                 f'--model_config_file={path}', '--file_system_poll_wait_seconds=1',
                 '--max_num_load_retries=0', '--grpc_channel_arguments=grpc.so_reuseaddr=1']
        if allow_labels:
            flags.append('--allow_version_labels_for_unavailable_models=true')
        if poll_config:
            flags.append('--model_config_file_poll_wait_seconds=1')
        log = open(tmp_path / 'tensorflow_model_server.log', 'w+')
        process = subprocess.Popen([TFS_BINARY, *flags], stdout=log, stderr=subprocess.STDOUT)
        try:
            running = Running(grpc_port, rest_port, path)
            # TF Serving's own readiness check: a missing model answers "Servable not found".
            deadline = time.monotonic() + 120
            while 'Servable' not in _code(lambda: running.predict.Predict(
                    _request('intentionally_missing_model'), timeout=5))[1]:
                if process.poll() is not None:
                    log.seek(0)
                    raise StartupFailedError(log.read())
                assert time.monotonic() < deadline, 'tensorflow_model_server did not start'
                time.sleep(0.5)
            assert _eventually(lambda: _http_up(running.rest)), 'REST port did not open'
            yield running
        finally:
            process.terminate()
            process.wait(60)
            log.close()


def _http_up(url):
    try:
        _http(url + '/intentionally_missing_model')
        return True
    except (urllib.error.URLError, ConnectionError):
        return False
