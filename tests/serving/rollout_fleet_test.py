"""Rollouts against the committed config's /models paths (dev server with the prefix) and against
absolute paths (as tensorflow_model_server in its container sees them), against a server that
would unload everything, and across a fleet of two dev servers polling one config file."""

import shutil
import time

import pytest

from everywear_tf import spec
from everywear_tf.serving import client as client_lib
from everywear_tf.serving import config as serving_config
from everywear_tf.serving import dev_server
from everywear_tf.serving import rollout

pytestmark = pytest.mark.slow  # servers and exports

CATEGORY = spec.MEN_PANTS
NAMES = [spec.model_name(m, CATEGORY) for m in spec.MODULES]
RM = spec.model_name(spec.RM, CATEGORY)


@pytest.fixture(scope='module')
def version_one(tmp_path_factory, lite_exports):
    base = tmp_path_factory.mktemp('v1')
    for module in spec.MODULES:
        lite_exports(base, module, CATEGORY, seed=1)
    return base


@pytest.fixture(scope='module')
def version_two(tmp_path_factory, lite_exports):
    """Other weights, exported once (publish itself is tested in rollout_test.py)."""
    base = tmp_path_factory.mktemp('v2')
    for module in spec.MODULES:
        lite_exports(base, module, CATEGORY, seed=2, version=2)
    return base


def _tree(version_one, tmp_path):
    base = tmp_path / 'exported'
    shutil.copytree(version_one, base)
    return base


def _publish(base, version_two, version):
    """Version 2's export as ``version`` of the three models, renamed into place as publish
    does."""
    for name in NAMES:
        staging = base / name / f'.staging-{version}'
        shutil.copytree(version_two / name / '2', staging)
        staging.rename(base / name / str(version))
    return version


def _write_config(path, base_path):
    serving_config.write(path, serving_config.serving_config(
            base_path, NAMES, [1], {spec.STABLE: 1, spec.CANARY: 1}))


def _server(config_path, prefix=None, poll=False, keep_serving=True):
    server = dev_server.DevServer(serving_config.read_models(config_path),
                                  file_system_poll_seconds=0.2,
                                  config_file=str(config_path) if poll else None,
                                  config_poll_seconds=0.3 if poll else 0.0,
                                  allow_labels_for_unavailable=True)
    server.manager.base_path_prefix = prefix  # what serving/dev_server.py does with the flag
    server.manager.keep_serving = keep_serving
    return server.start()


def _available(server, name):
    return sorted(n for n, state, _ in server.manager.status(name) if state.name == 'AVAILABLE')


@pytest.mark.parametrize('arrangement', ['dev server with the prefix', 'absolute paths'])
def test_a_rollout_keeps_serving_in_both_arrangements(arrangement, version_one, version_two,
                                                      tmp_path):
    base = _tree(version_one, tmp_path)
    config_path = tmp_path / 'models.config'
    prefixed = arrangement == 'dev server with the prefix'
    # The committed config's container paths, or the paths the server itself sees.
    _write_config(config_path, serving_config.CONTAINER_BASE_PATH if prefixed else str(base))
    server = _server(config_path, prefix=str(base) if prefixed else None)
    steps = rollout.Rollout(str(config_path), str(base), f'127.0.0.1:{server.grpc_port}',
                            CATEGORY, timeout=120)
    try:
        steps.stage(_publish(base, version_two, 2))
        for name in NAMES:
            assert _available(server, name) == [1, 2], server.manager.status(name)
        steps.canary(2)
        steps.promote()
        with client_lib.Client(f'127.0.0.1:{server.grpc_port}') as client:
            inputs = {k: v for k, v in _rm_inputs().items()}
            assert client.predict(RM, inputs, label=spec.STABLE, with_version=True)[1] == 2
        written = serving_config.read_models(config_path).model_config_list.config
        assert {m.base_path.startswith('/models/') for m in written} == {prefixed}
    finally:
        steps.close()
        server.stop()


def _rm_inputs():
    from everywear_tf.export import warmup
    return warmup.realistic_inputs(spec.RM, batch=1)


def test_stage_undoes_a_reload_that_stopped_what_was_serving(version_one, tmp_path):
    """A server that unloads everything (TF Serving does, when the config's base paths are not
    where it reads the models): stage notices at once, undoes, and says the undo could not
    restore them, naming the likely cause."""
    base = _tree(version_one, tmp_path)
    config_path = tmp_path / 'models.config'
    _write_config(config_path, str(base))
    server = _server(config_path, keep_serving=False)  # no prefix: /models is nowhere here
    _write_config(config_path, serving_config.CONTAINER_BASE_PATH)
    steps = rollout.Rollout(str(config_path), str(base), f'127.0.0.1:{server.grpc_port}',
                            CATEGORY, timeout=10)
    try:
        started = time.monotonic()
        with pytest.raises(rollout.RolloutError) as raised:
            steps.stage(2)
        message = str(raised.value)
        assert 'stopped serving version(s) 1' in message, message
        assert 'did not restore' in message and '--model_base_path_prefix' in message, message
        # Noticed at once (then the undo's own wait), not after waiting for version 2.
        assert time.monotonic() - started < 2 * steps.timeout
        written = serving_config.read_models(config_path).model_config_list.config
        assert all(list(m.model_version_policy.specific.versions) == [1] for m in written)
    finally:
        steps.close()
        server.stop()


def test_a_fleet_of_two_replicas_polling_one_config(version_one, version_two, tmp_path):
    base = _tree(version_one, tmp_path)
    config_path = tmp_path / 'models.config'
    _write_config(config_path, str(base))
    servers = [_server(config_path, poll=True) for _ in range(2)]
    log = []
    addresses = ','.join(f'127.0.0.1:{s.grpc_port}' for s in servers)
    steps = rollout.Rollout(str(config_path), str(base), addresses, CATEGORY, timeout=120,
                            log=log.append, reload=False)

    def labels(server):
        return {name: dict(server.manager.labels[name]) for name in NAMES}

    def check(available, stable, canary):
        for wait in (0.9, 0):  # right when the step returns, and after several config polls
            for server in servers:
                for name in NAMES:
                    assert _available(server, name) == available, (name, server.manager.status(
                            name))
                assert labels(server) == {n: {spec.STABLE: stable, spec.CANARY: canary}
                                          for n in NAMES}
            time.sleep(wait)

    try:
        assert steps.servers == [f'127.0.0.1:{s.grpc_port}' for s in servers]
        steps.stage(_publish(base, version_two, 2))  # through the replicas' polling alone
        assert any('waiting for' in line or 'waiting (up to' in line for line in log), log
        assert log[-1] == 'stage version 2: done', log
        assert log.index(next(line for line in log if 'waiting' in line)) < len(log) - 1
        check([1, 2], 1, 1)
        steps.reload = True
        steps.canary(2)
        check([1, 2], 1, 2)
        steps.promote()
        check([1, 2], 2, 2)  # 1 stays for rollback
        version = _publish(base, version_two, 3)
        steps.stage(version)
        steps.canary(version)
        steps.promote()
        check([2, 3], 3, 3)  # 1 had no label and is not the rollback target any more
        assert any('unload version 1' in line and line.endswith('done') for line in log), log
        assert steps.rollback() == 2
        check([2], 2, 2)  # 3, rolled back from, unloads
        status = steps.status()
        assert set(status[RM]['replicas']) == set(steps.servers)
        assert all(v == {1: 'END', 2: 'AVAILABLE', 3: 'END'}
                   for v in status[RM]['replicas'].values()), status
    finally:
        steps.close()
        for server in servers:
            server.stop()
