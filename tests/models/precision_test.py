"""The bfloat16 variant: the same variables as float32, float32 where exactness needs it, and
outputs that stay visually identical to float32's on the demo set."""

import os

import numpy as np
import pytest
import tensorflow as tf

from everywear_tf import configs
from everywear_tf import demo_weights
from everywear_tf import spec
from everywear_tf import weights
from everywear_tf.export import modules
from everywear_tf.export import warmup
from everywear_tf.models import blocks
from everywear_tf.models import factory

from bench import inputs as bench_inputs
from bench import precision
from tests.models.randomize import randomize


@pytest.mark.parametrize('module', spec.MODULES)
def test_same_variables_and_float32_weights_load_unchanged(module, tmp_path):
    model = factory.build(configs.get(module, configs.LITE))
    randomize(model, seed=2)
    weights.save(model, tmp_path / module)
    reduced = weights.load(tmp_path / module, precision=factory.BFLOAT16)
    assert factory.precision_of(model) == factory.FLOAT32
    assert factory.precision_of(reduced) == factory.BFLOAT16
    expected, got = blocks.named_weights(model), blocks.named_weights(reduced)
    assert list(got) == list(expected)
    for path, variable in got.items():
        assert variable.dtype == tf.float32 and variable.shape == expected[path].shape, path
        np.testing.assert_array_equal(variable.numpy(), expected[path].numpy(), err_msg=path)
    twin = factory.with_precision(model, factory.BFLOAT16)
    assert factory.with_precision(twin, factory.BFLOAT16) is twin
    for path, variable in blocks.named_weights(twin).items():
        np.testing.assert_array_equal(variable.numpy(), expected[path].numpy(), err_msg=path)
    with pytest.raises(ValueError, match='precision must be one of'):
        factory.build(configs.get(module, configs.LITE), precision='float16')
    assert tf.keras.mixed_precision.global_policy().name == 'float32'


_PINNED = {spec.GMM: {'regression_linear'} | {f'regression_{part}{i}' for i in range(4) for part in
                                               ('conv', 'bn', 'relu')}
                     | {f'regression_conv{i}_pad' for i in range(4)},
           spec.EDM: set(),
           spec.RM: {'g_256_conv1_layernorm', 'g_256_conv2_layernorm', 'g_256_conv3_layernorm',
                     'g_1024_final'}}


@pytest.mark.parametrize('module', spec.MODULES)
def test_signature_dtypes_unchanged_and_float32_kept_where_listed(module):
    model = factory.build(configs.get(module, configs.LITE), precision=factory.BFLOAT16)
    assert {layer.name for layer in model.layers
            if layer.compute_dtype != 'bfloat16'} == _PINNED[module]
    assert model.compute_dtype == 'float32'  # the boundary: inputs are not cast
    function = modules.ServingModule(module, model).serving_default
    inputs = warmup.realistic_inputs(module, batch=2)
    outputs = function(*[tf.constant(inputs[key]) for key in spec.MODULE_INPUTS[module]])
    for key, value in outputs.items():
        dtype, shape = spec.OUTPUT_SPECS[key]
        assert value.dtype.name == dtype and value.shape[1:] == shape[1:], key
    # The graph's nodes and those of the functions it calls (RM's per-sample loop body).
    graph_def = function.get_concrete_function().graph.as_graph_def()
    nodes = list(graph_def.node) + [node for f in graph_def.library.function
                                    for node in f.node_def]
    convolutions = [node for node in nodes if node.op in ('Conv2D', 'Conv2DBackpropInput')]
    assert convolutions and all(node.attr['T'].type == tf.bfloat16.as_datatype_enum
                                for node in convolutions
                                if node.name.split('/')[-2] not in _PINNED[module])


def _demo_models(category):
    return [weights.load(os.path.join(demo_weights.DIRECTORY,
                                      spec.model_name(module, category)), module)
            for module in spec.MODULES]


@pytest.mark.parametrize('category', spec.CATEGORIES)
@pytest.mark.slow
def test_visually_identical_on_the_demo_set(category):
    reference, reduced = precision.chains(category, _demo_models(category))
    result = precision.compare(reference, reduced, bench_inputs.demo_inputs(category, batch=2))
    assert result['tryon']['min_ssim'] >= 0.99, result['tryon']
    assert result['modules'][spec.GMM][spec.THETA]['max_abs'] < 0.05
    for module in spec.MODULES:
        for key, difference in result['modules'][module].items():
            assert difference['mean_abs'] < 2.0, (module, key, difference)
