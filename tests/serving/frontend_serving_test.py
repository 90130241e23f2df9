"""The front end served as ``frontend``: exported once, served by the dev server, and checked
against the in-process graph (gRPC bit for bit, both signatures), its SavedModel loaded here, the
server check, the deployment's readiness script, core ops only, and a front-end rollout."""

import base64
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
import urllib.error
import urllib.request

import numpy as np
import pytest
import tensorflow as tf
import yaml
from tensorflow.core.framework import types_pb2
from tensorflow_serving.apis import predict_pb2
from tensorflow_serving.apis import prediction_service_pb2_grpc

from everywear_tf import demo
from everywear_tf import spec
from everywear_tf.convert import tflite
from everywear_tf.data import images
from everywear_tf.export import exporter
from everywear_tf.export import warmup
from everywear_tf.serving import check
from everywear_tf.serving import client as client_lib
from everywear_tf.serving import config as serving_config
from everywear_tf.serving import dev_server
from everywear_tf.serving import rollout

try:
    tflite.mediapipe_model_path('pose_detection')
except tflite.MediapipeNotInstalledError as e:  # pragma: no cover - the test extra installs it
    pytest.skip(f'{e} (the front end is converted from the mediapipe wheel\'s model files)',
                allow_module_level=True)

from everywear_tf.inference.frontend import estimator  # noqa: E402

# Servers, subprocesses, exports or training: not in the fast loop (pytest -m 'not slow').
pytestmark = pytest.mark.slow
skimage_data = pytest.importorskip('skimage.data')

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PHOTOS = ('demo', 'astronaut')
SOURCE = 'the installed mediapipe wheel\'s model files'


def _photo(name):
    """uint8 [H, W, 3]: the demo photo, or scikit-image's astronaut read from the package."""
    return images.read_image(demo.PHOTO) if name == 'demo' else skimage_data.astronaut()


@pytest.fixture(scope='module')
def module():
    return estimator.FrontEndModule.from_mediapipe()


@pytest.fixture(scope='module')
def exported(module, tmp_path_factory):
    """The front end exported once, as version 1 of ``frontend``: (base dir, version dir)."""
    base = tmp_path_factory.mktemp('exported')
    path = exporter.export_module(module, base, spec.FRONTEND_MODEL, 1,
                                  manifest={'source': SOURCE})
    return base, path


def _config(base):
    return serving_config.serving_config(str(base), [spec.FRONTEND_MODEL], [1],
                                         {spec.STABLE: 1, spec.CANARY: 1})


@pytest.fixture(scope='module')
def served(exported):
    """The dev server on the export, as models.config serves it (version 1, both labels)."""
    server = dev_server.DevServer(_config(exported[0]), file_system_poll_seconds=0,
                                  allow_labels_for_unavailable=True).start()
    server.wait_until_available(spec.FRONTEND_MODEL, 1, timeout=300)
    yield server
    server.stop()


@pytest.fixture(scope='module')
def grpc_client(served):
    with client_lib.Client(f'127.0.0.1:{served.grpc_port}', timeout=120) as c:
        yield c


def _in_process(module, photo):
    return {k: v.numpy() for k, v in module.serving_default(tf.constant(photo[None])).items()}


def _assert_same(got, want):
    assert sorted(got) == sorted(spec.FRONTEND_OUTPUT_SPECS)
    for key, value in want.items():
        assert got[key].dtype == value.dtype, key
        np.testing.assert_array_equal(got[key], value, err_msg=key)


def _predict_encoded(served, png):
    request = predict_pb2.PredictRequest()
    request.model_spec.name = spec.FRONTEND_MODEL
    request.model_spec.signature_name = spec.ENCODED_SIGNATURE
    request.inputs[spec.IMAGE_BYTES].CopyFrom(tf.make_tensor_proto(np.array([png], object)))
    assert request.inputs[spec.IMAGE_BYTES].dtype == types_pb2.DT_STRING
    with check.channel(f'127.0.0.1:{served.grpc_port}') as channel:
        response = prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(
                request, timeout=120)
    assert response.model_spec.signature_name == spec.ENCODED_SIGNATURE
    return {key: tf.make_ndarray(value) for key, value in response.outputs.items()}


