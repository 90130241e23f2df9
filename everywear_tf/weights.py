"""Weights directories: a TF2 checkpoint plus ``manifest.json`` saying what network it fits.

Converters and trainers write them; the exporter, the pipeline and evaluation read them. A
directory is written beside its final name and renamed into place, so it is either complete or
absent.
"""

import datetime
import hashlib
import json
import os
from typing import Any

import numpy as np
import tensorflow as tf

from everywear_tf import configs
from everywear_tf import errors
from everywear_tf import fileio
from everywear_tf import spec
from everywear_tf.models import factory

MANIFEST = 'manifest.json'
CHECKPOINT = 'weights'
FORMAT = 'everywear-weights'
VERSION = 1


class WeightsError(errors.InputError):
    """A weights directory that is missing, incomplete or for another network."""


def sha256(path: os.PathLike | str) -> str:
    """The SHA-256 of the file at ``path``, as lowercase hex (read in 1 MiB blocks)."""
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(1 << 20), b''):
            digest.update(block)
    return digest.hexdigest()


def save(model: tf.keras.Model, directory: os.PathLike | str,
         source: os.PathLike | str | None = None, overwrite: bool = False,
         **extra: Any) -> str:
    """Writes ``model`` to ``directory``; ``source`` (a path or description) and ``extra`` go
    into the manifest. Refuses an existing directory unless ``overwrite``.

    Returns the directory's absolute path.
    """
    directory = os.path.abspath(os.fspath(directory))
    if os.path.exists(directory) and not overwrite:
        raise WeightsError(directory, 'already exists; pass overwrite to replace it')
    module = factory.module_for(model)
    os.makedirs(os.path.dirname(directory), exist_ok=True)
    with fileio.atomic_directory(directory) as temporary:
        tf.train.Checkpoint(model=model).write(os.path.join(temporary, CHECKPOINT))
        manifest = {'format': FORMAT, 'version': VERSION, 'module': module,
                    'config': configs.to_dict(model.config),
                    'parameters': int(sum(np.prod(v.shape) for v in model.weights)),
                    'created': datetime.datetime.now(datetime.UTC).isoformat(),
                    **extra}
        if source is not None:
            manifest['source'] = {'path': os.fspath(source)}
            if os.path.isfile(source):
                manifest['source']['sha256'] = sha256(source)
        with open(os.path.join(temporary, MANIFEST), 'w') as f:
            json.dump(manifest, f, indent=1)
    return directory


def read_manifest(directory: os.PathLike | str) -> dict[str, Any]:
    """The parsed ``manifest.json`` of weights directory ``directory``, checked for format,
    version and module.

    Raises errors.InputNotFoundError (no directory or manifest) or WeightsError (not JSON, another
    format or version, an unknown module).
    """
    path = os.path.join(os.fspath(directory), MANIFEST)
    if not os.path.isdir(directory):
        raise errors.InputNotFoundError(directory, 'no such weights directory')
    errors.require_file(path)
    try:
        with open(path) as f:
            manifest = json.load(f)
    except ValueError as e:
        raise WeightsError(path, f'not valid JSON ({e})') from None
    if manifest.get('format') != FORMAT or manifest.get('version') != VERSION:
        raise WeightsError(path, f'not a {FORMAT} v{VERSION} manifest')
    if manifest.get('module') not in spec.MODULES:
        raise WeightsError(path, f'unknown module {manifest.get("module")!r}')
    return manifest


def load(directory: os.PathLike | str, module: str | None = None,
         precision: str = factory.FLOAT32) -> tf.keras.Model:
    """The network saved in ``directory`` (built from its manifest's config, weights restored).

    ``module`` ('gmm', 'edm', 'rm'), when given, must match the manifest. ``precision``
    'bfloat16' builds the reduced-precision network; the float32 weights load into it unchanged.
    """
    manifest = read_manifest(directory)
    if module is not None and manifest['module'] != module:
        raise WeightsError(directory, f'holds a {manifest["module"].upper()}, expected a '
                                      f'{module.upper()}')
    try:
        config = configs.from_dict(manifest['module'], manifest['config'])
    except (TypeError, ValueError) as e:
        raise WeightsError(os.path.join(directory, MANIFEST), f'bad config: {e}') from None
    model = factory.build(config, precision=precision)
    prefix = os.path.join(directory, CHECKPOINT)
    if not tf.io.gfile.exists(prefix + '.index'):
        raise WeightsError(directory, f'no checkpoint {CHECKPOINT}.index')
    try:
        status = tf.train.Checkpoint(model=model).read(prefix)
        status.assert_existing_objects_matched().expect_partial()
    except (AssertionError, ValueError, tf.errors.OpError) as e:
        raise WeightsError(directory, f'checkpoint does not fit the manifest config: '
                                      f'{str(e).splitlines()[0]}') from None
    return model
