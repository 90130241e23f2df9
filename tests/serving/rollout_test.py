"""Rollouts: publish → stage → canary → promote → rollback under continuous load, with every
request succeeding from a version that was live; the steps are safe to repeat."""

import functools
import os
import shutil
import socket
import subprocess
import sys
import threading
import time

import grpc
import numpy as np
import pytest

from everywear_tf import configs
from everywear_tf import spec
from everywear_tf import weights
from everywear_tf.export import warmup
from everywear_tf.inference import pipeline
from everywear_tf.models import factory
from everywear_tf.serving import config as serving_config
from everywear_tf.serving import dev_server
from everywear_tf.serving import rollout

from tests.models.randomize import randomize

# Servers, subprocesses, exports or training: not in the fast loop (pytest -m 'not slow').
pytestmark = pytest.mark.slow

CATEGORY = spec.MEN_PANTS
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _weights(root, seed):
    for module in spec.MODULES:
        model = factory.build(configs.get(module, configs.LITE))
        randomize(model, seed=seed)
        weights.save(model, root / spec.model_name(module, CATEGORY))
    return root


@pytest.fixture(scope='module')
def version_one(tmp_path_factory, lite_exports):
    base = tmp_path_factory.mktemp('v1')
    for module in spec.MODULES:
        lite_exports(base, module, CATEGORY, seed=1)
    return base


@pytest.fixture
def deployment(tmp_path, version_one):
    """Version 1 exported and served as stable/canary, the config file the server reads."""
    base = tmp_path / 'exported'
    shutil.copytree(version_one, base)
    names = [spec.model_name(m, CATEGORY) for m in spec.MODULES]
    config_path = tmp_path / 'models.config'
    serving_config.write(config_path, serving_config.serving_config(
            str(base), names, [1], {spec.STABLE: 1, spec.CANARY: 1}))
    server = dev_server.DevServer(serving_config.read_models(config_path),
                                  file_system_poll_seconds=0.2,
                                  allow_labels_for_unavailable=True).start()  # as in k8s/
    steps = rollout.Rollout(str(config_path), str(base), f'127.0.0.1:{server.grpc_port}',
                            CATEGORY, timeout=120)
    yield server, steps, tmp_path
    steps.close()
    server.stop()


def _free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def _rss_mb(pid):
    with open(f'/proc/{pid}/status') as f:
        return next(int(line.split()[1]) for line in f if line.startswith('VmRSS:')) / 1024


@pytest.fixture
def binary_deployment(tmp_path, version_one):
    """serving/dev_server.py on a /models config with --model_base_path_prefix (BUILD.md §8), as
    a process of its own so its memory is its own."""
    base = tmp_path / 'exported'
    shutil.copytree(version_one, base)
    names = [spec.model_name(m, CATEGORY) for m in spec.MODULES]
    config_path = tmp_path / 'models.config'
    serving_config.write(config_path, serving_config.serving_config(
            serving_config.CONTAINER_BASE_PATH, names, [1], {spec.STABLE: 1, spec.CANARY: 1}))
    port = _free_port()
    log = open(tmp_path / 'dev_server.log', 'w')
    process = subprocess.Popen([sys.executable, os.path.join(ROOT, 'serving', 'dev_server.py'),
                                f'--model_config_file={config_path}',
                                f'--model_base_path_prefix={base}', f'--port={port}',
                                '--rest_api_port=0', '--file_system_poll_wait_seconds=0.2',
                                '--allow_version_labels_for_unavailable_models'],
                               stdout=log, stderr=subprocess.STDOUT)
    steps = rollout.Rollout(str(config_path), str(base), f'127.0.0.1:{port}', CATEGORY,
                            timeout=120)
    try:
        deadline = time.monotonic() + 300
        while True:
            assert process.poll() is None, open(tmp_path / 'dev_server.log').read()
            try:
                if all(s.get('versions') == {1: 'AVAILABLE'} for s in steps.status().values()):
                    break
            except grpc.RpcError:
                pass
            assert time.monotonic() < deadline, 'the dev server did not start'
            time.sleep(0.5)
        yield process, steps, tmp_path
    finally:
        steps.close()
        process.terminate()
        process.wait(60)
        log.close()


