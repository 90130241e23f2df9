"""Which model versions run (issue 15, items 3 and 11): the client and ServerBackend send the
``stable`` label unless told otherwise, and drop it only where the server's config defines no
labels and the label was not asked for; exported SavedModels run as one consistent set; setup
problems are found once, by ``check``, before any work."""

import os
import shutil

import grpc
import pytest

from everywear_tf import errors
from everywear_tf import spec
from everywear_tf.export import warmup
from everywear_tf.inference import pipeline
from everywear_tf.serving import client as client_lib
from everywear_tf.serving import config as serving_config
from everywear_tf.serving import dev_server

# Servers and exports: not in the fast loop (pytest -m 'not slow').
pytestmark = pytest.mark.slow

CATEGORY = spec.MEN_TSHIRTS
NAMES = [spec.model_name(module, CATEGORY) for module in spec.MODULES]
RM = spec.model_name(spec.RM, CATEGORY)


@pytest.fixture(scope='module')
def exported(tmp_path_factory, lite_exports):
    """A category's three models exported once as version 1 (the other versions of these tests
    are copies of it: which version answers is what is tested, not what it computes)."""
    base = tmp_path_factory.mktemp('exported')
    for module, name in zip(spec.MODULES, NAMES):  # the weights of tests/export/exporter_test.py
        lite_exports(base, module, CATEGORY, seed=0, version=1, name=name)
    return base


def _tree(exported, tmp_path, versions):
    """A base path holding ``versions`` ({name: [numbers]}) of the exported models."""
    base = tmp_path / 'base'
    for name, numbers in versions.items():
        for number in numbers:
            shutil.copytree(exported / name / '1', base / name / str(number))
    return base


def _config(base, labels=None):
    """GMM and EDM at version 1, RM at 1 and 2 (2 staged: loaded, AVAILABLE, and unlabelled)."""
    config = serving_config.serving_config(str(base), NAMES, versions=[1], labels=labels)
    config.model_config_list.config[2].model_version_policy.specific.versions.append(2)
    return config


def _rm_inputs():
    return warmup.realistic_inputs(spec.RM)


def _check_lines(address):
    lines = []
    backend = pipeline.ServerBackend(address, log=lines.append)
    try:
        backend.check([CATEGORY])
        assert backend(CATEGORY, warmup.realistic_inputs(spec.GMM))[spec.TRYON].shape[0] == 1
    finally:
        backend.close()
    return lines


def test_unlabelled_calls_go_to_stable_not_to_the_staged_version(exported, tmp_path):
    base = _tree(exported, tmp_path, {NAMES[0]: [1], NAMES[1]: [1], NAMES[2]: [1, 2]})
    server = dev_server.DevServer(_config(base), file_system_poll_seconds=0,
                                  allow_labels_for_unavailable=True).start()
    address = f'127.0.0.1:{server.grpc_port}'
    rest = f'127.0.0.1:{server.rest_port}'
    try:
        # A config without labels: the default label is dropped (TF Serving answers such a
        # call with its highest AVAILABLE version); a label asked for is not.
        rechecking = client_lib.Client(address, label_recheck_seconds=0)
        for client in (rechecking, client_lib.Client(rest, transport=client_lib.REST)):
            assert client.predict(RM, _rm_inputs())[spec.TRYON].shape == (
                    (1,) + spec.FRAME_SHAPE + (3,))
            assert client.served_version(RM) == (2, client_lib.Where())
            with pytest.raises(client_lib.ServerError) as raised:
                client.predict(RM, _rm_inputs(), label=spec.STABLE)
            assert raised.value.code == grpc.StatusCode.INVALID_ARGUMENT
            assert raised.value.unknown_label
        strict = client_lib.Client(address, label_fallback=False)
        with strict, pytest.raises(client_lib.ServerError, match='Unrecognized servable'):
            strict.predict(RM, _rm_inputs())
        assert _check_lines(address) == [
                f'{CATEGORY}: {NAMES[0]} 1, {NAMES[1]} 1, {NAMES[2]} 2 on {address} (no label)']

        # The config gains labels, version 2 of RM still only staged: unlabelled traffic would
        # reach it; the client's default goes to stable.
        server.manager.reload(_config(base, {spec.STABLE: 1, spec.CANARY: 1}))
        for client in (rechecking, client_lib.Client(rest, transport=client_lib.REST)):
            assert client.served_version(RM) == (1, client_lib.Where(label=spec.STABLE,
                                                                     fallback=True))
        assert rechecking.predict(RM, _rm_inputs(), with_version=True)[1] == 1
        assert rechecking.predict(RM, _rm_inputs(), label=client_lib.NO_LABEL,
                                  with_version=True)[1] == 2
        with client_lib.Client(address, label=None) as unlabelled:
            assert unlabelled.predict(RM, _rm_inputs(), with_version=True)[1] == 2
        with client_lib.Client(address, version=2) as pinned:
            assert pinned.predict(RM, _rm_inputs(), with_version=True)[1] == 2
        rechecking.close()
        assert _check_lines(address) == [
                f'{CATEGORY}: {NAMES[0]} 1, {NAMES[1]} 1, {NAMES[2]} 1 on {address} '
                f'(label stable)']
        beta = pipeline.make_backend(server=address, label='beta', label_fallback=False)
        try:
            with pytest.raises(pipeline.SetupError, match=f'{NAMES[0]} \\(label beta\\): '
                               'INVALID_ARGUMENT: Unrecognized servable version label: beta'):
                beta.check([CATEGORY])
        finally:
            beta.close()
    finally:
        server.stop()


