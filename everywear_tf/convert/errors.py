"""Typed errors of the checkpoint converters.

Every error a converter raises on purpose is a ``CheckpointError``, itself an
``everywear_tf.errors.InputError``: it names the source file (``.path``) and says what is wrong
(``.problem``); table mismatches also carry every problem, one string each (``.problems``).
"""

from everywear_tf import errors


class CheckpointError(errors.InputError):
    """A source checkpoint that cannot be read, or does not match the target network.

    Attributes:
        path: the source file or TF1 checkpoint prefix.
        problem: what is wrong, in words (the whole message after the path).
        problems: each mismatch on its own (empty when there is a single problem).
    """

    def __init__(self, path, problem: str, problems=()):
        self.problems = tuple(problems)
        super().__init__(path, problem)


class CheckpointNotFoundError(CheckpointError, errors.InputNotFoundError):
    """The source file or TF1 checkpoint prefix does not exist."""


class TorchFileError(CheckpointError):
    """A ``.pth`` file that is not a readable ``torch.save`` state dict (corrupt, truncated...)."""


class UnsupportedTorchFileError(TorchFileError):
    """A ``.pth`` the torch-free reader does not understand; ``torch.load`` may (needs torch)."""


class TorchRequiredError(UnsupportedTorchFileError):
    """Reading this ``.pth`` needs PyTorch, which is not installed (``pip install '.[torch]'``)."""


class UnsafeCheckpointError(TorchFileError, errors.UnsafePickleError):
    """A ``.pth`` whose pickle asks for a global outside the allow-list; nothing was executed."""