class _Labels:
    """When each version was live for each label: from the moment a step moving the label
    starts until the step moving it away has returned."""

    def __init__(self):
        now = time.monotonic()
        self.intervals = {spec.STABLE: [[now, None, 1]], spec.CANARY: [[now, None, 1]]}
        self.lock = threading.Lock()

    def move(self, labels, version, step):
        """Runs ``step``, which moves ``labels`` to ``version``."""
        started = time.monotonic()
        result = step()
        ended = time.monotonic()
        with self.lock:
            for label in labels:
                current = self.intervals[label][-1]
                if current[2] != version:
                    current[1] = ended
                    self.intervals[label].append([started, None, version])
        return result

    def current(self, label):
        return self.intervals[label][-1][2]

    def live(self, label, start, end, version):
        with self.lock:
            return any(v == version and a <= end and (b is None or b >= start)
                       for a, b, v in self.intervals[label])


def test_rollout_under_load(binary_deployment):
    """8 client threads (3 RM calls labelled stable, 2 labelled canary, a whole try-on labelled
    stable, 2 whole try-ons through the commands' path with its default label) through 5
    publish → stage → canary → promote cycles and a rollback: no request fails, every answer
    comes from a version live for its label (the commands' path: stable's), and the server holds
    at most the kept versions (stable, the rollback target, the one being rolled out)."""
    process, steps, tmp_path = binary_deployment
    address = steps.servers[0]
    rm_inputs = warmup.realistic_inputs(spec.RM, batch=1)
    tryon_inputs = warmup.realistic_inputs(spec.GMM, batch=1)
    rm = spec.model_name(spec.RM, CATEGORY)
    labels = _Labels()
    stop = threading.Event()
    records, failures = [], []
    lock = threading.Lock()

    def recording(client, expected):
        """Wraps ``client.predict`` so every call is recorded with the version that answered."""
        original = client.predict

        def predict(model_name, inputs, **options):
            with_version = options.pop('with_version', False)
            started = time.monotonic()
            outputs, version = original(model_name, inputs, with_version=True, **options)
            with lock:
                records.append((expected, started, time.monotonic(), version, model_name))
            return (outputs, version) if with_version else outputs

        client.predict = predict

    def load(kind):
        if kind == 'cli':  # what everywear-tryon --server and everywear-batch --server build
            backend, expected = pipeline.make_backend(server=address), spec.STABLE
        else:
            backend, expected = pipeline.ServerBackend(address, timeout=60), kind[1]
        recording(backend.client, expected)
        try:
            while not stop.is_set():
                try:
                    if kind == 'cli':
                        backend(CATEGORY, tryon_inputs)
                    elif kind[0] == 'tryon':
                        backend(CATEGORY, tryon_inputs, label=kind[1])
                    else:
                        backend.client.predict(rm, {spec.WARPED_CLOTH: rm_inputs[spec.WARPED_CLOTH],
                                                    spec.COARSE: rm_inputs[spec.COARSE],
                                                    spec.MASK: rm_inputs[spec.MASK]},
                                               label=kind[1])
                except Exception as e:  # every failure is a test failure
                    with lock:
                        failures.append(f'{kind}: {e!r}')
                stop.wait(0.1)  # a steady load that leaves the rollout some CPU
        finally:
            backend.close()

    kinds = [('rm', spec.STABLE)] * 3 + [('rm', spec.CANARY)] * 2 + [('tryon', spec.STABLE)] + \
        ['cli'] * 2
    threads = [threading.Thread(target=load, args=(kind,)) for kind in kinds]
    for thread in threads:
        thread.start()
    weights_root = str(_weights(tmp_path / 'new', seed=2))
    kept = 2 + steps.rollback_targets  # stable, its rollback target(s), the version rolled out
    loaded, memory = [], []

    def loaded_versions():
        counts = [sum(state == 'AVAILABLE' for state in s['versions'].values())
                  for s in steps.status().values()]
        loaded.append(max(counts))
        return max(counts)

    try:
        time.sleep(1.0)
        for cycle in range(5):
            version = steps.publish(weights_root)
            assert version == cycle + 2
            steps.stage(version)
            assert loaded_versions() <= kept
            labels.move([spec.CANARY], version, functools.partial(steps.canary, version))
            time.sleep(0.3)
            labels.move([spec.STABLE], version, steps.promote)
            assert loaded_versions() <= kept - 1  # the oldest went once no label kept it
            memory.append(_rss_mb(process.pid))
            print(f'cycle {cycle + 1}: version {version} promoted, {len(records)} requests so '
                  f'far, {loaded[-1]} versions loaded, server RSS {memory[-1]:.0f} MB')
        assert labels.move([spec.STABLE, spec.CANARY], 5, steps.rollback) == 5
        assert loaded_versions() <= kept - 1
        memory.append(_rss_mb(process.pid))
        deadline = time.monotonic() + 300
        while len(records) + len(failures) < 2000 and time.monotonic() < deadline:
            time.sleep(0.5)
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    stale = [r for r in records if not labels.live(r[0], r[1], r[2], r[3])]
    latencies = np.array([end - start for _, start, end, _, _ in records]) * 1000
    print(f'\nrollout under load: {len(records) + len(failures)} requests, {len(failures)} '
          f'failed, {len(stale)} from a version not live for their label; latency p50 '
          f'{np.percentile(latencies, 50):.0f} ms, p99 {np.percentile(latencies, 99):.0f} ms; '
          f'versions loaded after each step {loaded}; server RSS after each cycle and the '
          f'rollback {", ".join(f"{m:.0f}" for m in memory)} MB')
    assert not failures, failures[:3]
    assert not stale, stale[:5]
    assert len(records) >= 2000
    assert max(loaded) <= kept
    status = steps.status()
    for name in steps.names:
        assert status[name]['labels'] == {spec.STABLE: 5, spec.CANARY: 5}
        # 6 was rolled back from, 4 had gone when 6 was promoted.
        assert {v for v, s in status[name]['versions'].items() if s == 'AVAILABLE'} == {5}
    assert {v for expected, _, _, v, _ in records if expected == spec.CANARY} >= {2, 3, 4, 5, 6}


