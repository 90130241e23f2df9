"""Every command shows its own flags with --help and prints nothing of TensorFlow's start-up.

TensorFlow's import sets TF_CPP_MIN_LOG_LEVEL=1 in its own process, so the commands are started
with an environment as a shell gives it (without that variable), as a user starts them.
"""

import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow

_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
_BIN = os.path.dirname(sys.executable)
_NOISE = ('cuDNN', 'cuFFT', 'cuBLAS', 'TensorRT', 'oneDNN')


def _run(*command):
    env = {k: v for k, v in os.environ.items() if k not in ('TF_CPP_MIN_LOG_LEVEL',
                                                             'EVERYWEAR_TF_VERBOSE')}
    return subprocess.run(command, cwd=_ROOT, capture_output=True, text=True, timeout=300,
                          env=env)


@pytest.mark.parametrize('command,flag', [
        ('everywear-tryon', '--person'),
        ('everywear-batch', '--input_dir'),
        ('everywear-representation', '--output_dir'),
])
def test_console_scripts_list_their_own_flags(command, flag):
    result = _run(os.path.join(_BIN, command), '--help')  # absl's --help exits with 1
    text = result.stdout + result.stderr
    assert flag in text and f'{command} --' in text  # the flags and the docstring's examples
    assert not [line for line in text.splitlines() if any(n in line for n in _NOISE)]


@pytest.mark.parametrize('binary,flag', [
        ('export/export_saved_model.py', '--base_dir'),
        ('serving/dev_server.py', '--model_config_file'),
        ('serving/rollout.py', '--category'),
        ('serving/client.py', '--input_dir'),
        ('checkpoints/convert.py', '--source'),
        ('train/train.py', '--module'),
        ('train/evaluate.py', '--mean_warp_items'),
        ('train/make_synthetic.py', '--output_dir'),
])
def test_binaries_list_their_flags_with_their_docstring(binary, flag):
    result = _run(sys.executable, binary, '--help')
    text = result.stdout + result.stderr
    assert flag in text and 'python ' + binary in text  # the docstring's example, unbroken
    assert not [line for line in text.splitlines() if any(n in line for n in _NOISE)]


def test_a_failing_command_prints_only_its_own_error(tmp_path):
    result = _run(os.path.join(_BIN, 'everywear-tryon'), '--person=' + str(tmp_path / 'no.jpg'),
                  '--pose=x.json', '--parse=x.png', '--top=x.png',
                  '--output=' + str(tmp_path / 'out.png'))
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
            f'everywear-tryon: error: {tmp_path / "no.jpg"}: no such file']
