"""Server-side batching: the scheduler with plain functions (merging, timeout, allowed sizes,
padding, queues never shared, refusals, error fan-out), and one dev-server run over gRPC."""

import concurrent.futures
import os
import threading
import time

import grpc
import numpy as np
import pytest
import tensorflow as tf

from everywear_tf.serving import batching
from everywear_tf.serving import config as serving_config
from everywear_tf.serving.manager import ServingError


class Recorder:
    """A batch function that records what it was given; ``gate`` holds it until set."""

    def __init__(self, gate=None, fail=None):
        self.calls = []
        self.gate = gate
        self.fail = fail
        self.lock = threading.Lock()

    def __call__(self, merged):
        if self.gate is not None:
            self.gate.wait(10)
        with self.lock:
            self.calls.append({k: v.copy() for k, v in merged.items()})
        if self.fail is not None:
            raise self.fail
        return {'y': merged['x'] * 2 + 1, 'n': np.arange(len(merged['x']))}


def _params(**kwargs):
    values = dict(max_batch_size=8, batch_timeout_micros=200_000, num_batch_threads=1,
                  max_enqueued_batches=10)
    return batching.Parameters(**{**values, **kwargs})


def _rows(rng, n, width=3):
    return {'x': rng.normal(size=(n, width))}


def _submit_all(scheduler, key_params_fn_inputs):
    """Submits every (key, params, function, inputs) at once; results or exceptions in order."""
    with concurrent.futures.ThreadPoolExecutor(len(key_params_fn_inputs)) as pool:
        futures = [pool.submit(scheduler.submit, *args) for args in key_params_fn_inputs]
        out = []
        for future in futures:
            try:
                out.append(future.result(20))
            except ServingError as e:
                out.append(e)
        return out


def _wait_queued(scheduler, count):
    deadline = time.monotonic() + 10
    while scheduler.queued() < count:
        assert time.monotonic() < deadline, 'tasks never queued'
        time.sleep(0.002)


@pytest.fixture
def scheduler():
    s = batching.Scheduler(num_batch_threads=1)
    yield s
    s.close()


def test_concurrent_tasks_merge_into_one_call_and_split_back(scheduler):
    rng = np.random.default_rng(0)
    function = Recorder()
    inputs = [_rows(rng, n) for n in (1, 2, 3)]
    results = _submit_all(scheduler, [('m', _params(), function, x) for x in inputs])
    assert len(function.calls) == 1  # the 200 ms timeout lets all three join
    merged = function.calls[0]['x']
    assert merged.shape == (6, 3)
    for x, result in zip(inputs, results):  # each caller its own rows, whatever the order
        np.testing.assert_array_equal(result['y'], x['x'] * 2 + 1)
        assert len(result['n']) == len(x['x'])
    assert sorted(int(i) for r in results for i in r['n']) == list(range(6))  # rows shared out


def test_a_full_batch_runs_at_once_and_a_lone_task_after_the_timeout(scheduler):
    rng = np.random.default_rng(1)
    function = Recorder()
    params = _params(max_batch_size=4, batch_timeout_micros=5_000_000)
    started = time.monotonic()
    _submit_all(scheduler, [('m', params, function, _rows(rng, 2)) for _ in range(2)])
    assert time.monotonic() - started < 4  # full: did not wait the 5 s timeout
    params = _params(max_batch_size=4, batch_timeout_micros=300_000)
    started = time.monotonic()
    scheduler.submit('m', params, function, _rows(rng, 1))
    waited = time.monotonic() - started
    assert 0.25 <= waited < 5, waited  # alone: ran once its batch timed out
    assert [len(c['x']) for c in function.calls] == [4, 1]


def test_a_task_that_does_not_fit_closes_the_batch(scheduler):
    rng = np.random.default_rng(2)
    gate = threading.Event()
    function = Recorder(gate)
    params = _params(max_batch_size=4, batch_timeout_micros=0)
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        first = pool.submit(scheduler.submit, 'm', params, function, _rows(rng, 1))
        _wait_running(scheduler, function, gate)
        sizes = (3, 2, 2)
        futures = []
        for n in sizes:  # queued while the first batch runs: 3 | 2+2
            futures.append(pool.submit(scheduler.submit, 'm', params, function, _rows(rng, n)))
            _wait_queued(scheduler, len(futures))  # in this order
        gate.set()
        for future in [first, *futures]:
            future.result(20)
    assert [len(c['x']) for c in function.calls] == [1, 3, 4]


def _wait_running(scheduler, function, gate):
    """Until the scheduler's thread is inside ``function`` (held at ``gate``)."""
    deadline = time.monotonic() + 10
    while scheduler.queued():
        assert time.monotonic() < deadline
        time.sleep(0.002)
    time.sleep(0.05)
    assert not gate.is_set()


