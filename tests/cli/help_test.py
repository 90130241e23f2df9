"""Every command shows its own flags with --help and prints nothing of TensorFlow's start-up.

TensorFlow's import sets TF_CPP_MIN_LOG_LEVEL=1 in its own process, so the commands are started
with an environment as a shell gives it (without that variable), as a user starts them.
"""

import os
import sys

import pytest

from tests import early

pytestmark = pytest.mark.slow

_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
_BIN = os.path.dirname(sys.executable)
_NOISE = ('cuDNN', 'cuFFT', 'cuBLAS', 'TensorRT', 'oneDNN')


_ENV = {k: v for k, v in os.environ.items() if k not in ('TF_CPP_MIN_LOG_LEVEL',
                                                          'EVERYWEAR_TF_VERBOSE')}
_CONSOLE_SCRIPTS = [
        ('everywear-tryon', '--person'),
        ('everywear-batch', '--input_dir'),
        ('everywear-representation', '--output_dir'),
]
_BINARIES = [
        ('export/export_saved_model.py', '--base_dir'),
        ('serving/dev_server.py', '--model_config_file'),
        ('serving/rollout.py', '--category'),
        ('serving/client.py', '--input_dir'),
        ('checkpoints/convert.py', '--source'),
        ('train/train.py', '--module'),
        ('train/evaluate.py', '--mean_warp_items'),
        ('train/make_synthetic.py', '--output_dir'),
]
# The --help runs are started as the session starts (tests/early.py), one at a time.
_HELP = {command: early.Command('test_console_scripts_list_their_own_flags',
                                [os.path.join(_BIN, command), '--help'], cwd=_ROOT, env=_ENV,
                                key=command)
         for command, _ in _CONSOLE_SCRIPTS}
_HELP.update({binary: early.Command('test_binaries_list_their_flags_with_their_docstring',
                                    [sys.executable, binary, '--help'], cwd=_ROOT, env=_ENV,
                                    key=binary.replace('/', '.'))
              for binary, _ in _BINARIES})


@pytest.mark.parametrize('command,flag', _CONSOLE_SCRIPTS)
def test_console_scripts_list_their_own_flags(command, flag):
    result = _HELP[command].result(timeout=300)  # absl's --help exits with 1
    text = result.stdout + result.stderr
    assert flag in text and f'{command} --' in text  # the flags and the docstring's examples
    assert not [line for line in text.splitlines() if any(n in line for n in _NOISE)]


@pytest.mark.parametrize('binary,flag', _BINARIES)
def test_binaries_list_their_flags_with_their_docstring(binary, flag):
    result = _HELP[binary].result(timeout=300)
    text = result.stdout + result.stderr
    assert flag in text and 'python ' + binary in text  # the docstring's example, unbroken
    assert not [line for line in text.splitlines() if any(n in line for n in _NOISE)]


_FAILING = early.Command('test_a_failing_command_prints_only_its_own_error', [
        os.path.join(_BIN, 'everywear-tryon'), '--person={directory}/no.jpg', '--pose=x.json',
        '--parse=x.png', '--top=x.png', '--output={directory}/out.png'], cwd=_ROOT, env=_ENV)


def test_a_failing_command_prints_only_its_own_error():
    result = _FAILING.result(timeout=300)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
            f'everywear-tryon: error: {_FAILING.directory / "no.jpg"}: no such file']
