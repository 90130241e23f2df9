"""Session-wide fixtures: the subprocesses of tests/early.py, started as the session starts, and
lite exports shared by the test modules that export the same weights."""

import os
import shutil

import pytest

from tests import early


@pytest.fixture(scope='session', autouse=True)
def _early_commands(request, tmp_path_factory):
    early.start_session(request.session.items, tmp_path_factory.mktemp('early'))
    yield
    early.stop_session()


@pytest.fixture(scope='session')
def lite_exports(tmp_path_factory):
    """``lite_exports(base, module, category, seed, version=1, name=None)``: the lite network of
    ``module`` with random weights (tests/models/randomize.py, ``seed``) exported as ``version``
    of ``name`` (``<module>_<category>``) into ``base``, as ``exporter.export`` would; returns the
    version directory. Each (module, seed, name, version) is exported once per session and
    copied from there, so the tree in ``base`` is the test's own to change."""
    # Imported here: a session of tests that need no TensorFlow does not load it for this.
    from everywear_tf import configs
    from everywear_tf import spec
    from everywear_tf.export import exporter
    from everywear_tf.models import factory

    from tests.models import randomize

    cache_root = tmp_path_factory.mktemp('lite_exports')
    cache = {}

    def export(base, module, category, seed, version=1, name=None):
        name = name or spec.model_name(module, category)
        key = (module, seed, name, version)
        if key not in cache:
            model = factory.build(configs.get(module, configs.LITE))
            randomize.randomize(model, seed=seed)
            cache[key] = exporter.export(model, cache_root / str(len(cache)), name,
                                         version=version)
        target = os.path.join(os.fspath(base), name, str(version))
        shutil.copytree(cache[key], target)
        return target

    return export
