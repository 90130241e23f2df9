"""train/make_tfrecords.py: shards and their manifest, a resumed run skips what is written, and
shards made from something else are refused, never mixed."""

import json
import os
import subprocess
import sys

import pytest

from everywear_tf.data import tfrecords
from everywear_tf.data import viton_hd

pytestmark = pytest.mark.slow  # runs the binary
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FIXTURE = os.path.join(ROOT, 'tests', 'testdata', 'viton_hd')


def _run(prefix, *extra):
    return subprocess.run([sys.executable, os.path.join(ROOT, 'train', 'make_tfrecords.py'),
                           '--layout=viton_hd', f'--dataset_root={FIXTURE}',
                           f'--output_prefix={prefix}', *extra],
                          capture_output=True, text=True, timeout=300)


def test_shards_manifest_resume_and_refusals(tmp_path):
    prefix = str(tmp_path / 'hd' / 'train')
    first = _run(prefix, '--num_shards=2')
    assert first.returncode == 0, first.stderr
    manifest = json.loads((tmp_path / 'hd' / 'train.json').read_text())
    assert manifest['num_shards'] == 2 and manifest['items'] == 3
    shards = tfrecords.TfRecordDataset(prefix + '-*.tfrecord')
    folder = viton_hd.VitonHdDataset(FIXTURE)
    assert len(shards) == len(folder) == 3
    os.remove(tfrecords.shard_name(prefix, 1, 2))
    # One run checks both: the missing shard is written again, the other skipped; then a run
    # with another shard count is refused naming the manifest.
    again = _run(prefix, '--num_shards=2')
    assert again.returncode == 0 and 'exists, skipped' in again.stderr, again.stderr
    assert os.path.isfile(tfrecords.shard_name(prefix, 1, 2))
    other = _run(prefix, '--num_shards=3')
    assert other.returncode == 1
    assert 'train.json' in other.stderr and 'num_shards 2 (now 3)' in other.stderr
    (tmp_path / 'hd' / 'train.json').unlink()
    orphan = _run(prefix, '--num_shards=2')
    assert orphan.returncode == 1 and 'no train.json' in orphan.stderr, orphan.stderr
