"""``python -m bench.served_tryon --quick`` dresses the demo person through a dev server in its own
process every way (gRPC and REST, tensors and PNG files, three calls and one) and in process, finds
the outputs equal, and writes its JSON and table; the table is read back from the JSON alone."""

import json
import os
import subprocess
import sys

import pytest

from tests import early

_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

pytestmark = pytest.mark.slow  # a subprocess that exports models and starts a server

# Started as the session starts (tests/early.py): it runs while the rest of the suite does.
_QUICK = early.Command('test_quick_run_times_every_way_and_finds_the_outputs_equal', [
        sys.executable, '-m', 'bench.served_tryon', '--quick', '--runs=1',
        '--output={directory}/st.json'], cwd=_ROOT)


def test_quick_run_times_every_way_and_finds_the_outputs_equal():
    run = _QUICK.result(timeout=900)
    output = _QUICK.directory / 'st.json'
    assert run.returncode == 0, run.stderr[-3000:]
    results = json.loads(output.read_text())
    ways = [row['way'] for row in results['rows']]
    assert ways[0] == 'in process' and len(ways) == 7 and len(set(ways)) == 7
    assert {'REST encoded, one call', 'gRPC encoded, one call', 'gRPC, three calls'} <= set(ways)
    for row in results['rows']:
        assert row['equal'] is True
        assert 0 < row['median_ms'] <= row['p90_ms']
    assert results['rows'][0]['ratio'] == 1.0
    assert 'bfloat16' in results['machine']['cpu_line']
    table = (_QUICK.directory / 'st.md').read_text()
    assert '| REST encoded, one call |' in table and 'the in-process time' in table
    again = subprocess.run([sys.executable, '-m', 'bench.served_tryon', f'--input={output}'],
                           cwd=_ROOT, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and 'REST encoded, one call' in again.stdout
    refused = subprocess.run([sys.executable, '-m', 'bench.served_tryon', '--quick',
                              '--results_md=bench/RESULTS.md'], cwd=_ROOT,
                             capture_output=True, text=True, timeout=300)
    assert refused.returncode != 0
    assert 'do not go into the committed bench/RESULTS.md' in refused.stderr
