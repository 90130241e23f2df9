"""Where a training run's files go: one layout shared with publish, evaluate and try-on.

``train/train.py --output_dir=<run>`` writes the trained network as the weights directory
``<run>/<module>_<category>/``, so ``<run>`` is a weights root like ``checkpoints/demo``:
``rollout.py publish --weights_root=<run>``, ``evaluate.py --weights_root=<run>`` and
``everywear-tryon --weights_root=<run>`` read it as they are. Checkpoints and TensorBoard logs
go to ``<run>/training/<module>_<category>/`` (``train/``, ``logs/``), beside the weights and
never mistaken for them. The three networks of a category trained with the same ``--output_dir``
make one run.

Runs written before this layout (``<run>/weights/``, ``<run>/train/``, ``<run>/logs/``) are
recognised and refused with what to move where.
"""

import os

from everywear_tf import errors
from everywear_tf import spec

TRAINING = 'training'
# The layout before: <output_dir>/weights (the weights directory), /train (checkpoints), /logs.
OLD_WEIGHTS = 'weights'
OLD_CHECKPOINTS = 'train'


class LayoutError(errors.InputError):
    """An output directory in the layout train.py wrote before (``<run>/weights``)."""


def weights_dir(run: str, module: str, category: str) -> str:
    """The trained network's weights directory: ``<run>/<module>_<category>``."""
    return os.path.join(run, spec.model_name(module, category))


def state_dir(run: str, module: str, category: str) -> str:
    """Checkpoints (``train/``) and logs (``logs/``) of one network's training."""
    return os.path.join(run, TRAINING, spec.model_name(module, category))


def is_old_run(run: str) -> bool:
    """Whether ``run`` holds a run in the layout before (``weights/`` or ``train/`` in it)."""
    return (os.path.isfile(os.path.join(run, OLD_WEIGHTS, 'manifest.json'))
            or os.path.isdir(os.path.join(run, OLD_CHECKPOINTS)))


def old_layout_hint(root: str) -> str:
    """The words an error about a missing weights directory adds when ``root`` is an old run."""
    if not is_old_run(root):
        return ''
    return (f' ({root} is a train.py run of the old layout, its weights are '
            f'{os.path.join(root, OLD_WEIGHTS)}: move that directory to '
            f'{os.path.join(root, "<module>_<category>")})')


def check_output_dir(run: str, module: str, category: str) -> None:
    """LayoutError if ``run`` holds a run of the old layout that this one would not resume."""
    if os.path.isdir(state_dir(run, module, category)) or not is_old_run(run):
        return
    name = spec.model_name(module, category)
    raise LayoutError(run, f'a train.py run of the old layout ({OLD_WEIGHTS}/, '
                           f'{OLD_CHECKPOINTS}/, logs/); train.py now writes '
                           f'{os.path.join(run, name)}/ and keeps checkpoints and logs in '
                           f'{state_dir(run, module, category)}/. To resume it, move '
                           f'{OLD_CHECKPOINTS}/ and logs/ into {state_dir(run, module, category)}/'
                           f' (and {OLD_WEIGHTS}/ to {os.path.join(run, name)}/), or pass '
                           f'another --output_dir')
