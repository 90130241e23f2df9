"""Export round trips, signatures, warmup files, op compatibility and atomic publishing."""

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf

from everywear_tf import configs
from everywear_tf import spec
from everywear_tf.data import representation
from everywear_tf.export import exporter
from everywear_tf.export import opcheck
from everywear_tf.export import warmup
from everywear_tf.models import factory
from everywear_tf.serving import signature_inputs

from tests.models.randomize import randomize

# Servers, subprocesses, exports or training: not in the fast loop (pytest -m 'not slow').
pytestmark = pytest.mark.slow

CATEGORY = spec.MEN_TSHIRTS


def _model(module, seed=0, **overrides):
    model = factory.build(configs.get(module, configs.LITE, **overrides))
    randomize(model, seed)
    return model


@pytest.fixture(scope='module')
def exported(tmp_path_factory, lite_exports):
    """One lite export per module, shared by the read-only tests below (the session's export of
    these weights, tests/conftest.py)."""
    base = tmp_path_factory.mktemp('serving')
    return {module: (_model(module), lite_exports(base, module, CATEGORY, seed=0))
            for module in spec.MODULES}


def _quantize_signed(x):
    return np.floor(np.clip((np.asarray(x, np.float64) + 1) * 127.5, 0, 255) + 0.5)


def _quantize_unit(x):
    return np.floor(np.clip(np.asarray(x, np.float64), 0, 1) * 255 + 0.5)


def _keras_reference(module, model, inputs):
    """The in-memory Keras path on the same inputs, floats before quantisation."""
    if module == spec.GMM:
        variant = model.config.variant
        out = model((representation.gmm_agnostic(inputs['person'], inputs['parse'],
                                                 inputs['keypoints'], variant),
                     representation.gmm_cloth(inputs['cloth'], inputs['cloth_mask'], variant),
                     representation.to_signed(inputs['cloth']),
                     representation.binary_cloth_mask(inputs['cloth_mask'])), training=False)
        return {spec.THETA: (out['theta'], None), spec.GRID: (out['grid'], None),
                spec.WARPED_CLOTH: (out['warped_cloth'], _quantize_signed),
                spec.WARPED_MASK: (out['warped_mask'][..., 0], _quantize_unit)}
    if module == spec.EDM:
        out = model(representation.edm_input(inputs['person'], inputs['parse'],
                                             inputs['keypoints'], inputs['cloth']),
                    training=False)
        return {spec.COARSE: (out['image'], _quantize_signed),
                spec.MASK: (out['mask'][..., 0], _quantize_unit)}
    out = model((representation.to_signed(inputs['warped_cloth']),
                 representation.to_signed(inputs['coarse']),
                 (inputs['mask'].astype(np.float32) / 255)[..., None]))
    return {spec.TRYON: (out['tryon'], _quantize_signed),
            spec.ALPHA: (out['alpha'][..., 0], _quantize_unit),
            spec.TPS_MASK: (out['tps_mask'], _quantize_unit)}


@pytest.mark.parametrize('module', spec.MODULES)
def test_round_trip_matches_keras(exported, module):
    model, version_dir = exported[module]
    signature = tf.saved_model.load(version_dir).signatures[spec.SERVING_SIGNATURE]
    inputs = warmup.realistic_inputs(module, batch=2, seed=11)
    got = signature(**{k: tf.constant(v) for k, v in inputs.items()})
    for key, (value, quantize) in _keras_reference(module, model, inputs).items():
        if quantize is None:
            np.testing.assert_allclose(got[key].numpy(), value.numpy(), atol=1e-5, err_msg=key)
        else:
            diff = np.abs(got[key].numpy().astype(np.float64) - quantize(value.numpy()))
            assert diff.max() <= 1, (key, diff.max())


