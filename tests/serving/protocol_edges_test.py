"""The dev server at its protocol edges: malformed REST and gRPC requests get a clear answer (TF
Serving 2.15.1's status and wording where it has one, read in its source: http_server.cc,
http_rest_api_handler.cc, http_rest_api_util.cc, util/json_tensor.cc, predict_util.cc), nothing is
allocated or run for a request that cannot be answered, the server keeps serving after each one,
and its threads are bounded."""

import json
import resource
import socket
import time

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.framework import types_pb2
from tensorflow_serving.apis import prediction_service_pb2_grpc

from everywear_tf import spec
from everywear_tf.export import warmup
from everywear_tf.serving import config as serving_config
from everywear_tf.serving import dev_server

# Servers, subprocesses, exports or training: not in the fast loop (pytest -m 'not slow').
pytestmark = pytest.mark.slow

RM = spec.model_name(spec.RM, spec.MEN_PANTS)
# RM's outputs (tryon, alpha, tps_mask; uint8) take at least this many bytes an item.
_RM_OUTPUT_BYTES = 256 * 192 * (3 + 1 + 1)


@pytest.fixture(scope='module')
def exports(tmp_path_factory, lite_exports):
    base = tmp_path_factory.mktemp('exports')
    lite_exports(base, spec.RM, None, seed=1, name=RM)
    return base


@pytest.fixture(scope='module')
def server(exports):
    config = serving_config.serving_config(str(exports), [RM])
    with dev_server.DevServer(config, file_system_poll_seconds=0,
                              monitoring_config=serving_config.monitoring_config()) as running:
        yield running


def _stub(server):
    channel = grpc.insecure_channel(f'127.0.0.1:{server.grpc_port}', options=[
            ('grpc.max_receive_message_length', 256 << 20),
            ('grpc.max_send_message_length', 256 << 20)])
    return prediction_service_pb2_grpc.PredictionServiceStub(channel)


def _raw(port, data, timeout=30):
    """(HTTP status, headers text, body bytes) of raw request bytes sent to ``port``."""
    with socket.create_connection(('127.0.0.1', port), timeout=timeout) as connection:
        connection.sendall(data)
        reply = b''
        while True:
            piece = connection.recv(1 << 16)
            if not piece:
                break
            reply += piece
    head, _, body = reply.partition(b'\r\n\r\n')
    status_line, _, headers = head.decode('latin-1').partition('\r\n')
    return int(status_line.split()[1]), headers, body


def _request(method, path, body=b'', headers=()):
    lines = [f'{method} {path} HTTP/1.1', 'Host: 127.0.0.1', 'Connection: close', *headers]
    if body and not any(h.lower().startswith(('content-length', 'transfer-encoding'))
                        for h in headers):
        lines.append(f'Content-Length: {len(body)}')
    return ('\r\n'.join(lines) + '\r\n\r\n').encode() + body


def _json_error(port, data):
    status, headers, body = _raw(port, data)
    assert 'application/json' in headers, headers
    return status, json.loads(body)['error']


def _good_predict(server):
    """A valid gRPC Predict and a valid REST status request both answer."""
    request = warmup.predict_request(RM, warmup.realistic_inputs(spec.RM, batch=1))
    response = _stub(server).Predict(request, timeout=60)
    assert sorted(response.outputs) == sorted(spec.MODULE_OUTPUTS[spec.RM])
    status, _, body = _raw(server.rest_port, _request('GET', f'/v1/models/{RM}'))
    assert status == 200 and json.loads(body)['model_version_status'][0]['state'] == 'AVAILABLE'


def _grpc_error(server, request, timeout=60):
    with pytest.raises(grpc.RpcError) as raised:
        _stub(server).Predict(request, timeout=timeout)
    return raised.value.code(), raised.value.details()


def _rm_request(batch=1, **protos):
    request = warmup.predict_request(RM, warmup.realistic_inputs(spec.RM, batch=batch))
    for key, edit in protos.items():
        edit(request.inputs[key])
    return request


def _wrong_content(proto):
    proto.tensor_content = proto.tensor_content[:-1]


def _invalid_dtype(proto):
    proto.dtype = types_pb2.DT_INVALID


def _negative_dim(proto):
    proto.tensor_shape.dim[1].size = -256


def _huge_shape(proto):  # 2^62 elements from one value: refused before any allocation
    proto.ClearField('tensor_content')
    del proto.tensor_shape.dim[:]
    for size in (2 ** 31, 2 ** 31):
        proto.tensor_shape.dim.add(size=size)
    proto.int_val.append(7)


def _ru_maxrss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


