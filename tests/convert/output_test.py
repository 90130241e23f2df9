"""Converted weights directories: manifest, round trip, refusals; checkpoints/convert.py end to
end in a subprocess."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from everywear_tf import configs
from everywear_tf import errors as base_errors
from everywear_tf import spec
from everywear_tf import weights
from everywear_tf.convert import cpvton_torch
from everywear_tf.convert import errors
from everywear_tf.convert import output
from everywear_tf.convert import viton_tf1
from everywear_tf.models import blocks

from tests.convert import cpvton_torch_test
from tests.convert import pth_writer
from tests.convert import viton_tf1_test
from tests.data.fixtures import path
from tests.testdata.convert import torch_inputs

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
GMM_CONFIG = cpvton_torch_test._config(configs.CPVTON)
FIXTURE = path('convert', 'gmm_cpvton_zip.pth')


def _same_weights(a, b):
    a, b = blocks.named_weights(a), blocks.named_weights(b)
    assert sorted(a) == sorted(b)
    for name in a:
        np.testing.assert_array_equal(a[name].numpy(), b[name].numpy(), err_msg=name)


def test_round_trip_and_manifest(tmp_path):
    model = cpvton_torch.convert(FIXTURE, GMM_CONFIG)
    directory = output.write_converted(model, tmp_path / 'checkpoints' / 'gmm', FIXTURE,
                                       spec.GMM, GMM_CONFIG)
    assert directory == str(tmp_path / 'checkpoints' / 'gmm')
    assert sorted(os.listdir(tmp_path / 'checkpoints')) == ['gmm']  # no temporary left behind
    manifest = json.load(open(os.path.join(directory, 'manifest.json')))
    assert manifest['module'] == 'gmm' and manifest['converted_from'] == 'cpvton_torch'
    assert manifest['converter_version'] == output.CONVERTER_VERSION
    assert manifest['config'] == configs.to_dict(GMM_CONFIG)
    assert manifest['source']['path'] == FIXTURE
    assert manifest['source']['sha256'] == weights.sha256(FIXTURE)
    assert manifest['source_files'] == [{'name': 'gmm_cpvton_zip.pth',
                                         'bytes': os.path.getsize(FIXTURE),
                                         'sha256': weights.sha256(FIXTURE)}]
    assert manifest['parameters'] == model.count_params()
    assert manifest['trainable_parameters'] == sum(int(np.prod(v.shape))
                                                   for v in model.trainable_weights)
    assert manifest['created'].endswith('+00:00')
    loaded = output.load_converted(directory, module=spec.GMM, config=GMM_CONFIG)
    assert loaded.config == GMM_CONFIG
    _same_weights(model, loaded)
    agnostic, cloth = (x.transpose(0, 2, 3, 1) for x in torch_inputs.inputs(3))
    np.testing.assert_allclose(loaded.regress(agnostic, cloth, training=False).numpy(),
                               np.load(path('convert', 'gmm_cpvton_theta.npy')), atol=1e-5)
    _same_weights(model, weights.load(directory))  # the exporter's loader reads it too


def test_overwrite_is_refused_unless_asked(tmp_path):
    model = cpvton_torch.convert(FIXTURE, GMM_CONFIG)
    directory = output.write_converted(model, tmp_path / 'gmm', FIXTURE, spec.GMM, GMM_CONFIG)
    stamp = os.path.getmtime(os.path.join(directory, 'manifest.json'))
    with pytest.raises(weights.WeightsError, match='already exists; pass overwrite'):
        output.write_converted(model, directory, FIXTURE, spec.GMM, GMM_CONFIG)
    with pytest.raises(weights.WeightsError, match='already exists'):
        output.convert_to_directory(FIXTURE, 'cpvton_torch', GMM_CONFIG, directory)
    assert os.path.getmtime(os.path.join(directory, 'manifest.json')) == stamp
    output.write_converted(model, directory, FIXTURE, spec.GMM, GMM_CONFIG, overwrite=True)
    assert sorted(os.listdir(tmp_path)) == ['gmm']


def test_inconsistent_arguments_are_programming_errors(tmp_path):
    model = cpvton_torch.convert(FIXTURE, GMM_CONFIG)
    with pytest.raises(ValueError, match='the model is a GMM, not a EDM'):
        output.write_converted(model, tmp_path / 'x', FIXTURE, spec.EDM, GMM_CONFIG)
    with pytest.raises(ValueError, match='was built from'):
        output.write_converted(model, tmp_path / 'x', FIXTURE, spec.GMM,
                               configs.get(spec.GMM, configs.LITE))
    with pytest.raises(ValueError, match='does not convert into a gmm'):
        output.write_converted(model, tmp_path / 'x', FIXTURE, spec.GMM, GMM_CONFIG,
                               source_format='viton_stage1')
    with pytest.raises(ValueError, match='viton_stage2 converts into a RM'):
        output.convert(FIXTURE, 'viton_stage2', GMM_CONFIG)
    assert not (tmp_path / 'x').exists()


def test_loading_refuses_what_does_not_fit(tmp_path):
    rng = np.random.default_rng(0)
    config = viton_tf1_test.RM_CONFIG
    tensors = viton_tf1_test._stage2_tensors(config, rng, {})
    prefix = viton_tf1_test._write_tf1(str(tmp_path / 'tf1' / 'model-6000'), tensors)
    directory = output.convert_to_directory(prefix, 'viton_stage2', config, tmp_path / 'rm')
    manifest = weights.read_manifest(directory)
    assert manifest['source']['path'] == prefix and 'sha256' not in manifest['source']
    assert [f['name'] for f in manifest['source_files']] == [
            'model-6000.index', 'model-6000.data-00000-of-00001']
    model = output.load_converted(directory)
    np.testing.assert_array_equal(model.final.bias.numpy(),
                                  tensors['refine_generator/g_1024_final/biases'])
    with pytest.raises(weights.WeightsError, match='holds a RM, expected a GMM'):
        output.load_converted(directory, module=spec.GMM)
    with pytest.raises(weights.WeightsError, match="filters: 8 where 16 was expected"):
        output.load_converted(directory, config=configs.get(spec.RM, configs.LITE, filters=16))
    with pytest.raises(weights.WeightsError, match='not a network for EdmConfig'):
        output.load_converted(directory, config=configs.get(spec.EDM, configs.LITE))
    manifest_path = os.path.join(directory, weights.MANIFEST)
    original = json.load(open(manifest_path))
    for change, message in ((('config', 'filters', 16), 'does not fit the manifest config'),
                            (('converter_version', None, 99), 'converter_version 99'),
                            (('converted_from', None, 'cpvton_torch'), "but module 'rm'"),
                            (('module', None, 'tom'), "unknown module 'tom'")):
        document = json.loads(json.dumps(original))
        key, field, value = change
        if field:
            document[key][field] = value
        else:
            document[key] = value
        json.dump(document, open(manifest_path, 'w'))
        with pytest.raises(weights.WeightsError, match=message):
            output.load_converted(directory)
    os.remove(manifest_path)
    with pytest.raises(base_errors.InputNotFoundError, match='manifest.json'):
        output.load_converted(directory)
    with pytest.raises(base_errors.InputNotFoundError, match='no such weights directory'):
        output.load_converted(tmp_path / 'absent')


def _convert(*args):
    return subprocess.run([sys.executable, os.path.join('checkpoints', 'convert.py'), *args],
                          capture_output=True, text=True, timeout=300, cwd=ROOT)


@pytest.mark.slow
def test_the_binary_end_to_end(tmp_path):
    """A lite CP-VTON .pth (written as torch 0.4 did, legacy format) at the binary's lite
    config: converted, loadable, every weight in place; then a full-size mismatch and a file
    that is no checkpoint, each a `convert: error:` and exit status 1."""
    config = configs.get(spec.GMM, configs.LITE)
    state = cpvton_torch_test._random_state(config, seed=4)
    source = pth_writer.write_legacy(str(tmp_path / 'gmm_final.pth'), pth_writer.tensors(state))
    out = tmp_path / 'checkpoints' / 'cpvton_gmm'
    result = _convert('--format=cpvton_torch', '--config=lite', f'--source={source}',
                      f'--output_dir={out}')
    assert result.returncode == 0, result.stderr
    assert f'wrote {out}' in result.stdout
    model = output.load_converted(out, module=spec.GMM, config=config)
    ours = blocks.named_weights(model)
    for rule in cpvton_torch.table().rules:
        np.testing.assert_array_equal(ours[rule.target].numpy(), rule.apply(state[rule.source]))
    assert weights.read_manifest(out)['source']['sha256'] == weights.sha256(source)

    mismatch = _convert('--format=cpvton_torch', '--config=full', f'--source={source}',
                        f'--output_dir={tmp_path / "full"}')
    assert mismatch.returncode == 1
    lines = mismatch.stderr.strip().splitlines()
    first = [i for i, line in enumerate(lines) if line.startswith('convert: error:')]
    assert len(first) == 1
    summary = lines[first[0]]
    assert source in summary and 'does not match the network (89 problems)' in summary
    assert '... and 77 more' in summary
    listed = lines[first[0] + 2:]
    assert len(listed) == 89 and all(line.startswith('  wrong shapes: ') for line in listed)
    assert not (tmp_path / 'full').exists()

    garbage = tmp_path / 'notes.pth'
    garbage.write_text('not a checkpoint')
    bad = _convert('--format=cpvton_torch', f'--source={garbage}',
                   f'--output_dir={tmp_path / "bad"}')
    assert bad.returncode == 1
    assert bad.stderr.strip().splitlines()[-1].startswith(f'convert: error: {garbage}: ')
    assert not (tmp_path / 'bad').exists()


def test_stage1_writes_the_prefix_files_into_the_manifest(tmp_path):
    rng = np.random.default_rng(1)
    tensors = viton_tf1_test._stage1_tensors(viton_tf1_test.EDM_CONFIG, rng)
    prefix = viton_tf1_test._write_tf1(str(tmp_path / 'model-15000'), tensors)
    directory = output.convert_to_directory(prefix + '.index', viton_tf1.STAGE1_FORMAT,
                                            viton_tf1_test.EDM_CONFIG, tmp_path / 'edm')
    manifest = weights.read_manifest(directory)
    assert manifest['source']['path'] == prefix
    assert {f['name'] for f in manifest['source_files']} == {
            'model-15000.index', 'model-15000.data-00000-of-00001'}
    with pytest.raises(errors.CheckpointNotFoundError):
        output.convert_to_directory(str(tmp_path / 'nothing'), viton_tf1.STAGE1_FORMAT,
                                    viton_tf1_test.EDM_CONFIG, tmp_path / 'edm2')
    assert not (tmp_path / 'edm2').exists()
