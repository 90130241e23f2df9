"""The pipeline's files on any Beam file system (``apache_beam.io.filesystems.FileSystems``).

A path without a scheme is a local (or mounted) path and is read and written as everywear-batch
does (``os``, ``fileio``): the same bytes, the same atomic writes. A URL (``gs://``, ``s3://``,
any registered ``FileSystem``'s scheme) goes through ``FileSystems``; a job runs on a local copy
of what it reads (``Stage``), and every file it wrote is then published to the workspace.

Atomic writes on a URL: the bytes go to ``<workspace>/.everywear-tmp/<random>-<name>``, then
``FileSystems.rename`` moves them to their name. On GCS (and S3) an object appears only when
its upload is complete, and a rename is a server-side copy then a delete: the final name appears
only complete (a copy is one object write), never half-written; a process killed between the
copy and the delete leaves its temporary, removed by the next run (``remove_temporaries``).
"""

import contextlib
import os
import shutil
import tempfile
import uuid

from apache_beam.io import filesystems

from everywear_tf import errors
from everywear_tf import fileio
from everywear_tf import spec
from everywear_tf.inference import batch as batch_lib
from everywear_tf.inference import workspace as workspace_lib

FileSystems = filesystems.FileSystems
TEMPORARIES = '.everywear-tmp'  # <workspace>/.everywear-tmp/: files being written to a URL
_CHUNK = 1 << 20


def is_local(path: str) -> bool:
    """Whether ``path`` is a local path (no scheme): read and written with ``os``."""
    return FileSystems.get_scheme(path) is None


def exists(path: str) -> bool:
    """Whether the file ``path`` exists."""
    return os.path.isfile(path) if is_local(path) else FileSystems.exists(path)


def read_bytes(path: str) -> bytes:
    """The bytes of ``path``; InputNotFoundError if it does not exist."""
    if is_local(path):
        with open(errors.require_file(path), 'rb') as f:
            return f.read()
    if not FileSystems.exists(path):
        raise errors.InputNotFoundError(path, 'no such file')
    with FileSystems.open(path, compression_type='uncompressed') as f:
        return f.read()


def names_in(directory: str) -> set:
    """The names of the files directly in ``directory`` (none if it does not exist)."""
    if is_local(directory):
        return set(os.listdir(directory)) if os.path.isdir(directory) else set()
    pattern = directory.rstrip('/') + '/*'
    found = FileSystems.match([pattern])[0].metadata_list
    return {metadata.path.rsplit('/', 1)[-1] for metadata in found}


def _temporary(workspace, path):
    return (f'{workspace.rstrip("/")}/{TEMPORARIES}/{uuid.uuid4().hex}-'
            f'{path.rsplit("/", 1)[-1]}')


def write_bytes(path: str, data: bytes, workspace: str) -> None:
    """Writes ``path`` atomically (its name appears only complete): locally as
    ``fileio.atomic_write_bytes``; on a URL through a temporary in ``workspace``, renamed."""
    if is_local(path):
        fileio.atomic_write_bytes(path, data)
        return
    with open_temporary(workspace, path) as f:
        f.write(data)


@contextlib.contextmanager
def open_temporary(workspace: str, path: str):
    """``with open_temporary(workspace, path) as f``: a write channel to a temporary of the URL
    ``path`` (in ``workspace``), renamed to ``path`` when the block ends without an error,
    deleted when it does not."""
    temporary = _temporary(workspace, path)
    try:
        with FileSystems.create(temporary, compression_type='uncompressed') as f:
            yield f
        FileSystems.rename([temporary], [path])
    except BaseException:
        _delete_quietly(temporary)
        raise


def _delete_quietly(path):
    with contextlib.suppress(Exception):  # already gone, or removed by the next run
        FileSystems.delete([path])


def upload(local: str, path: str, workspace: str) -> None:
    """Copies the local file ``local`` to the URL ``path``, atomically."""
    with open(local, 'rb') as source, open_temporary(workspace, path) as f:
        shutil.copyfileobj(source, f, _CHUNK)


