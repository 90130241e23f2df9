"""Exports a network as ``<base>/<model_name>/<version>/`` that stock TF Serving loads.

The SavedModel is written into a hidden temporary directory beside the versions (TF Serving only
looks at numeric names), completed with its warmup file and an export manifest, checked, and then
renamed into place: a crash at any point leaves no partial version visible.
"""

import datetime
import json
import os

import tensorflow as tf

from everywear_tf import configs
from everywear_tf import errors
from everywear_tf import fileio
from everywear_tf import spec
from everywear_tf.export import modules
from everywear_tf.export import opcheck
from everywear_tf.export import warmup
from everywear_tf.models import factory

AUTO = 'auto'
MANIFEST = 'everywear_export.json'


class ExportError(errors.EverywearError):
    """An export cannot be done as asked (bad name, version taken, unsupported op)."""


def versions(model_dir):
    """Sorted integer versions present under ``model_dir`` (TF Serving's view of it)."""
    if not os.path.isdir(model_dir):
        return []
    return sorted(int(name) for name in os.listdir(model_dir)
                  if name.isdigit() and os.path.isdir(os.path.join(model_dir, name)))


def next_version(model_dir):
    """One more than the highest version under ``model_dir``; 1 when there is none."""
    existing = versions(model_dir)
    return existing[-1] + 1 if existing else 1


def export(model, base_dir, model_name, version=AUTO, overwrite=False, source=None, log=None,
           precision=factory.FLOAT32):
    """Exports ``model`` as a version of ``model_name``; returns the version directory.

    Args:
        model: a built Gmm, Edm or Rm (its module must match ``model_name``).
        base_dir: the serving tree; versions go to ``base_dir/model_name/<version>``.
        model_name: the serving name, ``<module>_<category>`` (such as ``gmm_men_tshirts``).
        version: an integer, or 'auto' for one more than the highest present.
        overwrite: replace an existing version instead of refusing.
        source: where the weights came from, recorded in the manifest.
        log: called with a line of progress (default: nothing is printed).
        precision: 'float32', or 'bfloat16' for the reduced-precision variant: the same weights
            and signature (uint8/float32 in and out), convolutions computing in bfloat16.
    """
    module, _ = spec.module_of(model_name)
    if factory.module_for(model) != module:
        raise ExportError(f'{model_name} serves a {module.upper()}, got a '
                          f'{type(model).__name__}')
    if precision not in factory.PRECISIONS:
        raise ExportError(f'precision must be one of {factory.PRECISIONS}, got {precision!r}')
    model = factory.with_precision(model, precision)
    return export_module(modules.ServingModule(module, model), base_dir, model_name, version,
                         overwrite, log, {'config': configs.to_dict(model.config),
                                          'precision': precision, 'source': source})


def export_category(category, gmm, edm, rm, base_dir, version=AUTO, overwrite=False, source=None,
                    log=None, precision=factory.FLOAT32):
    """Exports a category's one-call model, ``tryon_<category>``: its built GMM, EDM and RM
    (the weights its three module exports serve) in one graph (modules.CategoryModule), as a
    version beside theirs; returns the version directory. Arguments as ``export``'s."""
    if precision not in factory.PRECISIONS:
        raise ExportError(f'precision must be one of {factory.PRECISIONS}, got {precision!r}')
    networks = {}
    for module, model in ((spec.GMM, gmm), (spec.EDM, edm), (spec.RM, rm)):
        if factory.module_for(model) != module:
            raise ExportError(f'{spec.category_model_name(category)} needs a {module.upper()} '
                              f'there, got a {type(model).__name__}')
        networks[module] = factory.with_precision(model, precision)
    return export_module(
            modules.CategoryModule(category, networks[spec.GMM], networks[spec.EDM],
                                   networks[spec.RM]),
            base_dir, spec.category_model_name(category), version, overwrite, log,
            {'config': {module: configs.to_dict(model.config)
                        for module, model in networks.items()},
             'precision': precision, 'source': source})


def export_all(networks, base_dir, version=AUTO, overwrite=False, source=None, log=None,
               precision=factory.FLOAT32):
    """Exports ``networks`` ({model name: built network}, any of the nine) and, for every
    category whose three networks are all there, its one-call model beside them (so a deployment
    gets both by default). Returns {model name: version directory}."""
    written = {}
    for name, model in networks.items():
        written[name] = export(model, base_dir, name, version, overwrite, source, log, precision)
    for category in spec.CATEGORIES:
        names = [spec.model_name(module, category) for module in spec.MODULES]
        if all(name in networks for name in names):
            written[spec.category_model_name(category)] = export_category(
                    category, *(networks[name] for name in names), base_dir=base_dir,
                    version=version, overwrite=overwrite, source=source, log=log,
                    precision=precision)
    return written


def export_module(serving, base_dir, model_name, version=AUTO, overwrite=False, log=None,
                  manifest=None):
    """Exports a ready ``tf.Module`` whose ``signatures()`` are its serving signatures (the
    front end's, or a network's ServingModule) as a version of ``model_name``.

    The version is written under a hidden temporary name with its warmup file and manifest,
    checked for ops stock TF Serving lacks, and renamed into place; returns its directory.
    ``manifest`` adds fields to ``everywear_export.json``.
    """
    log = log or (lambda message: None)
    module, _ = spec.module_of(model_name)
    model_dir = os.path.join(os.path.abspath(base_dir), model_name)
    os.makedirs(model_dir, exist_ok=True)
    fileio.remove_stale_directories(model_dir)
    if version == AUTO:
        version = next_version(model_dir)
    try:
        version = int(version)
    except (TypeError, ValueError):
        raise ExportError(f'version must be a positive integer or {AUTO!r}, '
                          f'got {version!r}') from None
    if version < 1:
        raise ExportError(f'version must be a positive integer, got {version}')
    final = os.path.join(model_dir, str(version))
    if os.path.exists(final) and not overwrite:
        raise ExportError(f'{final} already exists; pass overwrite to replace it or use '
                          f'version {AUTO!r}')
    with fileio.atomic_directory(final) as temporary:
        tf.saved_model.save(serving, temporary, signatures=serving.signatures())
        warmup.write_warmup(temporary, model_name, module)
        document = {'model_name': model_name, 'module': module, 'version': version,
                    **(manifest or {}),
                    'exported': datetime.datetime.now(datetime.UTC).isoformat(),
                    'tensorflow': tf.__version__}
        with open(os.path.join(temporary, warmup.WARMUP_DIRECTORY, MANIFEST), 'w') as f:
            json.dump(document, f, indent=1)
        missing = opcheck.unregistered_ops(temporary)
        if missing:
            raise ExportError(f'{model_name}: the graph uses ops stock TF Serving lacks: {missing}')
    log(f'exported {model_name} version {version} to {final}')
    return final


def read_manifest(version_dir):
    """The export manifest of a version directory (None for exports made elsewhere)."""
    path = os.path.join(version_dir, warmup.WARMUP_DIRECTORY, MANIFEST)
    if not os.path.isfile(path):
        return None
    with open(path) as f:
        return json.load(f)
