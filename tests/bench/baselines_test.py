"""tests/baselines.py's GMM path is the serving function's, sampler apart."""

import numpy as np
import tensorflow as tf

from everywear_tf import configs
from everywear_tf import spec
from everywear_tf.export import modules
from everywear_tf.models import factory
from everywear_tf.ops import sampling

from bench import inputs as bench_inputs
from tests import baselines


def test_gmm_outputs_spell_out_the_serving_function():
    tf.keras.utils.set_random_seed(0)
    model = factory.build(configs.get(spec.GMM, configs.LITE))
    inputs = bench_inputs.demo_inputs(spec.MEN_TSHIRTS, 2)
    args = [tf.constant(inputs[key]) for key in spec.MODULE_INPUTS[spec.GMM]]
    expected = modules.gmm_outputs(model, *args)
    # The library's sampler gives the serving function's outputs; the previous one the same
    # numbers (sampling_test proves the two samplers equal).
    for sampler in (sampling.grid_sample, baselines.grid_sample):
        got = baselines.gmm_outputs(model, *args, sampler=sampler)
        assert set(got) == set(expected)
        for key, value in expected.items():
            np.testing.assert_array_equal(got[key].numpy(), value.numpy(), err_msg=key)
