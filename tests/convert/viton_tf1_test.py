"""VITON TF1 checkpoints, written here with tf.compat.v1 the way the originals' training graphs
name things (tf.Variable batch norms, a real AdamOptimizer under 'generator_train', the global
step, and in stage 2 the whole stage-1 generator), convert to the NumPy reference's numbers;
mismatches are named errors."""

import os

import numpy as np
import pytest
import tensorflow as tf

from everywear_tf import configs
from everywear_tf import errors as base_errors
from everywear_tf import spec
from everywear_tf.convert import errors
from everywear_tf.convert import tables
from everywear_tf.convert import viton_tf1
from everywear_tf.models import blocks
from everywear_tf.models import factory

from tests.models import edm_test
from tests.models import rm_test

EDM_CONFIG = configs.get(spec.EDM, configs.LITE, ngf=4)
RM_CONFIG = configs.get(spec.RM, configs.LITE)


def _write_tf1(prefix, tensors):
    """A TF1 Saver checkpoint holding ``tensors`` ({name: array}) as get_variable variables."""
    with tf.Graph().as_default():
        for name, value in tensors.items():
            scope, _, short = name.rpartition('/')
            with tf.compat.v1.variable_scope(scope or tf.compat.v1.get_variable_scope()):
                tf.compat.v1.get_variable(short, initializer=tf.constant(value))
        saver = tf.compat.v1.train.Saver()
        with tf.compat.v1.Session() as session:
            session.run(tf.compat.v1.global_variables_initializer())
            return saver.save(session, prefix)


def _random(target, shape, rng):
    if target.endswith(('moving_variance', 'gamma')):
        return rng.uniform(0.5, 1.5, shape).astype(np.float32)
    if target.endswith('kernel'):
        fan_in = np.prod(shape[:2]) * shape[2]
        return rng.normal(0, 1 / np.sqrt(fan_in), shape).astype(np.float32)
    return rng.normal(0, 0.1, shape).astype(np.float32)


def _values(table, config, rng):
    """{source name: random array} for ``table`` at ``config``'s shapes."""
    targets = blocks.named_weights(factory.build(config))
    return {rule.source: _random(rule.target, rule.source_shape(targets[rule.target].shape), rng)
            for rule in table.rules}


def _stage1_tensors(config, rng):
    """The generator's variables with VITON's names and random values, plus training extras."""
    out = _values(viton_tf1.stage1_table(), config, rng)
    for name in list(out):
        if not name.endswith(('Variable_2', 'Variable_3')):
            out[name + '/Adam'] = np.zeros_like(out[name])
            out[name + '/Adam_1'] = np.zeros_like(out[name])
    out['generator_train/beta1_power'] = np.float32(0.5)
    out['generator_train/beta2_power'] = np.float32(0.9)
    out['global_step'] = np.int64(15000)
    return out


def _stage2_tensors(config, rng, stage1):
    out = dict(stage1)  # model-6000 carries the stage-1 generator too
    for name, value in _values(viton_tf1.stage2_table(), config, rng).items():
        out[name] = value
        out[name + '/Adam'] = np.zeros_like(value)
    return out


def _generator_variables(values):
    """Stage 1's variables created as create_generator does: get_variable filters,
    tf.Variable batch norms (auto-named Variable..Variable_3 in creation order)."""
    variables = {}
    with tf.compat.v1.variable_scope('generator'):
        for kind, levels in (('encoder', range(1, 7)), ('decoder', range(6, 0, -1))):
            for level in levels:
                scope = f'generator/{kind}_{level}'
                with tf.compat.v1.variable_scope(f'{kind}_{level}'):
                    conv = 'conv' if kind == 'encoder' else 'deconv'
                    with tf.compat.v1.variable_scope(conv):
                        name = f'{scope}/{conv}/filter'
                        variables[name] = tf.compat.v1.get_variable(
                                'filter', initializer=tf.constant(values[name]))
                    if (kind, level) not in (('encoder', 1), ('decoder', 1)):
                        with tf.compat.v1.variable_scope('batchnorm'):
                            for i, suffix in enumerate(('', '_1', '_2', '_3')):
                                name = f'{scope}/batchnorm/Variable{suffix}'
                                variables[name] = tf.compat.v1.Variable(
                                        values[name], trainable=i < 2)
    return variables