@pytest.mark.parametrize('name', PHOTOS)
def test_grpc_answer_is_the_in_process_graph_bit_for_bit(module, grpc_client, name):
    photo = _photo(name)
    outputs, version = grpc_client.predict(spec.FRONTEND_MODEL, {spec.IMAGE: photo[None]},
                                           with_version=True)
    assert version == 1
    assert outputs[spec.PARSE].shape == (1,) + photo.shape[:2]
    assert outputs[spec.PEOPLE][0] == 1
    _assert_same(outputs, _in_process(module, photo))


def test_encoded_signature_over_grpc_equals_the_decoded_one(served, grpc_client):
    photo = _photo('demo')
    encoded = _predict_encoded(served, images.encode_png(photo))
    _assert_same(encoded, grpc_client.predict(spec.FRONTEND_MODEL, {spec.IMAGE: photo[None]}))


def test_encoded_signature_over_rest_takes_b64(served, grpc_client):
    photo = _photo('demo')
    body = json.dumps({'signature_name': spec.ENCODED_SIGNATURE, 'inputs': {
            spec.IMAGE_BYTES: [{'b64': base64.b64encode(images.encode_png(photo)).decode()}]}})
    request = urllib.request.Request(
            f'http://127.0.0.1:{served.rest_port}/v1/models/{spec.FRONTEND_MODEL}:predict',
            body.encode(), {'Content-Type': 'application/json'})
    with urllib.request.urlopen(request, timeout=120) as response:
        outputs = json.load(response)['outputs']
    decoded = grpc_client.predict(spec.FRONTEND_MODEL, {spec.IMAGE: photo[None]})
    _assert_same({k: np.asarray(outputs[k], spec.FRONTEND_OUTPUT_SPECS[k][0]) for k in outputs},
                 decoded)


@pytest.mark.parametrize('name', PHOTOS)
def test_the_saved_model_loaded_here_agrees_with_the_in_process_graph(module, exported, name):
    photo = _photo(name)
    signature = tf.saved_model.load(exported[1]).signatures[spec.SERVING_SIGNATURE]
    loaded = {k: v.numpy() for k, v in signature(**{spec.IMAGE: tf.constant(photo[None])}).items()}
    direct = _in_process(module, photo)
    for key in (spec.PEOPLE, spec.SKIN_SPLIT, spec.FACE_FOUND):
        np.testing.assert_array_equal(loaded[key], direct[key], err_msg=key)
    present = direct[spec.POSE][0, :, 2] > 0
    np.testing.assert_array_equal(loaded[spec.POSE][0, :, 2] > 0, present)
    shift = np.abs(loaded[spec.POSE][0, present, :2] - direct[spec.POSE][0, present, :2])
    same_parse = np.mean(loaded[spec.PARSE] == direct[spec.PARSE])
    print(f'{name}: keypoints within {shift.max():.3g} px, parse {100 * same_parse:.3f}% '
          'identical')
    assert shift.max() <= 0.5
    assert same_parse >= 0.995


def test_no_person_through_the_server_names_the_photo(grpc_client):
    front_end = estimator.FrontEnd.through(grpc_client)
    with pytest.raises(estimator.NoPersonError, match='blank.png: the front end found no person'):
        front_end(np.full((480, 360, 3), 235, np.uint8), 'blank.png')


def test_server_check_sends_the_front_end_its_warmup_request(served, exported):
    inputs = warmup.realistic_inputs(spec.FRONTEND)
    assert list(inputs) == [spec.IMAGE]
    assert inputs[spec.IMAGE].dtype == np.uint8 and inputs[spec.IMAGE].shape == (1, 256, 192, 3)
    (request,) = warmup.read_warmup(exported[1])  # what the server replayed at load
    np.testing.assert_array_equal(tf.make_ndarray(request.inputs[spec.IMAGE]), inputs[spec.IMAGE])
    results = check.check(f'127.0.0.1:{served.grpc_port}', [spec.FRONTEND_MODEL],
                          timeout=120, label=spec.STABLE)
    assert all(r['ok'] for r in results), results
    assert results[0]['version'] == 1
    assert results[0]['outputs'] == {spec.POSE: ('float32', (1, 18, 3)),
                                     spec.PARSE: ('uint8', (1, 256, 192)),
                                     spec.PEOPLE: ('int32', (1,)),
                                     spec.SKIN_SPLIT: ('bool', (1,)),
                                     spec.FACE_FOUND: ('bool', (1,))}
    assert check.report(results).startswith('ok    frontend v1 ')


