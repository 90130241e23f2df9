"""Converted networks as weights directories, and back.

A converted network is written as an Everywear weights directory (``everywear_tf.weights``: a TF2
checkpoint ``weights.*`` plus ``manifest.json``), the same kind of directory training writes and
the exporter, evaluation and the pipeline read. The manifest of a converted network also records
where it came from:

    {"format": "everywear-weights", "version": 1, "module": "gmm",
     "config": {"variant": "cpvton", "ngf": 64, ...}, "parameters": 19065458,
     "trainable_parameters": 19057650, "created": "2026-...+00:00",
     "converted_from": "cpvton_torch", "converter_version": 1,
     "source": {"path": "/abs/gmm_final.pth", "sha256": "..."},
     "source_files": [{"name": "gmm_final.pth", "bytes": 76235029, "sha256": "..."}]}

For a TF1 checkpoint, ``source.path`` is the prefix (no ``source.sha256``: it is not one file)
and ``source_files`` lists its ``.index`` and ``.data-*`` files.

The directory is written beside its final name and renamed into place (complete or absent), and
an existing one is replaced only with ``overwrite=True``.
"""

import glob
import os

import numpy as np
import tensorflow as tf

from everywear_tf import configs
from everywear_tf import spec
from everywear_tf import weights
from everywear_tf.convert import cpvton_torch
from everywear_tf.convert import viton_tf1
from everywear_tf.models import factory

CONVERTER_VERSION = 1

# Any network config (a type hint).
_Config = configs.GmmConfig | configs.EdmConfig | configs.RmConfig

# source format → (module it converts into, converter(source, config) → model)
FORMATS = {
        cpvton_torch.FORMAT: (spec.GMM, cpvton_torch.convert),
        viton_tf1.STAGE1_FORMAT: (spec.EDM, viton_tf1.convert_stage1),
        viton_tf1.STAGE2_FORMAT: (spec.RM, viton_tf1.convert_stage2),
}
_DEFAULT_FORMAT = {module: name for name, (module, _) in FORMATS.items()}


def convert(source: os.PathLike | str, source_format: str, config: _Config) -> tf.keras.Model:
    """The network ``config`` describes, holding the weights of ``source`` (a ``.pth`` file for
    cpvton_torch, a TF1 checkpoint prefix for viton_stage1 / viton_stage2)."""
    if source_format not in FORMATS:
        raise ValueError(f'unknown source format {source_format!r}; known: {sorted(FORMATS)}')
    module, converter = FORMATS[source_format]
    if not isinstance(config, type(configs.get(module))):
        raise ValueError(f'{source_format} converts into a {module.upper()}, not into '
                         f'{type(config).__name__}')
    return converter(source, config)


def _source_files(source, source_format):
    if source_format == cpvton_torch.FORMAT:
        return [os.fspath(source)] if os.path.isfile(source) else []
    prefix = viton_tf1.checkpoint_prefix(source)
    files = [prefix + '.index'] if os.path.isfile(prefix + '.index') else []
    return files + sorted(glob.glob(glob.escape(prefix) + '.data-*'))


def _source_path(source, source_format):
    if source_format in (viton_tf1.STAGE1_FORMAT, viton_tf1.STAGE2_FORMAT):
        source = viton_tf1.checkpoint_prefix(source)
    return os.path.abspath(os.fspath(source))


def source_files(source: os.PathLike | str, source_format: str) -> list[dict[str, str | int]]:
    """The manifest's ``source_files``: name, size and sha256 of each file of the source."""
    return [{'name': os.path.basename(f), 'bytes': os.path.getsize(f),
             'sha256': weights.sha256(f)}
            for f in _source_files(_source_path(source, source_format), source_format)]


def _count(variables):
    return int(sum(int(np.prod(v.shape)) for v in variables))


