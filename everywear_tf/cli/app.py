"""What every command shares: TensorFlow kept quiet, ``--help`` that lists its own flags, the
flags that choose which model versions run, and output paths checked before any work.

Import this module and call ``quiet_tensorflow()`` before anything imports TensorFlow. Nothing
here imports TensorFlow or absl at import time.
"""

import contextlib
import os
import sys
import tempfile

from everywear_tf import errors
from everywear_tf import spec

# Set to 1 to see TensorFlow's own start-up messages (its C++ log lines).
VERBOSE_ENV = 'EVERYWEAR_TF_VERBOSE'


def quiet_tensorflow() -> None:
    """Hides TensorFlow's C++ start-up lines on a CPU machine.

    TensorFlow 2.15 prints "Unable to register cuDNN/cuFFT/cuBLAS factory" errors and oneDNN notes
    on every import, which look alarming and mean nothing without a GPU. They stay hidden unless
    ``EVERYWEAR_TF_VERBOSE=1`` or the user set ``TF_CPP_MIN_LOG_LEVEL`` themselves. Python
    exceptions and this project's own messages are unaffected.
    """
    if os.environ.get(VERBOSE_ENV, '') not in ('', '0'):
        return
    os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')


def run(main, module_name: str = '__main__') -> None:
    """``absl.app.run(main)`` for a command whose flags live in ``module_name``.

    absl's ``--help`` lists the key flags of the main module and prints its docstring; a console
    script's main module is pip's generated wrapper, so both are adopted from the command's own
    module. TensorFlow's Python log lines at INFO (every asset a SavedModel writes, ...) stay
    hidden unless ``--verbosity=0`` (or higher) asks for them. ``main(argv)`` returns the exit
    status (None is 0).
    """
    import logging as python_logging

    from absl import app
    from absl import flags
    from absl import logging

    def quiet_main(argv):
        if not flags.FLAGS['verbosity'].present:
            logging.set_verbosity(logging.WARNING)
            python_logging.getLogger('tensorflow').setLevel(python_logging.WARNING)
        sys.exit(main(argv))

    module = sys.modules[module_name]
    main_module = sys.modules['__main__']
    if main_module is not module:
        for flag in flags.FLAGS.get_flags_for_module(module_name):
            flags.FLAGS.register_key_flag_for_module(sys.argv[0], flag)
        main_module.__doc__ = main_module.__doc__ or module.__doc__
    app.run(quiet_main)


# --model_label's value that sends no label (TF Serving answers with its highest AVAILABLE
# version, which during a rollout may be a version only staged).
NO_LABEL = 'none'


def define_model_flags(flag_values=None) -> None:
    """Defines ``--model_label``, ``--model_version`` and ``--model_config_file`` (call once,
    at import time of a command that takes --server or --saved_models); read them with
    ``model_selection()``. ``flag_values``: absl's FlagValues (default: ``flags.FLAGS``)."""
    from absl import flags
    where = {'flag_values': flags.FLAGS if flag_values is None else flag_values}
    flags.DEFINE_string(
            'model_label', spec.STABLE, 'Which version of each model runs (--server, '
            '--saved_models): this version label (stable, canary, ...), or "none" for no label '
            '(the server\'s highest AVAILABLE version; an export\'s highest version present for '
            'all three models). By default stable, or no label where the config defines none.',
            **where)
    flags.DEFINE_integer('model_version', None, 'Run this version number of each model '
                         'instead of a label.', lower_bound=1, **where)
    flags.DEFINE_string('model_config_file', None, '--saved_models: the models.config whose '
                        'labels choose the versions (default: <saved_models>/models.config if '
                        'there is one).', **where)


def model_selection(flag_values=None) -> dict:
    """The keyword arguments of ``pipeline.make_backend`` that ``define_model_flags``' flags
    give: ``label``, ``version``, ``label_fallback`` (only the default label may fall back to
    none), ``model_config``. ``absl.app.UsageError`` for flags that contradict each other."""
    from absl import app
    from absl import flags
    values = flags.FLAGS if flag_values is None else flag_values
    label_given = values['model_label'].present
    label = values.model_label
    if not label:
        raise app.UsageError('--model_label must not be empty (pass --model_label=none for no '
                             'label)')
    if values.model_version is not None and label_given:
        raise app.UsageError('pass --model_label or --model_version, not both')
    chosen = label_given or values.model_version is not None or values['model_config_file'].present
    remote = any(name in values and values[name].value for name in ('server', 'saved_models'))
    if chosen and not remote:
        raise app.UsageError('--model_label, --model_version and --model_config_file choose '
                             'among served or exported versions: pass --server or '
                             '--saved_models')
    if values['model_config_file'].present and 'server' in values and values.server:
        raise app.UsageError('--model_config_file is for --saved_models (a server reads its '
                             'own config)')
    return {'label': None if label == NO_LABEL or values.model_version is not None else label,
            'version': values.model_version, 'label_fallback': not label_given,
            'model_config': values.model_config_file}


def define_photo_flags(flag_values=None) -> None:
    """Defines ``--max_photo_pixels``, ``--exif_orientation`` and ``--relight`` (call once at
    import time of a command that reads photos); read them with ``photo_options()``."""
    from absl import flags

    from everywear_tf.data import images
    where = {'flag_values': flags.FLAGS if flag_values is None else flag_values}
    flags.DEFINE_integer('max_photo_pixels', images.MAX_PHOTO_PIXELS, 'Refuse photos, garments, '
                         'masks and parse maps with more pixels than this, from the file\'s header '
                         'before decoding (memory); 0: no limit.', lower_bound=0, **where)
    flags.DEFINE_bool('exif_orientation', True, 'Turn JPEG/TIFF photos upright by their EXIF '
                      'Orientation tag when reading them (as phones and viewers show them; the '
                      'result is written upright); --noexif_orientation reads the stored pixels.',
                      **where)
    flags.DEFINE_bool('relight', True, 'Give the pasted try-on the photo\'s shading and the '
                      'person\'s own skin where the new garment uncovers it; --norelight pastes '
                      'the networks\' try-on as it is.', **where)


def photo_options(flag_values=None) -> dict:
    """{'max_pixels', 'orientation', 'relit'} from ``define_photo_flags``' flags."""
    from absl import flags
    values = flags.FLAGS if flag_values is None else flag_values
    return {'max_pixels': values.max_photo_pixels or None,
            'orientation': values.exif_orientation, 'relit': values.relight}


class OutputPathError(errors.InputError):
    """An output path that cannot be written: a directory, under a regular file, or in a
    place this process cannot create files in."""


def check_output_path(path: str) -> str:
    """Returns ``path`` if a file can be written there (atomically: a temporary file in its
    directory, then a rename; missing parent directories are created), or raises
    OutputPathError naming it. Nothing is left behind."""
    path = os.fspath(path)
    if os.path.isdir(path):
        raise OutputPathError(path, 'is a directory (name a file)')
    if os.path.lexists(path) and not os.path.isfile(path):
        raise OutputPathError(path, 'exists and is not a regular file')
    parent = os.path.dirname(os.path.abspath(path))
    while not os.path.lexists(parent):
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent):
        raise OutputPathError(path, f'{parent} is a file, not a directory')
    try:  # permissions, read-only mounts, /proc: only trying tells (root passes mode bits)
        fd, probe = tempfile.mkstemp(prefix='.everywear-write-check.', dir=parent)
    except OSError as e:
        raise OutputPathError(path, f'cannot create files in {parent}: '
                                    f'{e.strerror or e}') from None
    os.close(fd)
    with contextlib.suppress(FileNotFoundError):
        os.remove(probe)
    return path
