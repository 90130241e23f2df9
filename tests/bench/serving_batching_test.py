"""``python -m bench.serving_batching --quick`` loads a dev server with batching off and on and
writes its JSON and table; its table is read back from the JSON alone."""

import json
import os
import subprocess
import sys

import pytest

from tests import early

_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

pytestmark = pytest.mark.slow  # subprocesses and servers

# Started as the session starts (tests/early.py): it runs while the rest of the suite does.
_QUICK = early.Command('test_quick_run_writes_the_json_and_the_table', [
        sys.executable, '-m', 'bench.serving_batching', '--quick', '--clients=1,2',
        '--seconds=0.5', '--output={directory}/sb.json'], cwd=_ROOT)


def test_quick_run_writes_the_json_and_the_table():
    run = _QUICK.result(timeout=900)
    output = _QUICK.directory / 'sb.json'
    assert run.returncode == 0, run.stderr[-3000:]
    results = json.loads(output.read_text())
    cells = {(row['module'], row['clients'], row['mode']) for row in results['rows']}
    assert cells == {('gmm', c, m) for c in (1, 2) for m in ('off', 'on')}
    for row in results['rows']:
        assert row['requests'] > 0 and row['errors'] == 0
        assert row['throughput'] > 0 and 0 < row['p50_ms'] <= row['p99_ms']
    assert 'max_batch_size' in results['settings']['batching']['on']
    # the ceiling: the SavedModel in process at each batch size, in the same run
    [limit] = results['ceiling']
    assert limit['module'] == 'gmm' and limit['batches'] == [1, 2, 4, 8]
    assert all(v > 0 for v in limit['ms_per_item'])
    assert limit['ceiling'] == pytest.approx(limit['ms_per_item'][0] / min(limit['ms_per_item']))
    table = (_QUICK.directory / 'sb.md').read_text()
    assert '| gmm | 2 |' in table and 'on / off' in table
    assert 'bounds what merging requests can buy' in table and 'CPU:' in table
    again = subprocess.run([sys.executable, '-m', 'bench.serving_batching', f'--input={output}'],
                           cwd=_ROOT, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and 'on / off' in again.stdout
    refused = subprocess.run([sys.executable, '-m', 'bench.serving_batching', '--quick',
                              '--results_md=bench/RESULTS.md'], cwd=_ROOT,
                             capture_output=True, text=True, timeout=300)
    assert refused.returncode != 0
    assert 'do not go into the committed bench/RESULTS.md' in refused.stderr