def write_converted(model: tf.keras.Model, out_dir: os.PathLike | str,
                    source_path: os.PathLike | str, module: str, config: _Config,
                    source_format: str | None = None, overwrite: bool = False) -> str:
    """Writes converted ``model`` (a ``module`` network built from ``config``) to ``out_dir``
    with its manifest; returns the directory's absolute path.

    Refuses an existing ``out_dir`` unless ``overwrite`` (weights.WeightsError).
    """
    if module not in spec.MODULES:
        raise ValueError(f'unknown module {module!r}; known: {spec.MODULES}')
    if factory.module_for(model) != module:
        raise ValueError(f'the model is a {factory.module_for(model).upper()}, not a '
                         f'{module.upper()}')
    if model.config != config:
        raise ValueError(f'the model was built from {model.config}, not from {config}')
    source_format = source_format or _DEFAULT_FORMAT[module]
    if FORMATS.get(source_format, (None,))[0] != module:
        raise ValueError(f'source format {source_format!r} does not convert into a {module}')
    out_dir = os.path.abspath(os.fspath(out_dir))
    if os.path.exists(out_dir) and not overwrite:
        raise weights.WeightsError(out_dir, 'already exists; pass overwrite to replace it')
    return weights.save(model, out_dir, source=_source_path(source_path, source_format),
                        overwrite=overwrite, converted_from=source_format,
                        converter_version=CONVERTER_VERSION,
                        source_files=source_files(source_path, source_format),
                        trainable_parameters=_count(model.trainable_weights))


def convert_to_directory(source: os.PathLike | str, source_format: str, config: _Config,
                         out_dir: os.PathLike | str, overwrite: bool = False) -> str:
    """``convert`` then ``write_converted``: what ``checkpoints/convert.py`` runs."""
    out_dir = os.path.abspath(os.fspath(out_dir))
    if os.path.exists(out_dir) and not overwrite:  # before the (slow) conversion
        raise weights.WeightsError(out_dir, 'already exists; pass overwrite to replace it')
    model = convert(source, source_format, config)
    return write_converted(model, out_dir, source, FORMATS[source_format][0], config,
                           source_format=source_format, overwrite=overwrite)


def _config_differences(expected, found):
    keys = sorted(set(expected) | set(found))
    return [f'{k}: {found.get(k, "<absent>")!r} where {expected.get(k, "<absent>")!r} was '
            f'expected' for k in keys if expected.get(k) != found.get(k)]


def load_converted(directory: os.PathLike | str, module: str | None = None,
                   config: _Config | None = None) -> tf.keras.Model:
    """The network saved in ``directory``: built from its manifest's config, weights restored.

    ``module`` ('gmm', 'edm', 'rm') and ``config``, when given, must match the manifest's. Every
    weight of the network must be in the checkpoint and every checkpointed weight in the network.
    Raises errors.InputNotFoundError (no directory or manifest) or weights.WeightsError.
    """
    manifest = weights.read_manifest(directory)
    manifest_path = os.path.join(os.fspath(directory), weights.MANIFEST)
    found = manifest['module']
    if module is not None and found != module:
        raise weights.WeightsError(directory, f'holds a {found.upper()}, expected a '
                                              f'{module.upper()}')
    source_format = manifest.get('converted_from')
    if source_format is not None:
        if FORMATS.get(source_format, (None,))[0] != found:
            raise weights.WeightsError(manifest_path, f'says converted_from {source_format!r} '
                                                      f'but module {found!r}')
        version = manifest.get('converter_version')
        if not isinstance(version, int) or version > CONVERTER_VERSION:
            raise weights.WeightsError(manifest_path, f'converter_version {version!r}: this '
                                                      f'package reads up to {CONVERTER_VERSION}')
    if config is not None:
        if not isinstance(config, type(configs.get(found))):
            raise weights.WeightsError(directory, f'holds a {found.upper()}, not a network for '
                                                  f'{type(config).__name__}')
        differences = _config_differences(configs.to_dict(config), manifest.get('config', {}))
        if differences:
            raise weights.WeightsError(manifest_path, f'config differs from the one expected: '
                                                      f'{"; ".join(differences)}')
    model = weights.load(directory, module=found)
    checkpointed = [name for name, _ in tf.train.list_variables(
            os.path.join(os.fspath(directory), weights.CHECKPOINT))
            if name.startswith('model/') and name.endswith('/.ATTRIBUTES/VARIABLE_VALUE')]
    if len(checkpointed) != len(model.weights):
        raise weights.WeightsError(directory, f'checkpoint holds {len(checkpointed)} weights, '
                                              f'the network {len(model.weights)}')
    if manifest.get('parameters') not in (None, _count(model.weights)):
        raise weights.WeightsError(manifest_path, f'says {manifest["parameters"]} parameters, '
                                                  f'the network has {_count(model.weights)}')
    return model
