"""What the commands share (issue 15, items 3 and 8): the flags that choose which model versions
run, and output paths refused before any work, with the path named and nothing left behind."""

import os

import pytest
from absl import app
from absl import flags

from everywear_tf import spec
from everywear_tf.cli import app as command


def _selection(*argv):
    values = flags.FlagValues()
    flags.DEFINE_string('server', None, '', flag_values=values)
    flags.DEFINE_string('saved_models', None, '', flag_values=values)
    command.define_model_flags(values)
    values(['command', *argv])
    return command.model_selection(values)


def test_model_flags():
    default = {'label': spec.STABLE, 'version': None, 'label_fallback': True,
               'model_config': None}
    assert _selection() == default
    assert _selection('--server=h:1') == default
    # Asked for: no fallback to no label.
    assert _selection('--server=h:1', '--model_label=stable') == {**default,
                                                                    'label_fallback': False}
    assert _selection('--server=h:1', '--model_label=canary')['label'] == spec.CANARY
    assert _selection('--server=h:1', '--model_label=none') == {**default, 'label': None,
                                                                  'label_fallback': False}
    assert _selection('--saved_models=x', '--model_version=3') == {**default, 'label': None,
                                                                     'version': 3}
    assert _selection('--saved_models=x', '--model_config_file=c')['model_config'] == 'c'
    for argv, problem in [
            (['--server=h:1', '--model_label=canary', '--model_version=2'], 'not both'),
            (['--model_label=canary'], 'pass --server or --saved_models'),
            (['--model_version=2'], 'pass --server or --saved_models'),
            (['--server=h:1', '--model_config_file=c'], 'is for --saved_models'),
            (['--server=h:1', '--model_label='], 'must not be empty')]:
        with pytest.raises(app.UsageError, match=problem):
            _selection(*argv)
    with pytest.raises(flags.IllegalFlagValueError):
        _selection('--server=h:1', '--model_version=0')


def test_output_paths_that_cannot_be_written_are_named(tmp_path):
    existing_dir = tmp_path / 'tryon.png'
    existing_dir.mkdir()
    regular = tmp_path / 'notes.txt'
    regular.write_text('x')
    cases = [(existing_dir, 'tryon.png: is a directory'),
             (regular / 'tryon.png', f'notes.txt/tryon.png: {regular} is a file, not a '
                                     f'directory'),
             (regular / 'deeper' / 'tryon.png', f'{regular} is a file, not a directory'),
             ('/proc/tryon.png', 'cannot create files in /proc'),
             ('/sys/new/tryon.png', 'cannot create files in /sys'),  # read-only, even for root
             ('/dev/null', 'exists and is not a regular file')]
    for path, problem in cases:
        with pytest.raises(command.OutputPathError, match=problem) as raised:
            command.check_output_path(str(path))
        assert raised.value.path == str(path)
    before = sorted(os.listdir(tmp_path))
    for fine in (tmp_path / 'out.png', tmp_path / 'new' / 'dir' / 'out.png', regular):
        assert command.check_output_path(str(fine)) == str(fine)
    assert sorted(os.listdir(tmp_path)) == before  # no probe file, no directory made