def _refiner_variables(values):
    """Stage 2's refiner as slim names it: weights, LayerNorm/{beta,gamma}, final biases."""
    variables = {}
    with tf.compat.v1.variable_scope('refine_generator'):
        for layer in ('g_256_conv1', 'g_256_conv2', 'g_256_conv3', 'g_1024_final'):
            with tf.compat.v1.variable_scope(layer):
                names = ['weights', 'LayerNorm/beta', 'LayerNorm/gamma'] if layer != \
                    'g_1024_final' else ['weights', 'biases']
                for short in names:
                    name = f'refine_generator/{layer}/{short}'
                    scope, _, leaf = short.rpartition('/')
                    with tf.compat.v1.variable_scope(scope or tf.compat.v1.get_variable_scope()):
                        variables[name] = tf.compat.v1.get_variable(
                                leaf, initializer=tf.constant(values[name]))
    return variables


def _write_training_checkpoint(prefix, generator, refiner=None):
    """The training graph's checkpoint: Adam (β1 0.5) under name scope 'generator_train' over the
    trainable variables of the stage being trained, and the global step."""
    with tf.Graph().as_default():
        created = _generator_variables(generator)
        if refiner is not None:
            created = _refiner_variables(refiner)
        trained = [v for v in created.values() if v.trainable]
        loss = tf.add_n([tf.reduce_sum(tf.square(v)) for v in trained])
        with tf.name_scope('generator_train'):
            train = tf.compat.v1.train.AdamOptimizer(2e-4, 0.5).minimize(loss, var_list=trained)
        step = tf.compat.v1.train.get_or_create_global_step()
        with tf.compat.v1.Session() as session:
            session.run(tf.compat.v1.global_variables_initializer())
            session.run([train, tf.compat.v1.assign_add(step, 1)])  # slots become non-zero
            saved = {v.op.name: session.run(v) for v in tf.compat.v1.global_variables()}
            return tf.compat.v1.train.Saver().save(session, prefix), saved


@pytest.fixture(scope='module')
def checkpoints(tmp_path_factory):
    rng = np.random.default_rng(0)
    root = tmp_path_factory.mktemp('viton')
    stage1 = _values(viton_tf1.stage1_table(), EDM_CONFIG, rng)
    stage2 = _values(viton_tf1.stage2_table(), RM_CONFIG, rng)
    prefix1, saved1 = _write_training_checkpoint(str(root / 'stage1' / 'model-15000'), stage1)
    prefix2, saved2 = _write_training_checkpoint(str(root / 'stage2' / 'model-6000'), stage1,
                                                 stage2)
    return {'stage1': (prefix1, saved1), 'stage2': (prefix2, saved2)}


@pytest.mark.slow
def test_the_training_graphs_hold_the_names_the_tables_expect(checkpoints):
    names1 = set(checkpoints['stage1'][1])
    assert {'generator_train/beta1_power', 'generator_train/beta2_power', 'global_step',
            'generator/encoder_2/batchnorm/Variable_3',
            'generator/decoder_5/deconv/filter/Adam_1'} <= names1
    assert len(names1) == 52 + 64 + 3  # variables, Adam slots of the 32 trainable, counters
    names2 = set(checkpoints['stage2'][1])
    assert len(names2) == 52 + 11 + 22 + 3
    assert 'refine_generator/g_256_conv2/LayerNorm/gamma/Adam' in names2
    assert not any(n.startswith('generator/') and 'Adam' in n for n in names2)


