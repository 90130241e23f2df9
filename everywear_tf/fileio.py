"""Atomic file writes: a crash or a bad input never leaves a half-written file under its name.
Also the lock file a run holds on a tree it writes."""

import contextlib
import errno
import fcntl
import os
import re
import shutil
import stat
import tempfile
import uuid

from everywear_tf import errors

TEMPORARY_SUFFIX = '.tmp'


def remove_stale_temporaries(root):
    """Removes the temporary files ``atomic_writer`` leaves when its process is killed mid-write
    (``.<name>.<random>.tmp``) anywhere under ``root``; returns how many. Only for trees no live
    writer uses."""
    removed = 0
    for directory, _, files in os.walk(root):
        for name in files:
            if name.startswith('.') and name.endswith(TEMPORARY_SUFFIX):
                with contextlib.suppress(FileNotFoundError):
                    os.remove(os.path.join(directory, name))
                    removed += 1
    return removed


def check_writable(directory) -> None:
    """OSError unless a file can be created (and removed) in the existing ``directory``: the
    way ``atomic_writer`` writes, tried with an empty temporary file."""
    fd, probe = tempfile.mkstemp(prefix='.write-check.', suffix=TEMPORARY_SUFFIX, dir=directory)
    os.close(fd)
    with contextlib.suppress(FileNotFoundError):  # a starting run's clean-up may take it first
        os.remove(probe)


class LockFileError(errors.EverywearError):
    """A lock file that cannot be used: a symbolic link, not a regular file, not openable."""


class LockBusyError(errors.EverywearError):
    """Another process holds the lock."""


@contextlib.contextmanager
def exclusive_lock(path):
    """Holds an exclusive ``flock`` on ``path`` (created if missing) while the block runs.

    The file is opened without following a symbolic link (``O_NOFOLLOW``: a link planted at the
    lock's name would otherwise create or lock a file wherever it points) and without blocking
    on a FIFO; anything but a regular file is refused (LockFileError). LockBusyError when
    another process holds the lock."""
    path = os.fspath(path)
    flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    try:
        fd = os.open(path, flags, 0o644)
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise LockFileError(f'{path}: the lock file is a symbolic link; it is not followed '
                                f'(remove the link)') from None
        raise LockFileError(f'{path}: cannot open the lock file ({e.strerror})') from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise LockFileError(f'{path}: the lock file is not a regular file')
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise LockBusyError(f'{path}: locked by another process') from None
        yield fd
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_writer(path, mode='wb'):
    """Yields a file object on a temporary name in ``path``'s directory; renames it on success.

    On any exception the temporary file is removed and ``path`` is left as it was.
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix='.' + os.path.basename(path) + '.', suffix=TEMPORARY_SUFFIX,
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


def publish_directory(temporary, final):
    """Renames the finished directory ``temporary`` to ``final``, replacing what is there.

    A new name appears complete or not at all; a replaced one is swapped by two renames, so
    ``final`` is missing only between them, never half-written.
    """
    if os.path.exists(final):
        trash = f'{temporary}-replaced'
        os.rename(final, trash)
        os.rename(temporary, final)
        shutil.rmtree(trash, ignore_errors=True)
    else:
        os.rename(temporary, final)
    return final


# A directory being written: ``.<final name>.<pid>-<random>.tmp`` beside its final name (hidden,
# and not an integer, so TF Serving and the dev server never take it for a version).
_TEMPORARY_DIRECTORY = re.compile(r'\.(?P<name>.+)\.(?P<pid>\d+)-[0-9a-f]{8}\.tmp')


def temporary_directory_name(final):
    """The hidden name beside ``final`` under which it is written."""
    final = os.fspath(final)
    return os.path.join(os.path.dirname(final), f'.{os.path.basename(final)}.{os.getpid()}-'
                                                f'{uuid.uuid4().hex[:8]}{TEMPORARY_SUFFIX}')


def remove_stale_directories(parent):
    """Removes the temporary directories under ``parent`` whose writing process is gone (killed
    mid-write); those of live processes are left alone."""
    for name in os.listdir(parent):
        match = _TEMPORARY_DIRECTORY.fullmatch(name)
        if match and not _alive(int(match['pid'])):
            shutil.rmtree(os.path.join(parent, name), ignore_errors=True)


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextlib.contextmanager
def atomic_directory(final):
    """Yields a new temporary directory beside ``final``; on success it replaces ``final``
    (publish_directory), on any exception it is removed and ``final`` is left as it was."""
    temporary = temporary_directory_name(final)
    os.makedirs(temporary)
    try:
        yield temporary
        publish_directory(temporary, final)
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise


def atomic_write_bytes(path, data: bytes):
    """Writes ``data`` to ``path`` atomically."""
    with atomic_writer(path, 'wb') as f:
        f.write(data)


MAT_HEADER = b'MATLAB 5.0 MAT-file, written by everywear-tf'


def atomic_write_mat(path, arrays, header=MAT_HEADER, **savemat_options):
    """``scipy.io.savemat`` atomically, with a fixed header text: scipy writes the creation time
    there, and the same arrays must give the same bytes (resumed batch runs, fixtures)."""
    import io

    import scipy.io
    buffer = io.BytesIO()
    scipy.io.savemat(buffer, arrays, **savemat_options)
    atomic_write_bytes(path, header.ljust(116) + buffer.getvalue()[116:])
