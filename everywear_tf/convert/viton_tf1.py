"""VITON's TF1 checkpoints → our Edm (stage 1, ``model/stage1/model-15000``, scope ``generator``)
and Rm (stage 2, ``model/stage2/model-6000``, scope ``refine_generator``).

Names follow model_zalando_mask_content.py and model_zalando_tps_warp.py (reference viton.md §1.5,
§2.1): the batch norms are plain ``tf.Variable``s in ``batchnorm`` scopes, named Variable (γ),
Variable_1 (β), Variable_2 (population mean), Variable_3 (population variance); convolution
filters are HWIO and ``conv2d_transpose`` filters [h, w, out, in], both Keras' layouts, so nothing
is transposed. The refiner's slim layers hold ``weights``, ``biases`` and
``LayerNorm/{beta,gamma}``.

Training checkpoints also hold, excluded by explicit patterns: the Adam slots ``<variable>/Adam``
and ``<variable>/Adam_1`` of the converted trainable variables, ``generator_train/beta1_power``,
``generator_train/beta2_power`` and ``global_step``; model-6000 also holds the whole stage-1
generator it was trained behind (``generator/*``, with population statistics that drifted during
stage-2 training: stage 1 must come from model-15000).
"""

import os
import re

import numpy as np
import tensorflow as tf

from everywear_tf import configs
from everywear_tf import spec
from everywear_tf.convert import errors
from everywear_tf.convert import tables
from everywear_tf.models import factory

STAGE1_FORMAT = 'viton_stage1'
STAGE2_FORMAT = 'viton_stage2'
ADAM_SLOTS = ('Adam', 'Adam_1')
# The optimizer's non-slot variables and the step counter (beta powers under the 'generator_train'
# name scope as TF ≥ 1.4 names them, or at the top level).
TRAINING_COUNTERS = (r'(generator_train/)?beta1_power', r'(generator_train/)?beta2_power',
                     r'global_step')
_BATCH_NORM = (('gamma', 'Variable'), ('beta', 'Variable_1'), ('moving_mean', 'Variable_2'),
               ('moving_variance', 'Variable_3'))
_SUFFIXES = re.compile(r'\.(index|meta|data-\d{5}-of-\d{5})$')


def _batch_norm(target, scope):
    return [tables.Rule(f'{target}/{ours}', f'{scope}/batchnorm/{theirs}')
            for ours, theirs in _BATCH_NORM]


def stage1_table() -> tables.Table:
    """52 rules: 12 filters, 10 batch norms × 4."""
    rules = [tables.Rule('encoder_1_conv/kernel', 'generator/encoder_1/conv/filter')]
    for level in range(2, 7):
        rules.append(tables.Rule(f'encoder_{level}_conv/kernel',
                                 f'generator/encoder_{level}/conv/filter'))
        rules += _batch_norm(f'encoder_{level}_batchnorm', f'generator/encoder_{level}')
    for level in range(6, 0, -1):
        rules.append(tables.Rule(f'decoder_{level}_deconv/kernel',
                                 f'generator/decoder_{level}/deconv/filter'))
        if level > 1:
            rules += _batch_norm(f'decoder_{level}_batchnorm', f'generator/decoder_{level}')
    # Adam slots exist for the trainable variables only, not the population statistics.
    trainable = [rule.source for rule in rules
                 if not rule.source.endswith(('/Variable_2', '/Variable_3'))]
    return tables.Table(tuple(rules),
                        exclude=tables.slots(trainable, ADAM_SLOTS) + TRAINING_COUNTERS)


def stage2_table() -> tables.Table:
    """11 rules: three 3×3 convolutions with their LayerNorms, the final 1×1 convolution."""
    rules = []
    for i in range(1, 4):
        scope = f'refine_generator/g_256_conv{i}'
        rules += [tables.Rule(f'g_256_conv{i}/kernel', f'{scope}/weights'),
                  tables.Rule(f'g_256_conv{i}_layernorm/beta', f'{scope}/LayerNorm/beta'),
                  tables.Rule(f'g_256_conv{i}_layernorm/gamma', f'{scope}/LayerNorm/gamma')]
    rules += [tables.Rule('g_1024_final/kernel', 'refine_generator/g_1024_final/weights'),
              tables.Rule('g_1024_final/bias', 'refine_generator/g_1024_final/biases')]
    sources = [rule.source for rule in rules]
    return tables.Table(tuple(rules), exclude=tables.slots(sources, ADAM_SLOTS) +
                        TRAINING_COUNTERS + (r'generator/.*',))