def test_stage1_converts_to_the_reference_numbers(checkpoints):
    prefix, saved = checkpoints['stage1']
    model = viton_tf1.convert_stage1(prefix, EDM_CONFIG)
    weights = {rule.target: saved[rule.source].astype(np.float64)
               for rule in viton_tf1.stage1_table().rules}
    x = np.random.default_rng(1).uniform(-1, 1, (2, 128, 64, 25)).astype(np.float32)
    got = model(x, training=False)
    expected = edm_test._forward(weights, x)
    for key in ('mask', 'image'):
        np.testing.assert_allclose(got[key].numpy(), expected[key], atol=1e-4, err_msg=key)


def test_stage2_converts_to_the_reference_numbers(checkpoints):
    prefix, saved = checkpoints['stage2']
    model = viton_tf1.convert_stage2(prefix, RM_CONFIG)
    weights = {rule.target: saved[rule.source].astype(np.float64)
               for rule in viton_tf1.stage2_table().rules}
    inputs = rm_test._inputs(2, 32, 24, seed=0)
    got = model(inputs)
    expected = rm_test._forward(weights, *inputs)
    for key in ('alpha', 'tryon'):
        np.testing.assert_allclose(got[key].numpy(), expected[key], atol=1e-4, err_msg=key)


def test_any_file_of_the_checkpoint_names_it(checkpoints):
    prefix, saved = checkpoints['stage2']
    for path in (prefix + '.index', prefix + '.data-00000-of-00001', prefix + '.meta'):
        model = viton_tf1.convert_stage2(path, RM_CONFIG)
        np.testing.assert_array_equal(model.final.bias.numpy(),
                                      saved['refine_generator/g_1024_final/biases'])


def test_the_stages_are_not_mixed_up(checkpoints):
    with pytest.raises(errors.CheckpointError, match='a stage-2 checkpoint .*viton_stage2'):
        viton_tf1.convert_stage1(checkpoints['stage2'][0], EDM_CONFIG)
    with pytest.raises(errors.CheckpointError, match='a stage-1 checkpoint .*viton_stage1'):
        viton_tf1.convert_stage2(checkpoints['stage1'][0], RM_CONFIG)


def test_mismatches_are_named(tmp_path):
    rng = np.random.default_rng(2)
    broken = _stage1_tensors(EDM_CONFIG, rng)
    del broken['generator/decoder_3/batchnorm/Variable_2']
    broken['generator/encoder_7/conv/filter'] = np.zeros((4, 4, 2, 2), np.float32)
    broken['generator/encoder_7/conv/filter/Adam'] = np.zeros((4, 4, 2, 2), np.float32)
    broken['generator/decoder_2/batchnorm/Variable_2/Adam'] = np.zeros(4, np.float32)
    prefix = _write_tf1(str(tmp_path / 'broken' / 'model-1'), broken)
    with pytest.raises(errors.CheckpointError) as raised:
        viton_tf1.convert_stage1(prefix, EDM_CONFIG)
    message = str(raised.value)
    assert message.startswith(prefix)
    assert ("missing tensors: 'generator/decoder_3/batchnorm/Variable_2' "
            "(for decoder_3_batchnorm/moving_mean)") in message
    # Adam slots are excluded only for the variables the table converts.
    for name in ('generator/encoder_7/conv/filter', 'generator/encoder_7/conv/filter/Adam',
                 'generator/decoder_2/batchnorm/Variable_2/Adam'):
        assert f"'{name}'" in message
    assert len(raised.value.problems) == 4
    wider = configs.get(spec.EDM, configs.LITE, ngf=8)
    with pytest.raises(errors.CheckpointError, match=r"wrong shapes: 'generator/encoder_1/conv/"
                       r"filter' has shape \(4, 4, 25, 4\), encoder_1_conv/kernel needs "
                       r"\(4, 4, 25, 8\)"):
        viton_tf1.convert_stage1(_write_tf1(str(tmp_path / 'ok' / 'model-2'),
                                            _stage1_tensors(EDM_CONFIG, rng)), wider)


