"""One rollout at a time: the lock file beside models.config (no server needed)."""

import fcntl
import os

import pytest

from everywear_tf import spec
from everywear_tf.serving import config as serving_config
from everywear_tf.serving import rollout

NOBODY = '127.0.0.1:1'  # nothing listens: a step that got past the lock would fail on gRPC


@pytest.fixture
def steps(tmp_path):
    config_path = tmp_path / 'models.config'
    serving_config.write(config_path, serving_config.serving_config(
            str(tmp_path / 'exported'), [spec.model_name(m, spec.MEN_PANTS)
                                         for m in spec.MODULES], [1], {spec.STABLE: 1}))
    steps = rollout.Rollout(str(config_path), str(tmp_path / 'exported'), NOBODY,
                            spec.MEN_PANTS, timeout=5)
    yield steps
    steps.close()


def test_a_second_rollout_is_refused_while_one_holds_the_lock(steps):
    before = open(steps.config_path).read()
    with open(steps.config_path + '.lock', 'a') as held:  # another rollout.py, mid-step
        fcntl.flock(held, fcntl.LOCK_EX)
        for step in (lambda: steps.stage(2), lambda: steps.canary(2), steps.promote,
                     steps.rollback, lambda: steps.publish(str(steps.export_base))):
            with pytest.raises(rollout.RolloutError, match='another rollout holds this lock') \
                    as raised:
                step()
            assert steps.config_path + '.lock' in str(raised.value)
    assert open(steps.config_path).read() == before
    with steps.locked('test'):  # free again once the other one ends
        assert 'pid' in open(steps.config_path + '.lock').read()
        with steps.locked('nested'):  # a step inside a step (rollback stages) re-enters
            pass


def test_the_lock_is_never_followed_through_a_symbolic_link(steps, tmp_path):
    target = tmp_path / 'elsewhere' / 'created-by-the-link'
    target.parent.mkdir()
    os.symlink(target, steps.config_path + '.lock')
    with pytest.raises(rollout.RolloutError, match='symbolic link') as raised:
        steps.stage(2)
    assert steps.config_path + '.lock' in str(raised.value)
    assert not target.exists()
    os.symlink(tmp_path / 'elsewhere', tmp_path / 'dir.lock')
    steps.lock_path = str(tmp_path / 'dir.lock')  # a link to a directory: refused the same way
    with pytest.raises(rollout.RolloutError, match='symbolic link'):
        steps.stage(2)


def test_servers_are_listed_repeated_or_comma_separated():
    assert rollout.server_addresses('a:1') == ['a:1']
    assert rollout.server_addresses(['a:1,b:2', 'c:3', 'a:1']) == ['a:1', 'b:2', 'c:3']
    with pytest.raises(rollout.RolloutError, match='no server'):
        rollout.server_addresses(' , ')