def download(path: str, local: str) -> None:
    """Copies the URL ``path`` to the local file ``local`` (its folders made)."""
    os.makedirs(os.path.dirname(local), exist_ok=True)
    with FileSystems.open(path, compression_type='uncompressed') as f, open(local, 'wb') as out:
        shutil.copyfileobj(f, out, _CHUNK)


def remove_temporaries(workspace: str) -> int:
    """Removes the temporaries an interrupted run left in the URL ``workspace``; how many."""
    pattern = f'{workspace.rstrip("/")}/{TEMPORARIES}/*'
    found = [metadata.path for metadata in FileSystems.match([pattern])[0].metadata_list]
    if found:
        FileSystems.delete(found)
    return len(found)


class Stage:
    """A job's local copy of a URL input directory and workspace.

    ``fetch(job)`` copies what the job may read (the person's photo, pose and parse, the front
    end's estimates of them kept in the workspace, the garments' photos and masks in every
    category: what everywear-batch looks for, so its errors are the same) into local folders;
    the job runs there (``input_dir``, ``workspace``); ``publish()`` copies every file it
    wrote to the workspace, atomically each, the final images last."""

    def __init__(self, input_dir: str, workspace: str):
        self.remote_input, self.remote_workspace = input_dir.rstrip('/'), workspace.rstrip('/')
        self.root = tempfile.mkdtemp(prefix='everywear-beam.')
        self.input_dir = os.path.join(self.root, 'in')
        self.workspace = os.path.join(self.root, 'ws')
        self.fetched = set()

    def close(self) -> None:
        """Removes the local copy."""
        shutil.rmtree(self.root, ignore_errors=True)

    def _wanted(self, job):
        """(local, URL) of every file ``job`` may read."""
        local = workspace_lib.Workspace(self.workspace, self.input_dir)
        person = job.person
        paths = [os.path.join(local.persons_dir(), person + extension)
                 for extension in workspace_lib.IMAGE_EXTENSIONS]
        paths += local.keypoints_candidates(person) + [local.parse_of(person)]
        for garment in (job.top, job.bottom):
            if garment == batch_lib.NONE:
                continue
            for category in spec.CATEGORIES:  # where Batch looks for a garment
                directory = local.garments_dir(category)
                paths += [os.path.join(directory, garment + extension)
                          for extension in workspace_lib.IMAGE_EXTENSIONS]
                paths.append(os.path.join(directory, garment + workspace_lib.GARMENT_MASK_SUFFIX))
        paths += [local.estimated_pose(person), local.estimated_parse(person)]
        return [(path, self.remote(path)) for path in dict.fromkeys(paths)]

    def remote(self, local: str) -> str:
        """The URL of a path of the local copy."""
        for mine, theirs in ((self.input_dir, self.remote_input),
                             (self.workspace, self.remote_workspace)):
            if local == mine or local.startswith(mine + os.sep):
                return theirs + '/' + os.path.relpath(local, mine).replace(os.sep, '/')
        return local

    def in_remote_terms(self, text: str) -> str:
        """``text`` (an error) with the local copy's paths as the URLs they stand for."""
        return (text.replace(self.input_dir, self.remote_input)
                .replace(self.workspace, self.remote_workspace))

    def fetch(self, job) -> None:
        """An empty local copy, then the files ``job`` may read that exist."""
        for directory in (self.input_dir, self.workspace):
            shutil.rmtree(directory, ignore_errors=True)
            os.makedirs(directory)
        self.fetched = set()
        for local, url in self._wanted(job):
            if FileSystems.exists(url):
                download(url, local)
                self.fetched.add(local)

    def publish(self) -> None:
        """Every file the job wrote in the local workspace, to the URL workspace (the final
        images last: their presence marks the job done)."""
        written = [os.path.join(root, name) for root, _, names in os.walk(self.workspace)
                   for name in names if not name.endswith(fileio.TEMPORARY_SUFFIX)]
        final = os.path.join(self.workspace, workspace_lib.OUTPUT, workspace_lib.FINAL_IMAGES)
        written.sort(key=lambda path: (path.startswith(final + os.sep), path))
        for path in written:
            if path not in self.fetched:
                upload(path, self.remote(path), self.remote_workspace)