def test_an_unreachable_server_is_one_setup_error():
    backend = pipeline.ServerBackend('127.0.0.1:1', retries=1, backoff=0.01, log=lambda m: None)
    try:
        with pytest.raises(pipeline.SetupError, match='127.0.0.1:1: no model server answers '
                                                      'there \\(UNAVAILABLE'):
            backend.check()
    finally:
        backend.close()


def test_saved_models_run_the_highest_version_all_three_have(exported, tmp_path):
    base = _tree(exported, tmp_path, {NAMES[0]: [1], NAMES[1]: [1], NAMES[2]: [1]})
    # A newer GMM alone (here one that cannot even load): before, it was taken and mixed with
    # the older EDM and RM.
    os.makedirs(base / NAMES[0] / '2')
    (base / NAMES[0] / '2' / 'saved_model.pb').write_bytes(b'not a SavedModel')
    lines = []
    backend = pipeline.SavedModelBackend(str(base), log=lines.append)
    outputs = backend(CATEGORY, warmup.realistic_inputs(spec.GMM))
    assert outputs[spec.TRYON].shape == (1,) + spec.FRAME_SHAPE + (3,)
    assert lines == [f'{CATEGORY}: {NAMES[0]} 1, {NAMES[1]} 1, {NAMES[2]} 1 (the highest '
                     f'version present for all three (no models.config for the stable label))']


def test_saved_models_follow_the_stable_label_of_the_config(exported, tmp_path):
    base = _tree(exported, tmp_path, dict.fromkeys(NAMES, [1, 2]))
    config = tmp_path / 'models.config'
    serving_config.write(str(config), serving_config.serving_config(
            '/models', NAMES, versions=[1, 2], labels={spec.STABLE: 1, spec.CANARY: 2}))
    backend = pipeline.make_backend(saved_models=str(base), model_config=str(config))
    assert backend.select(CATEGORY) == (dict.fromkeys(NAMES, 1), f'label stable of {config}')
    assert pipeline.make_backend(saved_models=str(base), model_config=str(config),
                                 label=spec.CANARY).select(CATEGORY)[0] == dict.fromkeys(NAMES, 2)
    # Found beside the models without being named; --model_version and no label.
    shutil.copy(config, base / 'models.config')
    assert pipeline.SavedModelBackend(str(base)).select(CATEGORY)[0] == dict.fromkeys(NAMES, 1)
    assert pipeline.SavedModelBackend(str(base), version=2).select(CATEGORY)[0] == (
            dict.fromkeys(NAMES, 2))
    assert pipeline.SavedModelBackend(str(base), label=None).select(CATEGORY)[0] == (
            dict.fromkeys(NAMES, 2))


def test_inconsistent_exports_are_errors_listing_the_versions(tmp_path):
    def base(versions):
        root = tmp_path / f'base{len(os.listdir(tmp_path))}'
        for name, numbers in versions.items():
            for number in numbers:
                os.makedirs(root / name / str(number))
        return root

    mixed = base({NAMES[0]: [1, 2], NAMES[1]: [1], NAMES[2]: [2]})
    with pytest.raises(pipeline.ModelSetError, match=f'no version is present for all three '
                       f'models of {CATEGORY}: {NAMES[0]} \\[1, 2\\], {NAMES[1]} \\[1\\], '
                       f'{NAMES[2]} \\[2\\]'):
        pipeline.SavedModelBackend(str(mixed)).select(CATEGORY)
    with pytest.raises(pipeline.ModelSetError, match=f'version 2: {NAMES[1]} has no version 2'):
        pipeline.SavedModelBackend(str(mixed), version=2).select(CATEGORY)
    with pytest.raises(pipeline.ModelSetError, match='no models.config here to read the canary'):
        pipeline.SavedModelBackend(str(mixed), label=spec.CANARY,
                                   label_fallback=False).select(CATEGORY)
    # A config that labels only some of them.
    config = tmp_path / 'partial.config'
    partial = serving_config.serving_config('/models', NAMES, versions=[1])
    partial.model_config_list.config[0].version_labels[spec.STABLE] = 1
    serving_config.write(str(config), partial)
    with pytest.raises(pipeline.ModelSetError, match=f'label stable is not set for {NAMES[1]}, '
                                                     f'{NAMES[2]}'):
        pipeline.SavedModelBackend(str(mixed), model_config=str(config)).select(CATEGORY)
    with pytest.raises(errors.InputNotFoundError, match='no such file'):
        pipeline.SavedModelBackend(str(mixed), model_config=str(tmp_path / 'none')).select(
                CATEGORY)
    missing = pipeline.SavedModelBackend(str(tmp_path / 'nowhere'))
    with pytest.raises(pipeline.SetupError, match='nowhere: no such directory \\(the exported'):
        missing.check([CATEGORY])
    with pytest.raises(pipeline.SetupError, match=f'{NAMES[0]}: no SavedModel versions'):
        pipeline.SavedModelBackend(str(base({NAMES[1]: [1]}))).check([CATEGORY])