@pytest.mark.parametrize('module', spec.MODULES)
def test_signature_equals_spec_and_rejects_bad_inputs(exported, module):
    signature = tf.saved_model.load(exported[module][1]).signatures[spec.SERVING_SIGNATURE]
    inputs = signature.structured_input_signature[1]
    assert sorted(inputs) == sorted(spec.MODULE_INPUTS[module])
    for key, tensor_spec in inputs.items():
        dtype, shape = spec.INPUT_SPECS[key]
        assert (tensor_spec.dtype.name, tuple(tensor_spec.shape)) == (dtype, shape)
    outputs = signature.structured_outputs
    assert sorted(outputs) == sorted(spec.MODULE_OUTPUTS[module])
    for key, tensor in outputs.items():
        dtype, shape = spec.OUTPUT_SPECS[key]
        assert (tensor.dtype.name, tuple(tensor.shape)) == (dtype, shape)
    good = warmup.realistic_inputs(module)
    first = spec.MODULE_INPUTS[module][0]
    for bad in ({**good, first: good[first].astype(np.float32)},
                {**good, first: good[first][:, :100]}):
        with pytest.raises((TypeError, ValueError, tf.errors.InvalidArgumentError)):
            signature(**{k: tf.constant(v) for k, v in bad.items()})
        with pytest.raises(signature_inputs.SignatureInputError,
                           match=f"{module} input '{first}' must be"):
            signature_inputs.check_inputs(module, bad)
    assert signature_inputs.check_inputs(module, good).keys() == good.keys()


def test_input_check_messages():
    good = warmup.realistic_inputs(spec.RM, batch=2)
    with pytest.raises(signature_inputs.SignatureInputError, match=r"missing \['mask'\]"):
        signature_inputs.check_inputs(spec.RM, {k: v for k, v in good.items() if k != 'mask'})
    with pytest.raises(signature_inputs.SignatureInputError, match=r"uint8 \[N,256,192\], got "
                       r"float64 \[2,256,192\]"):
        signature_inputs.check_inputs(spec.RM, {**good, 'mask': good['mask'] / 255.0})
    with pytest.raises(signature_inputs.SignatureInputError, match='batch size'):
        signature_inputs.check_inputs(spec.RM, {**good, 'mask': good['mask'][:1]})


@pytest.mark.parametrize('module', spec.MODULES)
def test_warmup_requests_run_against_the_signature(exported, module):
    version_dir = exported[module][1]
    requests = warmup.read_warmup(version_dir)
    assert len(requests) == 1
    request = requests[0]
    assert request.model_spec.name == spec.model_name(module, CATEGORY)
    assert request.model_spec.signature_name == spec.SERVING_SIGNATURE
    signature = tf.saved_model.load(version_dir).signatures[spec.SERVING_SIGNATURE]
    inputs = {k: tf.make_ndarray(v) for k, v in request.inputs.items()}
    assert all(v.shape[0] == 1 for v in inputs.values())
    out = signature(**{k: tf.constant(v) for k, v in inputs.items()})
    assert sorted(out) == sorted(spec.MODULE_OUTPUTS[module])


_CHECK = textwrap.dedent('''
    import sys
    from everywear_tf.export import opcheck
    code = opcheck.main([''] + sys.argv[1:])
    assert 'tensorflow_addons' not in sys.modules
    sys.exit(code)
''')


