"""VITON TF1 checkpoints, written here with tf.compat.v1 under the original names (training
extras included), convert to the NumPy reference's numbers; mismatches are named errors."""

import numpy as np
import pytest
import tensorflow as tf

from everywear_tf import configs
from everywear_tf import spec
from everywear_tf.convert import tables
from everywear_tf.convert import viton_tf1
from everywear_tf.models import blocks
from everywear_tf.models import factory
from tests.models import edm_test
from tests.models import rm_test


def _write_tf1(prefix, tensors):
    """A TF1 Saver checkpoint holding ``tensors`` ({name: array}) as variables."""
    with tf.Graph().as_default():
        for name, value in tensors.items():
            scope, _, short = name.rpartition('/')
            if scope:
                with tf.compat.v1.variable_scope(scope):
                    tf.compat.v1.get_variable(short, initializer=tf.constant(value))
            else:
                tf.compat.v1.get_variable(short, initializer=tf.constant(value))
        saver = tf.compat.v1.train.Saver()
        with tf.compat.v1.Session() as session:
            session.run(tf.compat.v1.global_variables_initializer())
            return saver.save(session, prefix)


def _stage1_tensors(config, rng):
    """The generator's variables with VITON's names and random values, plus training extras."""
    model = factory.build(config)
    paths = blocks.named_weights(model)
    out = {}
    for rule in viton_tf1.stage1_table().rules:
        shape = tuple(paths[rule.target].shape)
        if rule.target.endswith('moving_variance') or rule.target.endswith('gamma'):
            value = rng.uniform(0.5, 1.5, shape)
        elif 'kernel' in rule.target:
            value = rng.normal(0, 1 / np.sqrt(np.prod(shape[:2]) * shape[2]), shape)
        else:
            value = rng.normal(0, 0.1, shape)
        out[rule.source] = value.astype(np.float32)
    for name in list(out):
        if not name.endswith(('Variable_2', 'Variable_3')):
            out[name + '/Adam'] = np.zeros_like(out[name])
            out[name + '/Adam_1'] = np.zeros_like(out[name])
    out['generator_train/beta1_power'] = np.float32(0.5)
    out['generator_train/beta2_power'] = np.float32(0.9)
    out['global_step'] = np.int64(15000)
    return out


def _stage2_tensors(config, rng, stage1):
    model = factory.build(config)
    paths = blocks.named_weights(model)
    out = dict(stage1)  # model-6000 carries the stage-1 generator too
    for rule in viton_tf1.stage2_table().rules:
        shape = tuple(paths[rule.target].shape)
        value = (rng.uniform(0.5, 1.5, shape) if rule.target.endswith('gamma')
                 else rng.normal(0, 0.3, shape))
        out[rule.source] = value.astype(np.float32)
        out[rule.source + '/Adam'] = np.zeros(shape, np.float32)
    return out


@pytest.fixture(scope='module')
def checkpoints(tmp_path_factory):
    rng = np.random.default_rng(0)
    root = tmp_path_factory.mktemp('viton')
    stage1 = _stage1_tensors(configs.get(spec.EDM, configs.LITE, ngf=4), rng)
    stage2 = _stage2_tensors(configs.get(spec.RM, configs.LITE), rng, stage1)
    return (_write_tf1(str(root / 'stage1' / 'model-15000'), stage1), stage1,
            _write_tf1(str(root / 'stage2' / 'model-6000'), stage2), stage2)


def test_stage1_converts_to_the_reference_numbers(checkpoints):
    prefix, tensors, _, _ = checkpoints
    model = viton_tf1.convert_stage1(prefix, configs.get(spec.EDM, configs.LITE, ngf=4))
    weights = {rule.target: tensors[rule.source].astype(np.float64)
               for rule in viton_tf1.stage1_table().rules}
    x = np.random.default_rng(1).uniform(-1, 1, (2, 128, 64, 25)).astype(np.float32)
    got = model(x, training=False)
    expected = edm_test._forward(weights, x)
    for key in ('mask', 'image'):
        np.testing.assert_allclose(got[key].numpy(), expected[key], atol=1e-4, err_msg=key)


def test_stage2_converts_to_the_reference_numbers(checkpoints):
    _, _, prefix, tensors = checkpoints
    model = viton_tf1.convert_stage2(prefix, configs.get(spec.RM, configs.LITE))
    weights = {rule.target: tensors[rule.source].astype(np.float64)
               for rule in viton_tf1.stage2_table().rules}
    inputs = rm_test._inputs(2, 32, 24, seed=0)
    got = model(inputs)
    expected = rm_test._forward(weights, *inputs)
    for key in ('alpha', 'tryon'):
        np.testing.assert_allclose(got[key].numpy(), expected[key], atol=1e-4, err_msg=key)


def test_mismatches_are_named(checkpoints, tmp_path):
    _, stage1, _, _ = checkpoints
    broken = dict(stage1)
    del broken['generator/decoder_3/batchnorm/Variable_2']
    broken['generator/encoder_7/conv/filter'] = np.zeros((4, 4, 2, 2), np.float32)
    prefix = _write_tf1(str(tmp_path / 'broken' / 'model-1'), broken)
    with pytest.raises(tables.CheckpointError) as raised:
        viton_tf1.convert_stage1(prefix, configs.get(spec.EDM, configs.LITE, ngf=4))
    message = str(raised.value)
    assert "missing tensor 'generator/decoder_3/batchnorm/Variable_2'" in message
    assert "unexpected tensors ['generator/encoder_7/conv/filter']" in message
    with pytest.raises(tables.CheckpointError, match='needs'):
        viton_tf1.convert_stage1(checkpoints[0], configs.get(spec.EDM, configs.LITE, ngf=8))


def test_missing_checkpoint(tmp_path):
    with pytest.raises(tables.CheckpointError, match='not a readable TF checkpoint'):
        viton_tf1.convert_stage2(str(tmp_path / 'model-6000'))


def test_full_size_names_and_shapes():
    """The stage-1 table fills the full EDM from viton.md §1.5's names and shapes."""
    model = factory.build(configs.get(spec.EDM, configs.FULL))
    paths = blocks.named_weights(model)
    shapes = {'generator/encoder_1/conv/filter': (4, 4, 25, 64),
              'generator/decoder_5/deconv/filter': (4, 4, 512, 1024),
              'generator/decoder_1/deconv/filter': (4, 4, 4, 128)}
    table = viton_tf1.stage1_table()
    assert len(table.rules) == 52
    by_source = {rule.source: tuple(paths[rule.target].shape) for rule in table.rules}
    for name, shape in shapes.items():
        assert by_source[name] == shape
    rm = factory.build(configs.get(spec.RM, configs.FULL))
    rm_paths = blocks.named_weights(rm)
    assert {r.source: tuple(rm_paths[r.target].shape) for r in viton_tf1.stage2_table().rules}[
            'refine_generator/g_256_conv1/weights'] == (3, 3, 6, 64)
