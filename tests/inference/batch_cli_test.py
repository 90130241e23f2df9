"""everywear-batch: what would fail every job is one error at the start, with its cause."""

import os
import socket
import subprocess
import sys

import pytest

from tests.inference.batch_test import _input_dir
from tests.inference.batch_test import _person

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

pytestmark = pytest.mark.slow  # subprocesses


def _closed_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


@pytest.mark.parametrize('where, cause', [
        ('--weights_root={tmp}/no-weights', '{tmp}/no-weights: no such directory'),
        ('--server=127.0.0.1:{port}', 'no model server answers there')])
def test_a_missing_weights_root_or_server_is_one_error_before_any_job(tmp_path, where, cause):
    jobs = [(f'p{i}_0', 'shirt_1' if i % 2 else '-', '-' if i % 2 else 'jeans_1')
            for i in range(4)]
    source = _input_dir(tmp_path / 'in', jobs)
    for i in range(4):
        _person(source, f'p{i}_0', (320, 240))
    values = {'tmp': tmp_path, 'port': _closed_port()}
    run = subprocess.run([sys.executable, '-m', 'everywear_tf.cli.batch', f'--input_dir={source}',
                          f'--workspace={tmp_path / "ws"}', where.format(**values)],
                         capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert run.returncode == 1, run.stderr
    last = run.stderr.strip().splitlines()[-1]
    assert last.startswith('everywear-batch: error: ') and cause.format(**values) in last, last
    assert 'FAILED' not in run.stderr and 'Traceback' not in run.stderr
    assert not (tmp_path / 'ws' / 'output' / 'report.json').exists()
