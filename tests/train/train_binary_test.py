"""train/train.py's --estimated_inputs and --init_weights, run as a user runs them."""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from everywear_tf import weights
from everywear_tf.data import datasets

pytestmark = pytest.mark.slow

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BINARY = os.path.join(ROOT, 'train', 'train.py')


def _train(*flags):
    environment = {k: v for k, v in os.environ.items() if k != 'TF_CPP_MIN_LOG_LEVEL'}
    return subprocess.run([sys.executable, BINARY, '--module=gmm', '--category=men_tshirts',
                           '--mode=test', '--pairs=test_pairs.txt', '--config=lite',
                           '--batch_size=2', '--log_every=1', *flags], capture_output=True,
                          text=True, timeout=300, env=environment)


def test_estimated_inputs_and_fine_tuning_from_trained_weights(tmp_path):
    data = tmp_path / 'cpvton'
    shutil.copytree(os.path.join(ROOT, 'tests', 'testdata', 'cpvton'), data)
    refused = _train(f'--dataset_root={data}', '--estimated_inputs', '--steps=1',
                     f'--output_dir={tmp_path / "a"}')
    assert refused.returncode == 1 and datasets.ESTIMATED_POSE in refused.stderr, refused.stderr
    # Estimates written as the front end would (here: copies of the drawn truth).
    shutil.copytree(data / 'test' / 'pose', data / 'test' / datasets.ESTIMATED_POSE)
    shutil.copytree(data / 'test' / 'image-parse', data / 'test' / datasets.ESTIMATED_PARSE)
    first = _train(f'--dataset_root={data}', '--estimated_inputs', '--steps=2',
                   f'--output_dir={tmp_path / "a"}')
    assert first.returncode == 0, first.stderr
    trained = tmp_path / 'a' / 'gmm_men_tshirts'
    # Two roots are read as one set (here the same one twice: 4 items), both named as the source.
    twice = _train(f'--dataset_root={data},{data}', '--estimated_inputs', '--steps=1',
                   f'--output_dir={tmp_path / "e"}')
    assert twice.returncode == 0 and 'on 4 items' in twice.stderr, twice.stderr
    manifest = json.loads((tmp_path / 'e' / 'gmm_men_tshirts' / 'manifest.json').read_text())
    assert manifest['source']['path'] == f'{data},{data}'
    # Fine-tuning starts from the trained weights (a learning rate of ~0 keeps them).
    tuned = _train(f'--dataset_root={data}', '--steps=1', '--learning_rate=1e-12',
                   f'--init_weights={trained}', f'--output_dir={tmp_path / "b"}')
    assert tuned.returncode == 0, tuned.stderr
    # (trainable weights: batch norms' moving statistics move whatever the learning rate)
    before = [w.numpy() for w in weights.load(trained).trainable_weights]
    after = [w.numpy() for w in weights.load(tmp_path / 'b' / 'gmm_men_tshirts').trainable_weights]
    for a, b in zip(before, after):
        np.testing.assert_allclose(a, b, atol=1e-6)
    fresh = _train(f'--dataset_root={data}', '--steps=1', '--learning_rate=1e-12', '--seed=5',
                   f'--output_dir={tmp_path / "c"}')
    assert fresh.returncode == 0, fresh.stderr
    fresh_weights = [w.numpy() for w in
                     weights.load(tmp_path / 'c' / 'gmm_men_tshirts').trainable_weights]
    assert any(not np.allclose(a, b, atol=1e-6) for a, b in zip(before, fresh_weights))
    # --width sets the base width, and the weights record it.
    narrow = _train(f'--dataset_root={data}', '--steps=1', '--width=4',
                    f'--output_dir={tmp_path / "f"}')
    assert narrow.returncode == 0, narrow.stderr
    assert weights.load(tmp_path / 'f' / 'gmm_men_tshirts').config.ngf == 4
    # Another config than the trained one's is refused, naming the flags.
    mismatched = _train(f'--dataset_root={data}', '--steps=1', '--width=4',
                        f'--init_weights={trained}', f'--output_dir={tmp_path / "d"}')
    assert mismatched.returncode == 1, mismatched.stderr
    assert '--init_weights' in mismatched.stderr and '--width' in mismatched.stderr
