"""Serving configs: proto round trips, TF Serving's validation rules, committed files in sync."""

import os
import re

import pytest
import yaml
from tensorflow_serving.config import model_server_config_pb2

from everywear_tf import spec
from everywear_tf.serving import config

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SERVING = os.path.join(ROOT, 'serving')


def test_committed_configs_are_the_generator_output(tmp_path):
    written = config.write_all(tmp_path)
    for name, path in written.items():
        with open(path) as f, open(os.path.join(SERVING, name)) as committed:
            assert f.read() == committed.read(), f'serving/{name} is stale: rerun ' \
                                                  'serving/write_configs.py'


def test_models_config_lists_every_served_model_with_labels():
    parsed = config.validate(config.read_models(os.path.join(SERVING, config.MODELS_CONFIG)))
    models = parsed.model_config_list.config
    # The nine try-on models, the three one-call models, then the front end, with the same
    # policy and labels.
    assert [m.name for m in models] == list(spec.served_model_names())
    assert [m.name for m in models] == (list(spec.all_model_names()) + [
            'tryon_men_tshirts', 'tryon_men_long', 'tryon_men_pants', spec.FRONTEND_MODEL])
    for model in models:
        assert model.base_path == f'/models/{model.name}'
        assert list(model.model_version_policy.specific.versions) == [1]
        assert dict(model.version_labels) == {spec.STABLE: 1, spec.CANARY: 1}


def test_batching_and_monitoring_parse_with_upstream_field_names():
    batching = config.read(os.path.join(SERVING, config.BATCHING_CONFIG),
                           config.BatchingParameters)
    assert batching.max_batch_size.value == 8
    assert list(batching.allowed_batch_sizes)[-1] == batching.max_batch_size.value
    monitoring = config.read(os.path.join(SERVING, config.MONITORING_CONFIG),
                             config.MonitoringConfig)
    assert monitoring.prometheus_config.enable
    assert monitoring.prometheus_config.path == config.PROMETHEUS_PATH


@pytest.mark.parametrize('versions,policy', [(None, None), (2, 'latest'), ('all', 'all'),
                                             ([3, 1], 'specific')])
def test_version_policies(versions, policy):
    entry = config.model_config('m', '/models/m', versions)
    assert entry.model_version_policy.WhichOneof('policy_choice') == policy
    if policy == 'specific':
        assert list(entry.model_version_policy.specific.versions) == [1, 3]


def test_validation_matches_tf_serving_rules(tmp_path):
    twice = config.serving_config('/models', ['gmm_men_long', 'gmm_men_long'])
    with pytest.raises(config.ConfigError, match='listed twice'):
        config.validate(twice)
    relative = model_server_config_pb2.ModelServerConfig()
    relative.model_config_list.config.add(name='m', base_path='models/m',
                                          model_platform='tensorflow')
    with pytest.raises(config.ConfigError, match='absolute'):
        config.validate(relative)
    with pytest.raises(ValueError, match='absolute'):
        config.model_config('m', 'relative/path')
    broken = tmp_path / 'models.config'
    broken.write_text('model_config_list { config { nmae: "x" } }')
    with pytest.raises(config.ConfigError, match=str(broken)):
        config.read_models(broken)


def test_write_is_atomic_and_round_trips(tmp_path):
    path = tmp_path / 'models.config'
    original = config.serving_config('/m', ['rm_men_pants'], [1, 2], {'stable': 2})
    config.write(path, original)
    assert config.read_models(path) == original
    assert os.listdir(tmp_path) == ['models.config']


def _flags(args):
    return {a.split('=')[0]: a.split('=', 1)[1] for a in args if a.startswith('--')}


def test_docker_compose_and_kubernetes_run_the_same_server():
    with open(os.path.join(SERVING, 'docker-compose.yml')) as f:
        compose = yaml.safe_load(f)['services']['tfserving']
    with open(os.path.join(SERVING, 'k8s', 'deployment.yaml')) as f:
        container = yaml.safe_load(f)['spec']['template']['spec']['containers'][0]
    compose_flags, k8s_flags = _flags(compose['command']), _flags(container['args'])
    assert compose['image'] == container['image'] == 'tensorflow/serving:2.15.1'
    for flag in ('--port', '--rest_api_port', '--monitoring_config_file',
                 '--allow_version_labels_for_unavailable_models',
                 '--model_config_file_poll_wait_seconds'):
        assert compose_flags[flag] == k8s_flags[flag], flag
    # Batching every model would batch the frontend model too, whose signature takes one photo
    # of any size (merged requests fail together); it does not pay on a few cores either.
    for flags in (compose_flags, k8s_flags):
        assert flags.get('--enable_batching', 'false') == 'false' or \
            flags.get('--enable_per_model_batching_parameters') == 'true'
    # k8s' replicas poll models.config on the shared models volume, the file rollout.py writes
    # (a ConfigMap would not follow a rollout); compose's one server reads serving/'s own.
    mounts = {m['name']: m['mountPath'] for m in container['volumeMounts']}
    assert k8s_flags['--model_config_file'] == mounts['models'] + '/models.config'
    mounted = {v.split(':')[1] for v in compose['volumes']}
    for flag in ('--model_config_file', '--monitoring_config_file'):
        assert compose_flags[flag] in mounted
        assert os.path.isfile(os.path.join(SERVING, os.path.basename(compose_flags[flag])))


def _probed_models(script):
    """The model names a health or readiness script loops over."""
    return re.fullmatch(r'for m in (.*?); do .*', script).group(1).split()


def test_health_and_readiness_wait_for_every_served_model():
    with open(os.path.join(SERVING, 'docker-compose.yml')) as f:
        health = yaml.safe_load(f)['services']['tfserving']['healthcheck']['test']
    with open(os.path.join(SERVING, 'k8s', 'deployment.yaml')) as f:
        container = yaml.safe_load(f)['spec']['template']['spec']['containers'][0]
    readiness = container['readinessProbe']['exec']['command']
    assert health[:3] == ['CMD', 'bash', '-c'] and readiness[:2] == ['bash', '-c']
    # Compose reads `$$` as a literal `$`; otherwise the two scripts are the same.
    assert health[3].replace('$$', '$') == readiness[2]
    assert _probed_models(readiness[2]) == list(spec.served_model_names())
    assert 'curl' not in readiness[2]  # tensorflow/serving's image has no curl