def test_core_ops_only_in_a_fresh_process_without_addons(exported):
    dirs = [exported[module][1] for module in spec.MODULES]
    result = subprocess.run([sys.executable, '-c', _CHECK] + dirs, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count('core TF ops only') == 3


_BAD_EXPORT = textwrap.dedent('''
    import sys
    import tensorflow as tf
    import tensorflow_addons as tfa

    class Bad(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, 8, 8, 1]),
                                      tf.TensorSpec([None, 8, 8, 2])])
        def serving_default(self, image, warp):
            return {'out': tfa.image.resampler(image, warp)}

    bad = Bad()
    tf.saved_model.save(bad, sys.argv[1], signatures={'serving_default': bad.serving_default})
''')


def test_the_same_check_catches_an_addons_export(tmp_path):
    bad = str(tmp_path / 'bad' / '1')
    made = subprocess.run([sys.executable, '-c', _BAD_EXPORT, bad], capture_output=True,
                          text=True, timeout=300)
    assert made.returncode == 0, made.stderr
    result = subprocess.run([sys.executable, '-c', _CHECK, bad], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 1
    assert 'Addons>Resampler' in result.stdout


def test_versions_auto_increment_and_refuse_overwrite(tmp_path):
    model = _model(spec.RM)
    name = spec.model_name(spec.RM, spec.MEN_PANTS)
    assert exporter.export(model, tmp_path, name).endswith(os.sep + '1')
    assert exporter.export(model, tmp_path, name, version='auto').endswith(os.sep + '2')
    with pytest.raises(exporter.ExportError, match='already exists'):
        exporter.export(model, tmp_path, name, version=2)
    replaced = exporter.export(_model(spec.RM, seed=5), tmp_path, name, version=2, overwrite=True)
    assert exporter.read_manifest(replaced)['version'] == 2
    assert exporter.versions(tmp_path / name) == [1, 2]
    assert sorted(os.listdir(tmp_path / name)) == ['1', '2']
    with pytest.raises(exporter.ExportError, match='serves a GMM'):
        exporter.export(model, tmp_path, spec.model_name(spec.GMM, spec.MEN_PANTS))
    with pytest.raises(exporter.ExportError, match='positive integer'):
        exporter.export(model, tmp_path, name, version='latest')


def test_a_crash_during_export_leaves_no_partial_version(tmp_path, monkeypatch):
    model = _model(spec.RM)
    name = spec.model_name(spec.RM, spec.MEN_LONG)

    def crash(*args, **kwargs):
        raise KeyboardInterrupt('simulated crash while writing warmup')

    monkeypatch.setattr(warmup, 'write_warmup', crash)
    with pytest.raises(KeyboardInterrupt):
        exporter.export(model, tmp_path, name)
    assert os.listdir(tmp_path / name) == []


def test_a_killed_export_leaves_only_a_hidden_directory_that_the_next_export_removes(tmp_path):
    model_dir = tmp_path / spec.model_name(spec.RM, spec.MEN_LONG)
    stale = model_dir / '.1.999999999-deadbeef.tmp'
    (stale / 'variables').mkdir(parents=True)
    assert exporter.versions(model_dir) == []  # TF Serving ignores non-numeric names
    exporter.export(_model(spec.RM), tmp_path, model_dir.name)
    assert sorted(os.listdir(model_dir)) == ['1']


def _binary(*args):
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    return subprocess.run([sys.executable, os.path.join(root, 'export', 'export_saved_model.py'),
                           *args], capture_output=True, text=True, timeout=300)


def test_export_binary(tmp_path):
    from everywear_tf import weights
    model = _model(spec.RM, seed=9)
    weights.save(model, tmp_path / 'weights' / 'rm_men_pants')
    source = tmp_path / 'weights' / 'rm_men_pants'
    ok = _binary('--model_name=rm_men_pants', f'--weights_dir={source}',
                 f'--base_dir={tmp_path / "serving"}')
    assert ok.returncode == 0, ok.stderr
    assert exporter.versions(tmp_path / 'serving' / 'rm_men_pants') == [1]
    assert 'weights' in exporter.read_manifest(str(tmp_path / 'serving' / 'rm_men_pants' / '1'))[
            'source']
    wrong = _binary('--model_name=gmm_men_pants', f'--weights_dir={source}',
                    f'--base_dir={tmp_path / "serving"}')
    assert wrong.returncode == 1 and 'export: error:' in wrong.stderr
    assert 'holds a RM, expected a GMM' in wrong.stderr
    both = _binary('--all', '--model_name=rm_men_pants', '--random_weights')
    assert both.returncode == 2 and 'exactly one of --all and --model_name' in both.stderr


_RUN_FRESH = textwrap.dedent('''
    import sys
    import tensorflow as tf
    from everywear_tf import spec
    from everywear_tf.export import opcheck
    from everywear_tf.export import warmup
    for module, directory in zip(spec.MODULES, sys.argv[1:]):
        assert opcheck.unregistered_ops(directory) == [], directory
        signature = tf.saved_model.load(directory).signatures[spec.SERVING_SIGNATURE]
        inputs = warmup.realistic_inputs(module, batch=2)
        out = signature(**{k: tf.constant(v) for k, v in inputs.items()})
        for key in spec.MODULE_OUTPUTS[module]:
            dtype, shape = spec.OUTPUT_SPECS[key]
            assert out[key].dtype.name == dtype and out[key].shape[1:] == shape[1:], key
    assert 'tensorflow_addons' not in sys.modules
    print('ran', len(sys.argv) - 1)
''')


@pytest.fixture(scope='module')
def exported_bfloat16(tmp_path_factory, exported):
    """The same lite weights as ``exported``, each as version 2 in bfloat16."""
    base = tmp_path_factory.mktemp('serving_bf16')
    return {module: exporter.export(exported[module][0], base,
                                    spec.model_name(module, CATEGORY), version=2,
                                    precision='bfloat16')
            for module in spec.MODULES}


@pytest.mark.parametrize('module', spec.MODULES)
def test_bfloat16_export_keeps_the_signature_and_stays_close(exported, exported_bfloat16, module):
    model, float32_dir = exported[module]
    version_dir = exported_bfloat16[module]
    assert exporter.read_manifest(version_dir)['precision'] == 'bfloat16'
    assert exporter.read_manifest(float32_dir)['precision'] == 'float32'
    reduced = tf.saved_model.load(version_dir).signatures[spec.SERVING_SIGNATURE]
    reference = tf.saved_model.load(float32_dir).signatures[spec.SERVING_SIGNATURE]
    for got, expected in ((reduced.structured_input_signature[1],
                           reference.structured_input_signature[1]),
                          (reduced.structured_outputs, reference.structured_outputs)):
        assert {k: (v.dtype, tuple(v.shape)) for k, v in got.items()} == {
                k: (v.dtype, tuple(v.shape)) for k, v in expected.items()}
    inputs = warmup.realistic_inputs(module, batch=2, seed=3)
    args = {k: tf.constant(v) for k, v in inputs.items()}
    got, expected = reduced(**args), reference(**args)
    for key in spec.MODULE_OUTPUTS[module]:
        diff = np.abs(got[key].numpy().astype(np.float64) - expected[key].numpy())
        assert diff.mean() < (2.0 if got[key].dtype == tf.uint8 else 0.02), (key, diff.mean())
    ops = opcheck.saved_model_ops(version_dir)
    assert 'Cast' in ops and 'Conv2D' in ops


def test_bfloat16_exports_run_in_a_fresh_process_without_addons_or_onednn(exported_bfloat16):
    dirs = [exported_bfloat16[module] for module in spec.MODULES]
    # Without oneDNN, TensorFlow's own kernels run: nothing may depend on oneDNN's bfloat16 ones.
    environment = {**os.environ, 'TF_ENABLE_ONEDNN_OPTS': '0'}
    result = subprocess.run([sys.executable, '-c', _RUN_FRESH] + dirs, capture_output=True,
                            text=True, timeout=300, env=environment)
    assert result.returncode == 0, result.stdout + result.stderr
    assert 'ran 3' in result.stdout


def test_export_binary_writes_the_bfloat16_variant(tmp_path):
    from everywear_tf import weights
    weights.save(_model(spec.RM, seed=4), tmp_path / 'weights' / 'rm_men_pants')
    common = ['--model_name=rm_men_pants', f'--weights_dir={tmp_path / "weights" / "rm_men_pants"}',
              f'--base_dir={tmp_path / "serving"}']
    assert _binary(*common).returncode == 0
    # --force: on a CPU without native bfloat16 the export is refused otherwise
    # (tests/hardware_test.py checks the refusal); with it, it warns and goes ahead.
    ok = _binary(*common, '--precision=bfloat16', '--force')
    assert ok.returncode == 0, ok.stderr
    manifest = exporter.read_manifest(str(tmp_path / 'serving' / 'rm_men_pants' / '2'))
    assert manifest['precision'] == 'bfloat16'
    with pytest.raises(exporter.ExportError, match='precision must be one of'):
        exporter.export(_model(spec.RM), tmp_path, 'rm_men_long', precision='float16')
