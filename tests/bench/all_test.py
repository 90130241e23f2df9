"""``python -m bench.all --quick`` runs every part end to end and writes what it prints."""

import json
import os
import subprocess
import sys

import pytest

from everywear_tf import spec

from bench import paths
from tests import early

_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# Started as the session starts (tests/early.py): it runs while the rest of the suite does.
_QUICK = early.Command('test_quick_benchmark', [
        sys.executable, '-m', 'bench.all', '--quick', '--output={directory}/all.json',
        '--markdown={directory}/all.md'], cwd=_ROOT)


@pytest.mark.slow
def test_quick_benchmark(tmp_path):
    result = _QUICK.result(timeout=600)
    output, markdown = _QUICK.directory / 'all.json', _QUICK.directory / 'all.md'
    assert result.returncode == 0, result.stderr[-3000:]
    for title in ('Latency', 'FLOPs and efficiency', 'Serving overhead', 'Outfit', 'bfloat16',
                  'Optimisations'):
        assert title in result.stdout
    results = json.loads(output.read_text())
    # The CPU line opens every section; bfloat16's speed-up only where it is native.
    assert result.stdout.count(results['machine']['cpu_line']) >= 8
    assert ('not native on this CPU' in result.stdout) != results['machine']['native_bfloat16']
    assert 'not measured: pass --originals_dir' in result.stdout
    assert 'originals are skipped' in result.stderr
    assert set(results['paths']) == set(paths.ALL)
    for path, modules in results['paths'].items():
        assert 'error' not in modules, (path, modules)
        for module in spec.MODULES + ('tryon',):
            assert modules[module]['latency']['runs'] == 3
            # Every path computes the same try-on: equal, XLA within a uint8 rounding.
            assert modules[module]['max_abs_vs_keras'] <= (
                    1 if path in (paths.KERAS_XLA, paths.SAVED_MODEL_XLA) else 0), (path, module)
    assert results['outfit']['served_equals_in_process']
    # The outfit timed stage by stage is pipeline.outfit's, on both paths.
    assert results['outfit']['equals_pipeline'] == {paths.KERAS: True, paths.GRPC: True}
    assert results['bfloat16']['demo_set'][spec.MEN_TSHIRTS]['tryon']['min_ssim'] >= 0.99
    assert results['optimisations']['gmm_graph_ops']['max_abs_difference'] == 0
    assert results['optimisations']['grpc_tryon']['max_abs_difference'] == 0
    assert results['optimisations']['rest_gmm']['max_abs_difference'] == 0
    assert set(results['optimisations']['grpc_transport']['max_abs_difference'].values()) == {0}
    assert results['flops']['tryon']['total'] > 0 and results['peak']['gflops'] > 0
    assert markdown.read_text().startswith('### Machine')
    document = tmp_path / 'RESULTS.md'
    document.write_text('# Results\n\nprose\n\n<!-- figures main: stale-block -->\nstale-figures\n'
                        '<!-- end of figures main -->\nmore prose\n')
    written = subprocess.run([sys.executable, '-m', 'bench.results', f'--input={output}',
                              f'--results={document}'], cwd=_ROOT, capture_output=True,
                             text=True, timeout=120)
    assert written.returncode == 0, written.stderr[-3000:]
    text = document.read_text()
    assert text.startswith('# Results\n\nprose') and text.endswith('more prose\n')
    assert '#### Key figures' in text and 'stale-' not in text
