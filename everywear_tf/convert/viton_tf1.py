"""VITON's TF1 checkpoints → our Edm (``model-15000``, scope ``generator``) and Rm
(``model-6000``, scope ``refine_generator``).

Names follow model_zalando_mask_content.py / model_zalando_tps_warp.py: batch norms are plain
``tf.Variable``s named Variable (γ), Variable_1 (β), Variable_2 (mean), Variable_3 (variance);
conv2d_transpose filters are [h, w, out, in] like Keras'. Training checkpoints also hold Adam
slots, beta powers and the global step, and model-6000 holds the stage-1 generator too: all
excluded by name.
"""

import tensorflow as tf

from everywear_tf import configs
from everywear_tf import spec
from everywear_tf.convert import tables
from everywear_tf.models import factory

TRAINING_EXTRAS = (r'.*/Adam(_1)?', r'(.*/)?beta[12]_power', r'global_step',
                   r'generator_train/.*', r'refine_generator_train/.*')
_BATCH_NORM = (('gamma', 'Variable'), ('beta', 'Variable_1'), ('moving_mean', 'Variable_2'),
               ('moving_variance', 'Variable_3'))


def stage1_table():
    rules = [tables.Rule('encoder_1_conv/kernel', 'generator/encoder_1/conv/filter')]
    for level in range(2, 7):
        rules.append(tables.Rule(f'encoder_{level}_conv/kernel',
                                 f'generator/encoder_{level}/conv/filter'))
        rules += [tables.Rule(f'encoder_{level}_batchnorm/{ours}',
                              f'generator/encoder_{level}/batchnorm/{theirs}')
                  for ours, theirs in _BATCH_NORM]
    for level in range(1, 7):
        rules.append(tables.Rule(f'decoder_{level}_deconv/kernel',
                                 f'generator/decoder_{level}/deconv/filter'))
        if level > 1:
            rules += [tables.Rule(f'decoder_{level}_batchnorm/{ours}',
                                  f'generator/decoder_{level}/batchnorm/{theirs}')
                      for ours, theirs in _BATCH_NORM]
    return tables.Table(tuple(rules), exclude=TRAINING_EXTRAS + (r'refine_generator/.*',))


def stage2_table():
    rules = []
    for i in range(1, 4):
        scope = f'refine_generator/g_256_conv{i}'
        rules += [tables.Rule(f'g_256_conv{i}/kernel', f'{scope}/weights'),
                  tables.Rule(f'g_256_conv{i}_layernorm/beta', f'{scope}/LayerNorm/beta'),
                  tables.Rule(f'g_256_conv{i}_layernorm/gamma', f'{scope}/LayerNorm/gamma')]
    rules += [tables.Rule('g_1024_final/kernel', 'refine_generator/g_1024_final/weights'),
              tables.Rule('g_1024_final/bias', 'refine_generator/g_1024_final/biases')]
    # model-6000 also carries the whole stage-1 generator it was trained behind.
    return tables.Table(tuple(rules), exclude=TRAINING_EXTRAS + (r'generator/.*',))


def read_checkpoint(prefix):
    """{name: array} of a TF1 checkpoint (prefix such as ``model/model-15000``)."""
    try:
        reader = tf.train.load_checkpoint(prefix)
    except (tf.errors.OpError, ValueError) as e:
        raise tables.CheckpointError(prefix, f'not a readable TF checkpoint: '
                                             f'{str(e).splitlines()[0]}') from None
    return {name: reader.get_tensor(name) for name in reader.get_variable_to_shape_map()}


def convert_stage1(prefix, config=None):
    config = config or configs.get(spec.EDM, configs.FULL)
    return tables.apply(stage1_table(), read_checkpoint(prefix), factory.build(config), prefix)


def convert_stage2(prefix, config=None):
    config = config or configs.get(spec.RM, configs.FULL)
    return tables.apply(stage2_table(), read_checkpoint(prefix), factory.build(config), prefix)
