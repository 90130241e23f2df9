"""Atomic file writes: a crash or a bad input never leaves a half-written file under the real name."""

import contextlib
import os
import tempfile


@contextlib.contextmanager
def atomic_writer(path, mode='wb'):
    """Yields a file object on a temporary name in ``path``'s directory; renames it on success.

    On any exception the temporary file is removed and ``path`` is left as it was.
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix='.' + os.path.basename(path) + '.', suffix='.tmp',
                               dir=directory)
    try:
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        raise


def atomic_write_bytes(path, data: bytes):
    """Writes ``data`` to ``path`` atomically."""
    with atomic_writer(path, 'wb') as f:
        f.write(data)
