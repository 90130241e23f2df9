"""A category whose one-call model the config lists rolls out as a unit: publish exports the
one-call model of the same weights beside the three modules, every step moves its version and
labels with theirs, and through each label it answers what the three modules answer."""

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

pytestmark = pytest.mark.slow  # exports and a server

CATEGORY = spec.MEN_TSHIRTS
MODULE_NAMES = [spec.model_name(m, CATEGORY) for m in spec.MODULES]
ONE_CALL = spec.category_model_name(CATEGORY)


def _weights(root, seed):
    for module in spec.MODULES:
        model = factory.build(configs.get(module, configs.LITE))
        randomize(model, seed=seed)
        weights.save(model, root / spec.model_name(module, CATEGORY))
    return root


def _deployment(tmp_path, names):
    """Version 1 published by the rollout itself, then served as stable and canary."""
    base = tmp_path / 'exported'
    config_path = tmp_path / 'models.config'
    serving_config.write(config_path, serving_config.serving_config(
            str(base), names, [1], {spec.STABLE: 1, spec.CANARY: 1}))
    return base, config_path


def test_the_one_call_model_moves_with_its_category(tmp_path):
    base, config_path = _deployment(tmp_path, MODULE_NAMES + [ONE_CALL])
    first = rollout.Rollout(str(config_path), str(base), '127.0.0.1:1', CATEGORY)
    assert first.names == MODULE_NAMES + [ONE_CALL] and first.one_call
    assert first.publish(_weights(tmp_path / 'w1', seed=1)) == 1
    first.close()
    for name in MODULE_NAMES + [ONE_CALL]:
        assert exporter.versions(base / name) == [1]
    manifest = exporter.read_manifest(base / ONE_CALL / '1')
    assert manifest['source'] == ', '.join(str(tmp_path / 'w1' / n) for n in MODULE_NAMES)

    server = dev_server.DevServer(serving_config.read_models(config_path),
                                  file_system_poll_seconds=0.2,
                                  allow_labels_for_unavailable=True).start()
    address = f'127.0.0.1:{server.grpc_port}'
    steps = rollout.Rollout(str(config_path), str(base), address, CATEGORY, timeout=300)
    inputs = warmup.realistic_inputs(spec.GMM, batch=2)
    three = pipeline.ServerBackend(address, timeout=300)
    one = pipeline.ServerBackend(address, one_call=True, timeout=300)
    try:
        for name in MODULE_NAMES + [ONE_CALL]:
            server.wait_until_available(name, 1, timeout=300)
        assert steps.publish(_weights(tmp_path / 'w2', seed=2)) == 2
        assert exporter.versions(base / ONE_CALL) == [1, 2]
        steps.stage(2)
        steps.canary(2)
        status = steps.status()
        assert set(status) == set(MODULE_NAMES + [ONE_CALL])
        for name, entry in status.items():
            assert entry['labels'] == {spec.STABLE: 1, spec.CANARY: 2}, name
            assert entry['versions'] == {1: 'AVAILABLE', 2: 'AVAILABLE'}, name
        answers = {}
        for label in (spec.STABLE, spec.CANARY):
            chain = three(CATEGORY, inputs, label=label)
            whole = one(CATEGORY, inputs, label=label)
            for key in whole:
                np.testing.assert_array_equal(whole[key], chain[key], err_msg=f'{label} {key}')
            answers[label] = whole[spec.TRYON]
        assert not np.array_equal(answers[spec.STABLE], answers[spec.CANARY])
        steps.promote()
        assert {name: entry['labels'] for name, entry in steps.status().items()} == {
                name: {spec.STABLE: 2, spec.CANARY: 2} for name in MODULE_NAMES + [ONE_CALL]}
        assert steps.rollback() == 1
        for name, entry in steps.status().items():
            assert entry['labels'] == {spec.STABLE: 1, spec.CANARY: 1}, name
        np.testing.assert_array_equal(one(CATEGORY, inputs, label=spec.STABLE)[spec.TRYON],
                                      answers[spec.STABLE])
    finally:
        three.close()
        one.close()
        steps.close()
        server.stop()


def test_a_config_without_the_one_call_model_moves_the_three(tmp_path):
    _, config_path = _deployment(tmp_path, MODULE_NAMES)
    steps = rollout.Rollout(str(config_path), str(tmp_path / 'exported'), '127.0.0.1:1',
                            CATEGORY)
    assert steps.names == MODULE_NAMES and not steps.one_call
    steps.close()
    front = rollout.Rollout(str(config_path), str(tmp_path / 'exported'), '127.0.0.1:1',
                            spec.FRONTEND)
    assert front.names == [spec.FRONTEND_MODEL]
    front.close()