def test_steps_are_safe_to_repeat_and_refuse_what_cannot_be(deployment):
    server, steps, tmp_path = deployment
    with pytest.raises(rollout.RolloutError, match='no previous stable'):
        steps.rollback()
    with pytest.raises(rollout.RolloutError, match='not staged'):
        steps.canary(2)
    config_before = open(steps.config_path).read()
    version = steps.publish(str(_weights(tmp_path / 'new', seed=3)))
    steps.stage(version)
    steps.stage(version)  # already done
    steps.canary(version)
    steps.canary(version)
    steps.promote()
    steps.promote()
    assert steps.rollback() == 1
    assert steps.rollback() == 1  # already rolled back
    assert serving_config.read_models(steps.config_path).model_config_list.config[0] \
        .version_labels[spec.STABLE] == 1
    # Back where it was before stage: the version rolled back from is unloaded.
    assert config_before == open(steps.config_path).read()
    assert steps.status()[steps.names[0]]['versions'] == {1: 'AVAILABLE', 2: 'END'}


def test_a_version_that_fails_to_load_is_not_staged(deployment):
    server, steps, tmp_path = deployment
    version = steps.publish(str(_weights(tmp_path / 'new', seed=4)))
    broken = os.path.join(steps.export_base, spec.model_name(spec.EDM, CATEGORY), str(version),
                          'saved_model.pb')
    with open(broken, 'wb') as f:
        f.write(b'not a saved model')
    with pytest.raises(rollout.RolloutError, match='failed to load'):
        steps.stage(version)
    config = serving_config.read_models(steps.config_path)
    assert all(list(m.model_version_policy.specific.versions) == [1]
               for m in config.model_config_list.config)


def test_the_binary_reports_status(deployment):
    server, steps, _ = deployment
    result = subprocess.run([sys.executable, os.path.join(ROOT, 'serving', 'rollout.py'),
                             'status', f'--category={CATEGORY}',
                             f'--model_config_file={steps.config_path}',
                             f'--export_base={steps.export_base}',
                             f'--server=127.0.0.1:{server.grpc_port}'],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert '"stable": 1' in result.stdout
    bad = subprocess.run([sys.executable, os.path.join(ROOT, 'serving', 'rollout.py'),
                          'launch', f'--category={CATEGORY}'], capture_output=True, text=True,
                         timeout=300)
    assert bad.returncode == 2 and 'say one of' in bad.stderr
