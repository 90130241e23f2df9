"""Weights directories: round trip, manifest checks, atomic writes; the convert binary."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from everywear_tf import configs
from everywear_tf import errors
from everywear_tf import spec
from everywear_tf import weights
from everywear_tf.models import factory

from tests.data.fixtures import path
from tests.models.randomize import randomize

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_round_trip_restores_every_weight(tmp_path):
    model = factory.build(configs.get(spec.EDM, configs.LITE, ngf=4))
    randomize(model, seed=1)
    directory = weights.save(model, tmp_path / 'edm', source=path('person.png'))
    manifest = weights.read_manifest(directory)
    assert manifest['module'] == spec.EDM and manifest['config']['ngf'] == 4
    assert len(manifest['source']['sha256']) == 64
    loaded = weights.load(directory, module=spec.EDM)
    for a, b in zip(model.weights, loaded.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_refusals_and_errors(tmp_path):
    model = factory.build(configs.get(spec.RM, configs.LITE))
    directory = weights.save(model, tmp_path / 'rm')
    with pytest.raises(weights.WeightsError, match='already exists'):
        weights.save(model, directory)
    weights.save(model, directory, overwrite=True)
    assert sorted(os.listdir(tmp_path)) == ['rm']
    with pytest.raises(weights.WeightsError, match='holds a RM, expected a GMM'):
        weights.load(directory, module=spec.GMM)
    manifest = os.path.join(directory, weights.MANIFEST)
    document = json.load(open(manifest))
    document['config']['filters'] = 16
    json.dump(document, open(manifest, 'w'))
    with pytest.raises(weights.WeightsError, match='does not fit the manifest'):
        weights.load(directory)
    with pytest.raises(errors.InputNotFoundError):
        weights.load(tmp_path / 'nothing')


def _convert(*args):
    return subprocess.run([sys.executable, os.path.join(ROOT, 'checkpoints', 'convert.py'),
                           *args], capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_convert_binary_end_to_end(tmp_path):
    out = tmp_path / 'gmm'
    common = ['--format=cpvton_torch', '--config=lite']
    result = _convert(*common, f'--source={path("convert", "gmm_cpvton_zip.pth")}',
                      f'--output_dir={out}')
    # The lite config is ngf 8 at 256x192; the fixture is ngf 4 at 128x64: a clear mismatch.
    assert result.returncode == 1
    error = [line for line in result.stderr.splitlines() if line.startswith('convert: error:')]
    assert len(error) == 1 and 'does not match' in error[0] and '... and' in error[0]
    assert 'variant=' not in result.stderr  # the hint is for cloth-branch mismatches only
    bad = _convert(*common, f'--source={tmp_path / "none.pth"}', f'--output_dir={out}')
    assert bad.returncode == 1 and 'no such file' in bad.stderr
    assert not out.exists()


@pytest.mark.slow
def test_convert_binary_writes_a_loadable_directory(tmp_path):
    from tests.convert import viton_tf1_test
    rng = np.random.default_rng(0)
    stage1 = viton_tf1_test._stage1_tensors(configs.get(spec.EDM, configs.LITE, ngf=4), rng)
    tensors = viton_tf1_test._stage2_tensors(configs.get(spec.RM, configs.LITE), rng, stage1)
    prefix = viton_tf1_test._write_tf1(str(tmp_path / 'model-6000'), tensors)
    out = tmp_path / 'rm'
    result = _convert('--format=viton_stage2', '--config=lite', f'--source={prefix}',
                      f'--output_dir={out}')
    assert result.returncode == 0, result.stderr
    model = weights.load(out, module=spec.RM)
    np.testing.assert_array_equal(
            model.final.bias.numpy(), tensors['refine_generator/g_1024_final/biases'])
    assert weights.read_manifest(out)['converted_from'] == 'viton_stage2'