def _readiness_script(models, port):
    """The k8s readiness script (the compose healthcheck's too), for ``models`` on ``port``."""
    with open(os.path.join(ROOT, 'serving', 'k8s', 'deployment.yaml')) as f:
        container = yaml.safe_load(f)['spec']['template']['spec']['containers'][0]
    script = container['readinessProbe']['exec']['command'][2]
    script = re.sub(r'^for m in .*?; do', f'for m in {" ".join(models)}; do', script)
    return script.replace('/8501', f'/{port}')


def test_readiness_script_passes_on_the_served_front_end_only(served):
    def run(models):
        return subprocess.run(['bash', '-c', _readiness_script(models, served.rest_port)],
                              capture_output=True, text=True, timeout=60).returncode

    assert run([spec.FRONTEND_MODEL]) == 0
    assert run([spec.FRONTEND_MODEL, 'rm_men_pants']) != 0  # not served here


_CHECK = textwrap.dedent('''
    import sys
    from everywear_tf.export import opcheck
    missing = opcheck.unregistered_ops(sys.argv[1])
    assert 'tensorflow_addons' not in sys.modules
    print('missing:', sorted(missing))
    sys.exit(opcheck.main(['', sys.argv[1]]))
''')


def test_core_ops_only_in_a_fresh_process_without_addons(exported):
    result = subprocess.run([sys.executable, '-c', _CHECK, exported[1]], capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert 'missing: []' in result.stdout
    assert result.stdout.count('core TF ops only') == 1


@pytest.fixture
def deployment(tmp_path, exported):
    """Version 1 served as stable and canary from a copy, with the config file it reads."""
    base = tmp_path / 'exported'
    shutil.copytree(exported[0], base)
    config_path = tmp_path / 'models.config'
    serving_config.write(config_path, _config(base))
    server = dev_server.DevServer(serving_config.read_models(config_path),
                                  file_system_poll_seconds=0.2,
                                  allow_labels_for_unavailable=True).start()
    server.wait_until_available(spec.FRONTEND_MODEL, 1, timeout=300)
    log = []
    steps = rollout.Rollout(str(config_path), str(base), f'127.0.0.1:{server.grpc_port}',
                            spec.FRONTEND, timeout=300, log=log.append)
    yield server, steps, config_path, log
    steps.close()
    server.stop()


def test_front_end_rollout_publish_stage_canary_promote_rollback(module, deployment):
    server, steps, config_path, log = deployment
    assert steps.names == [spec.FRONTEND_MODEL]
    with pytest.raises(rollout.RolloutError, match='no weights directory'):
        steps.publish('unused')
    photo = _photo('demo')
    inputs = {spec.IMAGE: photo[None]}
    with client_lib.Client(f'127.0.0.1:{server.grpc_port}', timeout=120) as c:
        def served_version(label):
            return c.predict(spec.FRONTEND_MODEL, inputs, label=label, with_version=True)[1]

        version = steps.publish_module(module, source=SOURCE)
        assert version == 2
        manifest = exporter.read_manifest(os.path.join(steps.export_base,
                                                       spec.FRONTEND_MODEL, '2'))
        assert manifest['source'] == SOURCE and manifest['module'] == spec.FRONTEND
        steps.stage(2)
        steps.stage(2)
        assert log[-1] == 'stage version 2: already done'
        assert steps.status()[spec.FRONTEND_MODEL]['versions'] == {1: 'AVAILABLE',
                                                                   2: 'AVAILABLE'}
        steps.canary(2)
        assert (served_version(spec.CANARY), served_version(spec.STABLE)) == (2, 1)
        steps.promote()
        assert (served_version(spec.CANARY), served_version(spec.STABLE)) == (2, 2)
        _assert_same(c.predict(spec.FRONTEND_MODEL, inputs, version=2), _in_process(module, photo))
        assert steps.rollback() == 1  # and unloads 2, which no label points at any more
        assert (served_version(spec.CANARY), served_version(spec.STABLE)) == (1, 1)
        assert steps.rollback() == 1
        assert log[-1] == 'roll back to 1: already done'
    written = serving_config.read_models(config_path).model_config_list.config
    assert [m.name for m in written] == [spec.FRONTEND_MODEL]
    assert list(written[0].model_version_policy.specific.versions) == [1]
    assert dict(written[0].version_labels) == {spec.STABLE: 1, spec.CANARY: 1}
    with open(steps.history_path) as f:
        history = json.load(f)
    assert history[spec.FRONTEND] == [1]
    assert history['rollbacks'][spec.FRONTEND] == {'from': 2, 'to': 1}