def test_allowed_batch_sizes_pad_with_the_last_tasks_first_row(scheduler):
    rng = np.random.default_rng(3)
    function = Recorder()
    params = _params(max_batch_size=8, allowed_batch_sizes=(2, 4, 8))
    inputs = [_rows(rng, 2), _rows(rng, 1)]
    results = _submit_all(scheduler, [('m', params, function, x) for x in inputs])
    merged = function.calls[0]['x']
    assert merged.shape == (4, 3)  # 3 rows padded up to the allowed 4
    last = merged[2] if np.array_equal(merged[:2], inputs[0]['x']) else merged[1]
    np.testing.assert_array_equal(merged[3], last)  # the padding copies the last task's row 0
    for x, result in zip(inputs, results):
        np.testing.assert_array_equal(result['y'], x['x'] * 2 + 1)


def test_pad_variable_length_inputs_pads_other_dimensions_with_the_first_value(scheduler):
    function = Recorder()
    params = _params(pad_variable_length_inputs=True)
    short = {'x': np.array([[5., 6.]])}
    long = {'x': np.array([[1., 2., 3.]])}
    _submit_all(scheduler, [('m', params, function, short), ('m', params, function, long)])
    merged = function.calls[0]['x']
    assert merged.shape == (2, 3)
    rows = sorted(map(tuple, merged))
    assert rows == [(1., 2., 3.), (5., 6., 5.)]  # padded after, with the tensor's first value

    function = Recorder()
    results = _submit_all(scheduler, [('n', _params(), function, short),
                                      ('n', _params(), function, long)])
    errors = [r for r in results if isinstance(r, ServingError)]
    assert len(errors) == 2 and errors[0].code == grpc.StatusCode.FAILED_PRECONDITION
    assert 'padding is turned off' in errors[0].message


def test_queues_never_mix_keys(scheduler):
    """Keys stand for (model version, signature, outputs): a batch holds one key's tasks."""
    rng = np.random.default_rng(4)
    functions = {key: Recorder() for key in ('gmm/1', 'gmm/2', 'edm/1')}
    jobs = [(key, _params(), functions[key], _rows(rng, 1)) for key in functions for _ in range(2)]
    results = _submit_all(scheduler, jobs)
    for key, function in functions.items():
        assert [len(c['x']) for c in function.calls] == [2], key
    for (_, _, _, x), result in zip(jobs, results):
        np.testing.assert_array_equal(result['y'], x['x'] * 2 + 1)


def test_a_task_larger_than_max_batch_size_is_refused_as_tf_serving_does(scheduler):
    with pytest.raises(ServingError) as error:
        scheduler.submit('m', _params(max_batch_size=4), Recorder(), {'x': np.zeros((5, 3))})
    assert error.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert error.value.message == 'Task size 5 is larger than maximum input batch size 4'


def test_inputs_of_unequal_batch_sizes_are_refused(scheduler):
    with pytest.raises(ServingError) as error:
        scheduler.submit('m', _params(), Recorder(), {'x': np.zeros((2, 3)), 'z': np.zeros(3)})
    assert error.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert '0th-dimension size' in error.value.message


def test_a_full_queue_answers_unavailable(scheduler):
    rng = np.random.default_rng(5)
    gate = threading.Event()
    function = Recorder(gate)
    params = _params(max_batch_size=2, batch_timeout_micros=0, max_enqueued_batches=2)
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        running = pool.submit(scheduler.submit, 'm', params, function, _rows(rng, 2))
        _wait_running(scheduler, function, gate)
        queued = []
        for count in (1, 2):  # two batches of 2 wait: the open one and a closed one
            for _ in range(2):
                queued.append(pool.submit(scheduler.submit, 'm', params, function, _rows(rng, 1)))
            _wait_queued(scheduler, 2 * count)
        with pytest.raises(ServingError) as error:
            scheduler.submit('m', params, function, _rows(rng, 1))
        gate.set()
        for future in [running, *queued]:
            future.result(20)
    assert error.value.code == grpc.StatusCode.UNAVAILABLE
    assert error.value.message.startswith(
            'The batch scheduling queue to which this task was submitted is full')


def test_an_error_of_the_merged_call_reaches_every_caller(scheduler):
    rng = np.random.default_rng(6)
    failure = ServingError(grpc.StatusCode.INVALID_ARGUMENT, 'the graph refused it')
    function = Recorder(fail=failure)
    results = _submit_all(scheduler, [('m', _params(), function, _rows(rng, 1))
                                      for _ in range(3)])
    assert len(function.calls) == 1
    assert all(r is failure for r in results)


def test_wrong_output_rows_fail_the_batch(scheduler):
    def function(merged):
        return {'y': merged['x'][:1]}

    with pytest.raises(ServingError) as error:
        scheduler.submit('m', _params(allowed_batch_sizes=(4, 8)), function,
                         {'x': np.zeros((2, 3))})
    assert error.value.code == grpc.StatusCode.FAILED_PRECONDITION


