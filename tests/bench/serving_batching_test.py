"""``python -m bench.serving_batching --quick`` loads a dev server with batching off and on and
writes its JSON and table; its table is read back from the JSON alone."""

import json
import os
import subprocess
import sys

import pytest

_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

pytestmark = pytest.mark.slow  # subprocesses and servers


def test_quick_run_writes_the_json_and_the_table(tmp_path):
    output = tmp_path / 'sb.json'
    run = subprocess.run([sys.executable, '-m', 'bench.serving_batching', '--quick',
                          '--clients=1,2', '--seconds=0.5', f'--output={output}'], cwd=_ROOT,
                         capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stderr[-3000:]
    results = json.loads(output.read_text())
    cells = {(row['module'], row['clients'], row['mode']) for row in results['rows']}
    assert cells == {('gmm', c, m) for c in (1, 2) for m in ('off', 'on')}
    for row in results['rows']:
        assert row['requests'] > 0 and row['errors'] == 0
        assert row['throughput'] > 0 and 0 < row['p50_ms'] <= row['p99_ms']
    assert 'max_batch_size' in results['settings']['batching']['on']
    table = (tmp_path / 'sb.md').read_text()
    assert '| gmm | 2 |' in table and 'on / off' in table
    again = subprocess.run([sys.executable, '-m', 'bench.serving_batching', f'--input={output}'],
                           cwd=_ROOT, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and 'on / off' in again.stdout
    refused = subprocess.run([sys.executable, '-m', 'bench.serving_batching', '--quick',
                              '--results_md=bench/RESULTS.md'], cwd=_ROOT,
                             capture_output=True, text=True, timeout=300)
    assert refused.returncode != 0
    assert 'do not go into the committed bench/RESULTS.md' in refused.stderr