REST_CASES = [
    # (what, request bytes, expected HTTP status, a phrase the error holds)
    ('a JSON array body', _request('POST', f'/v1/models/{RM}:predict', b'[1, 2]'), 400,
     'JSON Value: [1,2] Is not object'),
    ('a JSON string body', _request('POST', f'/v1/models/{RM}:predict', b'"instances"'), 400,
     'Is not object'),
    ('JSON nested 100000 deep',
     _request('POST', f'/v1/models/{RM}:predict', b'[' * 100_000 + b']' * 100_000), 400,
     'JSON Parse error'),
    ('an empty body', _request('POST', f'/v1/models/{RM}:predict'), 400,
     'JSON Parse error: The document is empty'),
    ('a body that is not UTF-8',
     _request('POST', f'/v1/models/{RM}:predict', b'{"inputs": "\xff\xfe"}'), 400,
     'JSON Parse error: Invalid encoding'),
    ('a non-numeric Content-Length',
     _request('POST', f'/v1/models/{RM}:predict', b'{}', ['Content-Length: twelve']), 400,
     "Content-Length 'twelve' is not a number"),
    ('a Content-Length of a terabyte',
     _request('POST', f'/v1/models/{RM}:predict', b'{}', ['Content-Length: 1000000000000']),
     429, 'exceeds'),
    ('a version above int64', _request('GET', f'/v1/models/{RM}/versions/{2 ** 64}'), 400,
     f'Failed to convert version: {2 ** 64} to numeric.'),
    ('PUT', _request('PUT', f'/v1/models/{RM}', b'{}'), 400,
     f'Malformed request: PUT /v1/models/{RM}'),
    ('DELETE', _request('DELETE', f'/v1/models/{RM}'), 400,
     f'Malformed request: DELETE /v1/models/{RM}'),
    ('OPTIONS without an Origin', _request('OPTIONS', f'/v1/models/{RM}'), 400,
     'Origin header is missing in CORS preflight'),
    ('an unknown method', _request('BREW', f'/v1/models/{RM}'), 501, 'Unsupported method'),
    ('a path outside /v1', _request('GET', '/v2/models'), 404, 'Not found'),
    # http_rest_api_util.cc matches the path with its query: the query is part of the name.
    ('a query string on a status request', _request('GET', f'/v1/models/{RM}?verbose=1'), 404,
     f'Could not find any versions of model {RM}?verbose=1'),
    ('a query string on predict', _request('POST', f'/v1/models/{RM}:predict?x=1', b'{}'), 400,
     f'Malformed request: POST /v1/models/{RM}:predict?x=1'),
    ('signature_name not a string',
     _request('POST', f'/v1/models/{RM}:predict', b'{"signature_name": 3, "inputs": {}}'), 400,
     "'signature_name' key must be a string value"),
    ('instances not a list',
     _request('POST', f'/v1/models/{RM}:predict', b'{"instances": {"mask": 1}}'), 400,
     "Expecting 'instances' to be an list/array"),
    ('instances and inputs',
     _request('POST', f'/v1/models/{RM}:predict', b'{"instances": [1], "inputs": [1]}'), 400,
     "expecting only one of 'inputs' or 'instances'"),
    ('a ragged input',
     _request('POST', f'/v1/models/{RM}:predict', b'{"inputs": {"mask": [[1], [1, 2]]}}'), 400,
     'Malformed request'),
    ('a malformed chunked body',
     _request('POST', f'/v1/models/{RM}:predict', b'zz\r\n{}\r\n0\r\n\r\n',
              ['Transfer-Encoding: chunked']), 400, 'chunk size'),
]


@pytest.mark.parametrize('what, data, status, phrase', REST_CASES,
                         ids=[case[0] for case in REST_CASES])
def test_bad_rest_requests_get_a_clear_json_answer(server, what, data, status, phrase):
    before = _ru_maxrss_mb()
    got_status, error = _json_error(server.rest_port, data)
    assert (got_status, phrase in error) == (status, True), (what, got_status, error)
    assert _ru_maxrss_mb() - before < 200, what  # nothing of the claimed size was allocated
    _good_predict(server)


GRPC_CASES = [
    # (what, request, code, the message or a phrase of it)
    ('tensor_content one byte short', lambda: _rm_request(mask=_wrong_content),
     grpc.StatusCode.INVALID_ARGUMENT, f'tensor parsing error: {spec.MASK}'),
    ('DT_INVALID', lambda: _rm_request(coarse=_invalid_dtype),
     grpc.StatusCode.INVALID_ARGUMENT, f'tensor parsing error: {spec.COARSE}'),
    ('a negative dimension', lambda: _rm_request(warped_cloth=_negative_dim),
     grpc.StatusCode.INVALID_ARGUMENT, f'tensor parsing error: {spec.WARPED_CLOTH}'),
    ('2^62 elements declared by one value', lambda: _rm_request(mask=_huge_shape),
     grpc.StatusCode.RESOURCE_EXHAUSTED, 'response of at least'),
]


