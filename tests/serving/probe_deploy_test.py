"""The deploy files' probes, run as written against the dev server serving every model name.

docker-compose's healthcheck and the Kubernetes readiness probe are one bash script (the
tensorflow/serving:2.15.1 image has bash and grep, no curl, wget or python) that asks
``GET /v1/models/<name>`` for every served model and needs an AVAILABLE version in each; the
scripts run here unchanged but for the REST port. Liveness and start-up are Kubernetes' gRPC
probes on grpc.health.v1, which tensorflow_model_server 2.15.1 serves with
``--enable_grpc_healthcheck_service`` (server.cc: SERVING once the server runs).
"""

import os
import shutil
import subprocess

import grpc
import pytest
import yaml

from everywear_tf import spec
from everywear_tf.serving import config as serving_config
from everywear_tf.serving import dev_server

# Servers, subprocesses, exports or training: not in the fast loop (pytest -m 'not slow').
pytestmark = pytest.mark.slow

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RM = spec.model_name(spec.RM, spec.MEN_PANTS)


def _deployment():
    with open(os.path.join(ROOT, 'serving', 'k8s', 'deployment.yaml')) as f:
        return yaml.safe_load(f)['spec']['template']['spec']['containers'][0]


def _compose():
    with open(os.path.join(ROOT, 'serving', 'docker-compose.yml')) as f:
        return yaml.safe_load(f)['services']['tfserving']


def _scripts(port):
    """The compose healthcheck (``$$`` read as compose reads it) and the k8s readiness
    command, their REST port changed to ``port``."""
    compose = _compose()['healthcheck']['test']
    readiness = _deployment()['readinessProbe']['exec']['command']
    assert compose[:3] == ['CMD', 'bash', '-c'] and readiness[:2] == ['bash', '-c']
    return {'compose': compose[3].replace('$$', '$').replace('/8501', f'/{port}'),
            'k8s': readiness[2].replace('/8501', f'/{port}')}


def _exit_codes(port):
    return {where: subprocess.run(['bash', '-c', script], capture_output=True, timeout=60,
                                  env={'PATH': '/usr/bin:/bin'}).returncode
            for where, script in _scripts(port).items()}


@pytest.fixture(scope='module')
def tree(tmp_path_factory, lite_exports):
    """Every served model name, each a copy of one small SavedModel (the probes read status
    only)."""
    exports = tmp_path_factory.mktemp('exports')
    lite_exports(exports, spec.RM, None, seed=1, name=RM)
    root = tmp_path_factory.mktemp('models')
    for name in spec.served_model_names():
        shutil.copytree(exports / RM / '1', root / name / '1')
    return root


def test_probes_pass_only_while_every_model_has_an_available_version(tree, tmp_path):
    names = list(spec.served_model_names())
    config = serving_config.serving_config(str(tree), names)
    with dev_server.DevServer(config, file_system_poll_seconds=0) as server:
        assert _exit_codes(server.rest_port) == {'compose': 0, 'k8s': 0}
        # One model's only version goes away: it is END (TF Serving answers GET status 200
        # for it too, so a status code alone would pass).
        last = names[-1]
        parked = tmp_path / 'parked'
        shutil.move(tree / last / '1', parked)
        try:
            server.manager.poll()
            assert [s for _, s, _ in server.manager.status(last)] == [
                    dev_server.manager_lib.State.END]
            assert _exit_codes(server.rest_port) == {'compose': 1, 'k8s': 1}
        finally:
            shutil.move(parked, tree / last / '1')
        server.manager.poll()
        assert _exit_codes(server.rest_port) == {'compose': 0, 'k8s': 0}
    # Served names not configured at all (404), then no server.
    config = serving_config.serving_config(str(tree), names[:1])
    with dev_server.DevServer(config, file_system_poll_seconds=0) as server:
        port = server.rest_port
        assert _exit_codes(port) == {'compose': 1, 'k8s': 1}
    assert _exit_codes(port) == {'compose': 1, 'k8s': 1}


def _health(port, service=''):
    channel = grpc.insecure_channel(f'127.0.0.1:{port}')
    check = channel.unary_unary(f'/{dev_server.HEALTH_SERVICE}/Check',
                                request_serializer=dev_server.HealthCheckRequest.SerializeToString,
                                response_deserializer=dev_server.HealthCheckResponse.FromString)
    try:
        return check(dev_server.HealthCheckRequest(service=service), timeout=30).status
    finally:
        channel.close()


def test_liveness_and_start_up_are_grpc_health_checks_tf_serving_2_15_answers(tree):
    container, compose = _deployment(), _compose()
    flag = '--enable_grpc_healthcheck_service=true'
    assert flag in container['args'] and flag in compose['command']
    grpc_port = int(next(a for a in container['args'] if a.startswith('--port=')).split('=')[1])
    for probe in ('livenessProbe', 'startupProbe'):
        assert container[probe]['grpc'] == {'port': grpc_port}, probe
    assert container['startupProbe']['periodSeconds'] * container['startupProbe'][
            'failureThreshold'] >= 600  # the start-up models load before the port opens
    config = serving_config.serving_config(str(tree), [RM])
    with dev_server.DevServer(config, file_system_poll_seconds=0,
                              enable_grpc_healthcheck_service=True) as server:
        for service in dev_server.HEALTH_SERVICES:
            assert _health(server.grpc_port, service) == dev_server.HealthCheckResponse.SERVING
        with pytest.raises(grpc.RpcError) as raised:
            _health(server.grpc_port, 'tensorflow.serving.Nope')
        assert raised.value.code() == grpc.StatusCode.NOT_FOUND
    with dev_server.DevServer(config, file_system_poll_seconds=0) as server:
        with pytest.raises(grpc.RpcError) as raised:  # off unless asked for, as in TF Serving
            _health(server.grpc_port)
        assert raised.value.code() == grpc.StatusCode.UNIMPLEMENTED