def test_missing_and_corrupt_checkpoints(checkpoints, tmp_path):
    with pytest.raises(errors.CheckpointNotFoundError, match='no TF checkpoint here') as raised:
        viton_tf1.convert_stage2(str(tmp_path / 'model-6000'))
    assert isinstance(raised.value, base_errors.InputNotFoundError)
    assert str(tmp_path / 'model-6000') in str(raised.value)
    prefix, _ = checkpoints['stage2']
    copy = str(tmp_path / 'cut' / 'model-6000')
    os.makedirs(os.path.dirname(copy))
    data = open(prefix + '.data-00000-of-00001', 'rb').read()
    open(copy + '.index', 'wb').write(open(prefix + '.index', 'rb').read())
    open(copy + '.data-00000-of-00001', 'wb').write(data[:len(data) // 2])
    with pytest.raises(errors.CheckpointError, match='unreadable tensors') as raised:
        viton_tf1.convert_stage2(copy, RM_CONFIG)
    assert copy in str(raised.value)
    open(copy + '.index', 'wb').write(b'not an index at all')
    with pytest.raises(errors.CheckpointError, match='not a readable TF checkpoint'):
        viton_tf1.convert_stage2(copy, RM_CONFIG)


def test_full_size_names_and_shapes():
    """The tables against the full networks' shapes, without running them (viton.md §1.5,
    §2.1), and the originals' trainable parameter counts."""
    edm = factory.build(configs.get(spec.EDM, configs.FULL))
    needed = viton_tf1.stage1_table().source_shapes(edm)
    assert len(needed) == 52
    channels = [64, 128, 256, 512, 512, 512]
    expected = {'generator/encoder_1/conv/filter': (4, 4, 25, 64),
                'generator/decoder_1/deconv/filter': (4, 4, 4, 128)}
    for level in range(2, 7):
        expected[f'generator/encoder_{level}/conv/filter'] = (4, 4, channels[level - 2],
                                                              channels[level - 1])
        for suffix in ('', '_1', '_2', '_3'):
            expected[f'generator/encoder_{level}/batchnorm/Variable{suffix}'] = \
                (channels[level - 1],)
    for level in range(2, 7):
        inputs = channels[5] if level == 6 else 2 * channels[level - 1]
        expected[f'generator/decoder_{level}/deconv/filter'] = (4, 4, channels[level - 2],
                                                                inputs)
        for suffix in ('', '_1', '_2', '_3'):
            expected[f'generator/decoder_{level}/batchnorm/Variable{suffix}'] = \
                (channels[level - 2],)
    assert needed == expected
    trainable = sum(int(np.prod(s)) for n, s in needed.items()
                    if not n.endswith(('Variable_2', 'Variable_3')))
    assert trainable == 29_269_632
    rm = factory.build(configs.get(spec.RM, configs.FULL))
    needed = viton_tf1.stage2_table().source_shapes(rm)
    assert needed == {
            'refine_generator/g_256_conv1/weights': (3, 3, 6, 64),
            'refine_generator/g_256_conv2/weights': (3, 3, 64, 64),
            'refine_generator/g_256_conv3/weights': (3, 3, 64, 64),
            **{f'refine_generator/g_256_conv{i}/LayerNorm/{p}': (64,)
               for i in (1, 2, 3) for p in ('beta', 'gamma')},
            'refine_generator/g_1024_final/weights': (1, 1, 64, 1),
            'refine_generator/g_1024_final/biases': (1,)}
    assert sum(int(np.prod(s)) for s in needed.values()) == 77_633
    for table, model in ((viton_tf1.stage1_table(), edm), (viton_tf1.stage2_table(), rm)):
        assert sorted(table.targets) == sorted(blocks.named_weights(model))
        assert all(rule.transform == tables.NONE for rule in table.rules)