@pytest.mark.parametrize('what, make, code, phrase', GRPC_CASES,
                         ids=[case[0] for case in GRPC_CASES])
def test_malformed_tensor_protos_are_refused_before_decoding(server, what, make, code, phrase):
    before = _ru_maxrss_mb()
    assert _grpc_error(server, make())[0] == code
    assert phrase in _grpc_error(server, make())[1], what
    assert _ru_maxrss_mb() - before < 200, what
    _good_predict(server)


def _broadcast_request(batch):
    """A request of a few hundred bytes whose shapes say ``batch`` frames: one value each,
    repeated (Tensor::FromProto and tf.make_ndarray fill a shape from its last value)."""
    request = _rm_request()
    for proto in request.inputs.values():
        dims = [d.size for d in proto.tensor_shape.dim]
        proto.ClearField('tensor_content')
        del proto.tensor_shape.dim[:]
        for size in [batch] + dims[1:]:
            proto.tensor_shape.dim.add(size=size)
        proto.int_val.append(128)
    return request


def test_the_response_size_a_batch_implies_is_checked_before_running(server, monkeypatch):
    ran = []
    predict = dev_server.manager_lib.predict
    monkeypatch.setattr(dev_server.manager_lib, 'predict',
                        lambda *args: ran.append(1) or predict(*args))
    batch = server.max_message_bytes // _RM_OUTPUT_BYTES + 1
    request = _broadcast_request(batch)
    assert request.ByteSize() < 400
    code, message = _grpc_error(server, request, timeout=120)
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED, message
    assert f'a batch of {batch} makes a response of at least' in message
    assert not ran  # refused before the model ran
    _good_predict(server)
    assert ran  # the valid request after it did run


def test_rest_answers_with_tf_serving_s_names_and_chunked_bodies(server):
    # http_rest_api_util.cc DecodeArg: the model name and the label are URL-decoded.
    quoted = RM.replace('_', '%5F')
    status, _, body = _raw(server.rest_port, _request('GET', f'/v1/models/{quoted}'))
    assert status == 200 and json.loads(body)['model_version_status'][0]['version'] == '1'
    inputs = {k: v.tolist() for k, v in warmup.realistic_inputs(spec.RM, batch=1).items()}
    payload = json.dumps({'inputs': inputs}).encode()
    chunks = b''.join(b'%x\r\n%s\r\n' % (len(payload[i:i + 5000]), payload[i:i + 5000])
                      for i in range(0, len(payload), 5000)) + b'0\r\n\r\n'
    status, _, body = _raw(server.rest_port, _request(
            'POST', f'/v1/models/{RM}:predict', chunks, ['Transfer-Encoding: chunked']))
    assert status == 200 and sorted(json.loads(body)['outputs']) == sorted(
            spec.MODULE_OUTPUTS[spec.RM])
    status, headers, body = _raw(server.rest_port, _request('OPTIONS', f'/v1/models/{RM}', b'',
                                                            ['Origin: https://example.com']))
    assert status == 200


def test_rest_connections_beyond_the_limit_are_refused_with_503(exports):
    config = serving_config.serving_config(str(exports), [RM])
    with dev_server.DevServer(config, file_system_poll_seconds=0, rest_threads=2,
                              max_connections=2) as running:
        idle = [socket.create_connection(('127.0.0.1', running.rest_port)) for _ in range(2)]
        try:
            time.sleep(0.5)  # both accepted and held by the two workers, silent
            status, error = _json_error(running.rest_port, _request('GET', f'/v1/models/{RM}'))
            assert status == 503 and 'its limit' in error
        finally:
            for connection in idle:
                connection.close()
        deadline = time.monotonic() + 30
        while True:  # the workers notice the closed connections and take new ones
            status, _, _ = _raw(running.rest_port, _request('GET', f'/v1/models/{RM}'))
            if status == 200 or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert status == 200


def _metric(page, line_start):
    values = [line.rsplit(' ', 1)[1] for line in page.splitlines()
              if line.startswith(line_start)]
    assert len(values) == 1, (line_start, page)
    return float(values[0])


