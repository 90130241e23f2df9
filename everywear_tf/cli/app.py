"""What every command shares: TensorFlow kept quiet, and ``--help`` that lists its own flags.

Import this module and call ``quiet_tensorflow()`` before anything imports TensorFlow. Nothing
here imports TensorFlow or absl at import time.
"""

import os
import sys

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
