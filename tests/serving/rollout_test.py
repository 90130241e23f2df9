"""Rollouts: publish → stage → canary → promote → rollback under continuous load, with every
request succeeding from a version that was live; the steps are safe to repeat."""

import os
import shutil
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from everywear_tf import configs
from everywear_tf import spec
from everywear_tf import weights
from everywear_tf.export import exporter
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
def version_one(tmp_path_factory):
    base = tmp_path_factory.mktemp('v1')
    for module in spec.MODULES:
        model = factory.build(configs.get(module, configs.LITE))
        randomize(model, seed=1)
        exporter.export(model, base, spec.model_name(module, CATEGORY))
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


def test_rollout_under_load(deployment):
    server, steps, tmp_path = deployment
    inputs = warmup.realistic_inputs(spec.GMM, batch=1)
    stop = threading.Event()
    records, failures = [], []
    lock = threading.Lock()
    changes = [(time.monotonic(), 1)]  # (time, stable version) as the labels move

    def load(label):
        backend = pipeline.ServerBackend(f'127.0.0.1:{server.grpc_port}', timeout=60)
        client = backend.client
        try:
            while not stop.is_set():
                started = time.monotonic()
                try:
                    _, version = client.predict(spec.model_name(spec.RM, CATEGORY), {
                            spec.WARPED_CLOTH: inputs[spec.CLOTH], spec.COARSE: inputs[spec.PERSON],
                            spec.MASK: inputs[spec.CLOTH_MASK]}, label=label, with_version=True)
                    backend(CATEGORY, inputs, label=label)
                except Exception as e:  # every failure is a test failure
                    with lock:
                        failures.append(repr(e))
                    continue
                with lock:
                    records.append((label, started, time.monotonic(), version))
        finally:
            backend.close()

    threads = [threading.Thread(target=load, args=(label,))
               for label in (spec.STABLE, spec.STABLE, spec.CANARY)]
    for thread in threads:
        thread.start()
    time.sleep(1.0)
    version = steps.publish(str(_weights(tmp_path / 'new', seed=2)))
    assert version == 2
    steps.stage(version)
    steps.canary(version)
    time.sleep(0.5)
    steps.promote()
    changes.append((time.monotonic(), 2))
    time.sleep(0.5)
    assert steps.rollback() == 1
    changes.append((time.monotonic(), 1))
    time.sleep(0.5)
    stop.set()
    for thread in threads:
        thread.join()
    latencies = np.array([end - start for _, start, end, _ in records]) * 1000
    print(f'\nrollout under load: {len(records) + len(failures)} requests sent, '
          f'{len(failures)} failed; latency p50 {np.percentile(latencies, 50):.0f} ms, '
          f'p90 {np.percentile(latencies, 90):.0f} ms, p99 {np.percentile(latencies, 99):.0f} ms')
    assert not failures, failures[:3]
    assert len(records) > 20
    assert {v for _, _, _, v in records} <= {1, 2}
    assert 2 in {v for label, _, _, v in records if label == spec.CANARY}

    def stable_during(start, end):
        live = {max((c for c in changes if c[0] <= start), key=lambda c: c[0])[1]}
        return live | {v for t, v in changes if start <= t <= end}

    for label, start, end, version in records:
        if label == spec.STABLE:
            assert version in stable_during(start, end), (start, end, version, changes)
    status = steps.status()
    for name in steps.names:
        assert status[name]['labels'] == {spec.STABLE: 1, spec.CANARY: 1}
        assert status[name]['versions'] == {1: 'AVAILABLE', 2: 'AVAILABLE'}


def test_steps_are_safe_to_repeat_and_refuse_what_cannot_be(deployment):
    server, steps, tmp_path = deployment
    with pytest.raises(rollout.RolloutError, match='no previous stable'):
        steps.rollback()
    with pytest.raises(rollout.RolloutError, match='not staged'):
        steps.canary(2)
    version = steps.publish(str(_weights(tmp_path / 'new', seed=3)))
    steps.stage(version)
    steps.stage(version)  # already done
    config_before = open(steps.config_path).read()
    steps.canary(version)
    steps.canary(version)
    steps.promote()
    steps.promote()
    assert steps.rollback() == 1
    assert steps.rollback() == 1  # already rolled back
    assert serving_config.read_models(steps.config_path).model_config_list.config[0] \
        .version_labels[spec.STABLE] == 1
    assert config_before == open(steps.config_path).read()  # back where it was after stage


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
