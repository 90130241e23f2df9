"""Typed errors for bad input: each names the file and what is wrong with it."""

import os


class EverywearError(Exception):
    """Base class of every error this package raises on purpose."""


class InputError(EverywearError, ValueError):
    """A user-supplied file (or in-memory input) is malformed.

    Attributes:
        path: the offending file ('<memory>' for in-memory input).
        problem: what is wrong, in words.
    """

    def __init__(self, path, problem: str):
        self.path = os.fspath(path) if path is not None else '<memory>'
        self.problem = problem
        super().__init__(f'{self.path}: {problem}')


class InputNotFoundError(InputError, FileNotFoundError):
    """A required input file does not exist."""

    def __init__(self, path, problem: str = 'no such file'):
        super().__init__(path, problem)


class ImageError(InputError):
    """An image or mask file cannot be decoded or has the wrong size or channels."""


class KeypointsError(InputError):
    """A pose file is malformed (bad JSON, wrong keypoint count, NaN coordinates...)."""


class ParseMapError(InputError):
    """A human-parsing label map is malformed (unknown labels, wrong size, bad palette...)."""


class UnsafePickleError(InputError):
    """A pickle asked for something other than numpy arrays and plain containers."""


class BundleError(InputError):
    """An Everywear pickle bundle lacks a key or holds an array of the wrong dtype or shape."""


class CategoryError(EverywearError, ValueError):
    """A garment category that is not one of spec.CATEGORIES."""


class DatasetError(InputError):
    """A dataset directory does not follow the expected layout."""


def checked_size(path, image_size, error=InputError):
    """``image_size`` as a (height, width) tuple of positive ints, or ``error`` naming ``path``."""
    try:
        size = tuple(int(v) for v in image_size)
        ok = len(size) == 2 and all(v > 0 and v == s for v, s in zip(size, image_size))
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise error(path, f'image_size must be (height, width) positive integers, got '
                          f'{image_size!r}')
    return size


def require_file(path) -> str:
    """Returns ``path`` as a string, raising InputNotFoundError if it is not an existing file."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise InputNotFoundError(path, 'no such file' if not os.path.exists(path) else 'not a file')
    return path