def test_parameters_are_checked_as_tf_serving_checks_them(tmp_path):
    path = tmp_path / 'batching.config'
    path.write_text('max_batch_size { value: 8 }\nallowed_batch_sizes: 2\nallowed_batch_sizes: 4\n')
    with pytest.raises(serving_config.ConfigError) as error:
        batching.read(path)
    assert 'Last entry in allowed_batch_sizes must match max_batch_size; last entry was 4; ' \
           'expected 8' in str(error.value) and str(path) in str(error.value)
    path.write_text('max_batch_size { value: 4 }\n')
    params = batching.read(path)
    assert (params.max_batch_size, params.batch_timeout_micros, params.max_enqueued_batches) == \
        (4, 0, 10)  # the rest are TF Serving's defaults
    committed = batching.read(os.path.join(os.path.dirname(__file__), '..', '..', 'serving',
                                           serving_config.BATCHING_CONFIG))
    assert committed.allowed_batch_sizes[-1] == committed.max_batch_size


def test_per_model_parameters_come_from_the_version_directory(tmp_path):
    common = batching.Parameters(max_batch_size=8)
    assert batching.ServerBatching(common).version_parameters(tmp_path) is common
    server_batching = batching.ServerBatching(common, per_model=True)
    try:
        assert server_batching.version_parameters(tmp_path) is None  # no file: not batched
        (tmp_path / batching.PER_MODEL_FILE).write_text('max_batch_size { value: 2 }\n')
        assert server_batching.version_parameters(tmp_path).max_batch_size == 2
        (tmp_path / batching.PER_MODEL_FILE).write_text('max_batch_size { value: 8 }\n'
                                                        'allowed_batch_sizes: 4\n')
        with pytest.raises(ServingError) as error:  # the version fails to load
            server_batching.version_parameters(tmp_path)
        assert error.value.code == grpc.StatusCode.INVALID_ARGUMENT
        assert batching.PER_MODEL_FILE in error.value.message
    finally:
        server_batching.close()


@pytest.mark.slow
def test_dev_server_merges_concurrent_grpc_requests(tmp_path):
    """Eight concurrent gRPC Predicts of one version run as few batches, each caller its own
    rows; with per-model parameters on, a version whose directory has no batching_params.pbtxt
    runs unbatched, and so does a signature of a fixed batch size."""
    from tensorflow_serving.apis import predict_pb2
    from tensorflow_serving.apis import prediction_service_pb2_grpc

    from everywear_tf.serving import dev_server

    class Affine(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, 3], tf.float32, name='x')])
        def serve(self, x):
            return {'y': x * 2.0 + 1.0, 'rows': tf.fill(tf.shape(x)[:1], tf.shape(x)[0])}

    class Fixed(Affine):  # a batch of one only, as the front end's signature
        @tf.function(input_signature=[tf.TensorSpec([1, 3], tf.float32, name='x')])
        def serve(self, x):
            return {'y': x * 2.0 + 1.0, 'rows': tf.fill(tf.shape(x)[:1], tf.shape(x)[0])}

    batched = 'max_batch_size { value: 8 }\nbatch_timeout_micros { value: 300000 }\n'
    for name, params, kind in (('batched', batched, Affine), ('alone', None, Affine),
                               ('fixed', batched, Fixed)):
        module = kind()
        path = tmp_path / name / '1'
        tf.saved_model.save(module, str(path), signatures={'serving_default': module.serve})
        if params:
            (path / batching.PER_MODEL_FILE).write_text(params)
    config = serving_config.serving_config(str(tmp_path), ['batched', 'alone', 'fixed'])
    server_batching = batching.ServerBatching(batching.Parameters(num_batch_threads=1),
                                              per_model=True)
    server = dev_server.DevServer(config, file_system_poll_seconds=0, batching=server_batching)
    with server:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(
                grpc.insecure_channel(f'127.0.0.1:{server.grpc_port}'))
        rng = np.random.default_rng(7)

        def call(name, n):
            request = predict_pb2.PredictRequest()
            request.model_spec.name = name
            x = rng.normal(size=(n, 3)).astype(np.float32)
            request.inputs['x'].CopyFrom(tf.make_tensor_proto(x))
            response = stub.Predict(request, timeout=30)
            return x, {k: tf.make_ndarray(v) for k, v in response.outputs.items()}

        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            results = list(pool.map(lambda n: call('batched', n), [1] * 6 + [2]))
            alone = list(pool.map(lambda n: call('alone', n), [1] * 4))
            fixed = list(pool.map(lambda n: call('fixed', n), [1] * 4))  # never merged
        for x, outputs in results:
            np.testing.assert_allclose(outputs['y'], x * 2 + 1, rtol=1e-6)
        rows = [int(outputs['rows'][0]) for _, outputs in results]
        assert max(rows) >= 4  # the model saw merged batches, never more than max_batch_size
        assert max(rows) <= 8
        assert all(int(outputs['rows'][0]) == 1 for _, outputs in alone + fixed)
