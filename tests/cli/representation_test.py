"""everywear-representation: every channel group of the demo frame as a PNG; clear errors."""

import os
import subprocess
import sys

import pytest

from everywear_tf.data import images

# Servers, subprocesses, exports or training: not in the fast loop (pytest -m 'not slow').
pytestmark = pytest.mark.slow

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _run(*flags):
    return subprocess.run([sys.executable, '-m', 'everywear_tf.cli.representation', *flags],
                          capture_output=True, text=True, timeout=300, cwd=ROOT)


def test_demo_maps_and_a_bad_parse(tmp_path):
    done = _run(f'--output_dir={tmp_path / "maps"}')
    assert done.returncode == 0, done.stderr
    names = sorted(os.listdir(tmp_path / 'maps'))
    assert len(names) == 14 and 'contact_sheet.png' in names and 'gmm_pose.png' in names
    assert images.read_image(str(tmp_path / 'maps' / 'person.png')).shape == (256, 192, 3)
    bad = tmp_path / 'parse.png'
    bad.write_bytes(b'not a png')
    failed = _run(f'--output_dir={tmp_path / "bad"}', f'--parse={bad}')
    assert failed.returncode == 1
    assert f'everywear-representation: error: {bad}' in failed.stderr, failed.stderr
    assert not (tmp_path / 'bad').exists()