def checkpoint_prefix(path: os.PathLike | str) -> str:
    """``path`` as a checkpoint prefix: a trailing .index, .meta or .data-* is dropped."""
    return _SUFFIXES.sub('', os.fspath(path))


def read_checkpoint(path: os.PathLike | str) -> dict[str, np.ndarray]:
    """{name: array} of a TF1 (or TF2 name-based) checkpoint, given its prefix (such as
    ``model/stage1/model-15000``), one of its files, or a directory with a ``checkpoint`` file."""
    prefix = checkpoint_prefix(path)
    if not (tf.io.gfile.exists(prefix + '.index') or tf.io.gfile.isdir(prefix) or
            tf.io.gfile.exists(prefix)):
        raise errors.CheckpointNotFoundError(
                prefix, f'no TF checkpoint here (no {os.path.basename(prefix)}.index; give the '
                        f'prefix, e.g. model/stage1/model-15000)')
    try:
        reader = tf.train.load_checkpoint(prefix)
        names = sorted(reader.get_variable_to_shape_map())
    except (tf.errors.OpError, ValueError) as e:
        raise errors.CheckpointError(prefix, f'not a readable TF checkpoint '
                                             f'({_first_line(e)})') from None
    tensors, broken = {}, []
    for name in names:
        try:
            tensors[name] = reader.get_tensor(name)
        except Exception as e:  # pylint: disable=broad-except  (TF raises IndexError, OpError...)
            broken.append(f'{name!r} ({_first_line(e)})')
    if broken:
        raise errors.CheckpointError(prefix, f'unreadable tensors (a truncated or corrupt data '
                                             f'file?): {"; ".join(broken)}')
    return tensors


def _first_line(e):
    text = str(getattr(e, 'message', '') or e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def _check_stage(tensors, prefix, stage):
    """Names the other stage's checkpoint rather than listing every tensor as a mismatch."""
    refiner = any(name.startswith('refine_generator/') for name in tensors)
    generator = any(name.startswith('generator/') for name in tensors)
    if stage == 1 and refiner:
        raise errors.CheckpointError(
                prefix, 'holds refine_generator/* variables: a stage-2 checkpoint (model-6000); '
                        'convert it with viton_stage2 (its generator/* copy is not the stage-1 '
                        'release, take stage 1 from model-15000)')
    if stage == 2 and generator and not refiner:
        raise errors.CheckpointError(
                prefix, 'holds generator/* but no refine_generator/* variables: a stage-1 '
                        'checkpoint (model-15000); convert it with viton_stage1')


_STAGES = {1: (spec.EDM, configs.EdmConfig, stage1_table),
           2: (spec.RM, configs.RmConfig, stage2_table)}


def _convert(stage, ckpt_prefix, config):
    module, config_type, table = _STAGES[stage]
    config = config or configs.get(module, configs.FULL)
    if not isinstance(config, config_type):
        raise TypeError(f'viton_stage{stage} converts into an {config_type.__name__} network, '
                        f'got {config!r}')
    tensors = read_checkpoint(ckpt_prefix)
    prefix = checkpoint_prefix(ckpt_prefix)
    _check_stage(tensors, prefix, stage)
    return tables.apply_table(table(), tensors, factory.build(config), prefix)


def convert_stage1(ckpt_prefix: os.PathLike | str,
                   config: configs.EdmConfig | None = None) -> tf.keras.Model:
    """An Edm (``config``, full by default) holding the stage-1 generator of ``ckpt_prefix``."""
    return _convert(1, ckpt_prefix, config)


def convert_stage2(ckpt_prefix: os.PathLike | str,
                   config: configs.RmConfig | None = None) -> tf.keras.Model:
    """An Rm (``config``, full by default) holding the refinement network of ``ckpt_prefix``."""
    return _convert(2, ckpt_prefix, config)
