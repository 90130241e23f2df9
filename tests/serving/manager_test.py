"""The dev server's manager: the base-path prefix on every config, and no reload that leaves a
serving model nothing to serve."""

import grpc
import pytest

from everywear_tf import spec
from everywear_tf.serving import config as serving_config
from everywear_tf.serving import manager

RM = spec.model_name(spec.RM, spec.MEN_PANTS)
OTHER = spec.model_name(spec.RM, spec.MEN_LONG)


def test_the_prefix_maps_only_the_container_path():
    assert manager.map_base_path('/models/rm', '/srv/exported') == '/srv/exported/rm'
    assert manager.map_base_path('/models', '/srv/exported') == '/srv/exported'
    assert manager.map_base_path('/modelsx/rm', '/srv/exported') == '/modelsx/rm'
    assert manager.map_base_path('/data/rm', '/srv/exported') == '/data/rm'
    assert manager.map_base_path('/models/rm', None) == '/models/rm'


@pytest.fixture(scope='module')
def exported(tmp_path_factory, lite_exports):
    base = tmp_path_factory.mktemp('exported')
    for name in (RM, OTHER):
        lite_exports(base, spec.RM, None, seed=1, version=1, name=name)
    return base


def _config(root, names=(RM, OTHER), versions=(1,)):
    return serving_config.serving_config(str(root), list(names), list(versions))


@pytest.mark.slow
def test_the_prefix_applies_to_every_reload(exported):
    served = manager.Manager(_config('/models'), base_path_prefix=str(exported))
    assert served.available(RM, 1) and served.available(OTHER, 1)
    served.reload(_config('/models', versions=(1, 2)))  # what rollout.py sends: /models paths
    assert served.available(RM, 1) and served.available(OTHER, 1)
    assert served.config == _config('/models', versions=(1, 2))  # kept as given


@pytest.mark.slow
def test_a_reload_that_leaves_a_serving_model_nothing_to_serve_is_refused(exported, tmp_path):
    served = manager.Manager(_config(exported))
    before = served.config
    for bad in (_config(tmp_path / 'nowhere'), _config(exported, versions=(7,))):
        with pytest.raises(manager.ServingError) as raised:
            served.reload(bad)
        assert raised.value.code == grpc.StatusCode.FAILED_PRECONDITION
        assert f'model {RM} serves version(s) 1' in raised.value.message
        assert served.config == before
        assert served.available(RM, 1) and served.available(OTHER, 1)
    served.reload(_config(exported, names=(RM,)))  # removing a model is what unloads it
    assert served.available(RM, 1) and not served.available(OTHER)


@pytest.mark.slow
def test_without_keep_serving_it_unloads_as_tf_serving_does(exported, tmp_path):
    served = manager.Manager(_config(exported), keep_serving=False)
    served.reload(_config(tmp_path / 'nowhere'))
    assert not served.available(RM) and not served.available(OTHER)