def test_prometheus_metrics_count_requests_as_tf_serving_does(exports):
    config = serving_config.serving_config(str(exports), [RM])
    monitoring = serving_config.monitoring_config('/metrics/here')
    with dev_server.DevServer(config, file_system_poll_seconds=0,
                              monitoring_config=monitoring) as running:
        stub = _stub(running)
        request = warmup.predict_request(RM, warmup.realistic_inputs(spec.RM, batch=1))
        for _ in range(2):
            stub.Predict(request, timeout=60)
        missing = warmup.predict_request('nope', warmup.realistic_inputs(spec.RM, batch=1))
        with pytest.raises(grpc.RpcError):
            stub.Predict(missing, timeout=60)
        inputs = {k: v.tolist() for k, v in warmup.realistic_inputs(spec.RM, batch=1).items()}
        status, _, _ = _raw(running.rest_port, _request(
                'POST', f'/v1/models/{RM}:predict', json.dumps({'inputs': inputs}).encode()))
        assert status == 200
        status, headers, body = _raw(running.rest_port, _request('GET', '/metrics/here'))
        assert status == 200 and 'text/plain' in headers
        page = body.decode()
        count = ':tensorflow:serving:request_count'
        latency = ':tensorflow:serving:request_latency'
        assert f'# TYPE {count} counter' in page
        assert f'# TYPE {latency} histogram' in page
        assert '# TYPE :tensorflow:serving:runtime_latency histogram' in page
        assert _metric(page, f'{count}{{model_name="{RM}",status="OK"}}') == 3
        assert _metric(page, f'{count}{{model_name="nope",status="NOT_FOUND"}}') == 1
        grpc_labels = f'model_name="{RM}",API="Predict",entrypoint="GRPC"'
        assert _metric(page, f'{latency}_count{{{grpc_labels}}}') == 2
        assert _metric(page, f'{latency}_bucket{{{grpc_labels},le="+Inf"}}') == 2
        assert _metric(page, f'{latency}_bucket{{{grpc_labels},le="10"}}') == 0
        assert _metric(page, f'{latency}_sum{{{grpc_labels}}}') > 0
        rest_labels = f'model_name="{RM}",API="predict",entrypoint="REST"'
        assert _metric(page, f'{latency}_count{{{rest_labels}}}') == 1
        buckets = [float(line.rsplit(' ', 1)[1]) for line in page.splitlines()
                   if line.startswith(f'{latency}_bucket{{{grpc_labels}')]
        assert len(buckets) == 34 and buckets == sorted(buckets)  # 33 limits and +Inf
        # http_server.cc ProcessPrometheusRequest: the path with a query is not the path.
        status, _, body = _raw(running.rest_port, _request('GET', '/metrics/here?x=1'))
        assert (status, body) == (400, b'Unexpected path: /metrics/here?x=1. Should be '
                                       b'/metrics/here')
        status, _, _ = _raw(running.rest_port,
                            _request('GET', serving_config.PROMETHEUS_PATH))
        assert status == 404  # only the configured path


def test_without_a_monitoring_config_there_is_no_metrics_page(server, exports):
    config = serving_config.serving_config(str(exports), [RM])
    with dev_server.DevServer(config, file_system_poll_seconds=0) as running:
        status, _, _ = _raw(running.rest_port, _request('GET', serving_config.PROMETHEUS_PATH))
        assert status == 404
    status, _, body = _raw(server.rest_port, _request('GET', serving_config.PROMETHEUS_PATH))
    assert status == 200 and b':tensorflow:serving:request_count' in body


def test_a_request_under_the_limits_still_answers_in_full(server):
    request = warmup.predict_request(RM, warmup.realistic_inputs(spec.RM, batch=8))
    response = _stub(server).Predict(request, timeout=120)
    assert [d.size for d in response.outputs[spec.TRYON].tensor_shape.dim][0] == 8
    assert tf.make_ndarray(response.outputs[spec.ALPHA]).dtype == np.uint8


def test_metrics_keep_a_bounded_number_of_label_sets():
    metrics = dev_server.Metrics()
    for i in range(3 * metrics.MAX_CELLS):  # clients choose the model names they send
        metrics.count(f'model_{i}', grpc.StatusCode.NOT_FOUND)
        metrics.latency('request', (f'model_{i}', 'predict', 'REST'), 0.001)
    page = metrics.page()
    counts = [line for line in page.splitlines()
              if line.startswith(':tensorflow:serving:request_count{')]
    assert len(counts) == metrics.MAX_CELLS + 1
    assert _metric(page, ':tensorflow:serving:request_count{model_name="<other>",'
                         'status="NOT_FOUND"}') == 2 * metrics.MAX_CELLS
    assert page.count(':tensorflow:serving:request_latency_count{') == metrics.MAX_CELLS + 1
