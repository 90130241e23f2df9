"""Conversion tables: rule validation, transforms, and apply_table's strictness on a tiny model."""

import numpy as np
import pytest
import tensorflow as tf

from everywear_tf import errors as base_errors
from everywear_tf.convert import errors
from everywear_tf.convert import tables
from everywear_tf.models import blocks


def _model():
    """Conv (HWIO kernel, bias) → Dense, with stable layer names like our networks'."""
    inputs = tf.keras.Input((4, 4, 2))
    x = tf.keras.layers.Conv2D(3, 2, name='conv')(inputs)
    x = tf.keras.layers.Flatten()(x)
    outputs = tf.keras.layers.Dense(5, name='dense')(x)
    return tf.keras.Model(inputs, outputs)


TABLE = tables.Table((tables.Rule('conv/kernel', 'c.weight', tables.OIHW_TO_HWIO),
                      tables.Rule('conv/bias', 'c.bias'),
                      tables.Rule('dense/kernel', 'd.weight', tables.TRANSPOSE),
                      tables.Rule('dense/bias', 'd.bias')),
                     exclude=(r'.*\.num_batches_tracked', r'optimizer/.*'))


def _source(rng):
    return {'c.weight': rng.normal(size=(3, 2, 2, 2)).astype(np.float32),
            'c.bias': rng.normal(size=3).astype(np.float32),
            'd.weight': rng.normal(size=(5, 27)).astype(np.float64),
            'd.bias': rng.normal(size=5).astype(np.float16),
            'c.num_batches_tracked': np.array(3), 'optimizer/step': np.array(1)}


def test_apply_table_transforms_and_assigns():
    model = _model()
    source = _source(np.random.default_rng(0))
    assert tables.apply_table(TABLE, source, model, 'x.pth') is model
    weights = blocks.named_weights(model)
    np.testing.assert_array_equal(weights['conv/kernel'].numpy(),
                                  source['c.weight'].transpose(2, 3, 1, 0))
    np.testing.assert_array_equal(weights['dense/kernel'].numpy(),
                                  source['d.weight'].T.astype(np.float32))
    np.testing.assert_array_equal(weights['dense/bias'].numpy(), source['d.bias'])
    assert TABLE.source_shapes(model) == {'c.weight': (3, 2, 2, 2), 'c.bias': (3,),
                                          'd.weight': (5, 27), 'd.bias': (5,)}


def test_every_kind_of_problem_at_once():
    model = _model()
    source = _source(np.random.default_rng(0))
    del source['c.bias']
    source['d.weight'] = source['d.weight'].T  # (27, 5): not transposed by the writer
    source['d.bias'] = np.arange(5)
    source['c.weight'][0, 0, 0, 0] = np.inf
    source['extra'] = np.zeros(1, np.float32)
    table = tables.Table(TABLE.rules[1:] + (tables.Rule('gone/kernel', 'g.weight'),),
                         TABLE.exclude)
    source['g.weight'] = np.zeros(1, np.float32)
    with pytest.raises(errors.CheckpointError) as raised:
        tables.apply_table(table, source, model, 'x.pth')
    error = raised.value
    assert isinstance(error, base_errors.InputError) and error.path == 'x.pth'
    assert sorted(error.problems) == sorted([
            "missing tensors: 'c.bias' (for conv/bias)",
            "unexpected tensors (neither converted nor excluded): 'c.weight'",
            "unexpected tensors (neither converted nor excluded): 'extra'",
            "wrong shapes: 'd.weight' has shape (27, 5), dense/kernel needs (5, 27)",
            "not floating point: 'd.bias' is int64",
            'network weights no rule fills: conv/kernel',
            'rules for weights the network lacks: gone/kernel'])
    assert str(error).startswith('x.pth: does not match the network (7 problems): ')
    for problem in error.problems:
        assert problem.partition(': ')[2] in str(error)
    fine = _source(np.random.default_rng(1))
    fine['c.weight'][0, 0, 0, 0] = np.nan
    with pytest.raises(errors.CheckpointError, match=r"non-finite values: 'c.weight' \(1 of 24\)"):
        tables.apply_table(TABLE, fine, model, 'x.pth')


def test_nothing_is_assigned_when_anything_is_wrong():
    model = _model()
    before = [w.numpy().copy() for w in model.weights]
    source = _source(np.random.default_rng(0))
    source['extra'] = np.zeros(1, np.float32)
    with pytest.raises(errors.CheckpointError):
        tables.apply_table(TABLE, source, model, 'x.pth')
    for old, new in zip(before, model.weights):
        np.testing.assert_array_equal(old, new.numpy())


def test_tables_are_checked_when_built():
    with pytest.raises(ValueError, match='unknown transform'):
        tables.Rule('a/kernel', 'a', 'flip')
    with pytest.raises(ValueError, match="two rules with target 'a/kernel'"):
        tables.Table((tables.Rule('a/kernel', 'a'), tables.Rule('a/kernel', 'b')))
    with pytest.raises(ValueError, match="two rules with source 'a'"):
        tables.Table((tables.Rule('a/kernel', 'a'), tables.Rule('b/kernel', 'a')))
    with pytest.raises(ValueError, match="rule source 'opt/a' is also excluded"):
        tables.Table((tables.Rule('a/kernel', 'opt/a'),), exclude=(r'opt/.*',))


def test_slots_are_exact_and_source_shapes_invert_transforms():
    patterns = tables.slots(['g/conv.w'], ['Adam', 'Adam_1'])
    table = tables.Table((tables.Rule('x/kernel', 'g/conv.w'),), exclude=patterns)
    assert table.excluded('g/conv.w/Adam') and table.excluded('g/conv.w/Adam_1')
    assert not table.excluded('g/convXw/Adam') and not table.excluded('g/conv.w/Adam_2')
    assert tables.Rule('k', 's', tables.OIHW_TO_HWIO).source_shape((4, 3, 22, 64)) == \
        (64, 22, 4, 3)
    assert tables.Rule('k', 's', tables.TRANSPOSE).source_shape((768, 50)) == (50, 768)
    assert tables.Rule('k', 's', tables.TRANSPOSE).source_shape((3, 3, 1, 1)) is None
    value = np.arange(2 * 3 * 4 * 5).reshape(2, 3, 4, 5)
    rule = tables.Rule('k', 's', tables.OIHW_TO_HWIO)
    assert rule.apply(value).shape == (4, 5, 3, 2)
    assert rule.source_shape(rule.apply(value).shape) == value.shape


def test_summaries_group_and_truncate():
    problems = [f'missing tensors: {i}' for i in range(5)] + ['wrong shapes: w']
    assert tables.summarize(problems) == 'missing tensors: 0; 1; 2; 3; 4. wrong shapes: w'
    assert tables.summarize(problems, 2) == 'missing tensors: 0; 1. ... and 4 more'
