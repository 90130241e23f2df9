"""bench.originals on a stand-in checkout (written here: nothing of the originals' is in the
repository): the stage-2 function read out of its file, run under tf.compat.v1 with our RM's
weights, gives our RM's numbers; and the report's bfloat16 and originals sections."""

import numpy as np
import tensorflow as tf

from everywear_tf import configs
from everywear_tf import spec
from everywear_tf.models import factory

from bench import originals
from bench import report

# The shape of VITON's files: the functions among a training script's top-level statements,
# which must not run (they would need TF1's flags and tf.contrib).
_TPS_WARP = '''
import tensorflow.contrib.slim as slim
FLAGS = tf.app.flags.FLAGS

def create_refine_generator(stn_image_outputs, gen_image_outputs):
  x = tf.concat([stn_image_outputs, gen_image_outputs], axis=-1)
  for i in range(1, 4):
    x = slim.conv2d(x, 4, [3, 3], rate=1, normalizer_fn=slim.layer_norm,
                    activation_fn=lrelu, scope='g_256_conv%d' % i)
  return tf.sigmoid(slim.conv2d(x, 1, [1, 1], rate=1, activation_fn=None,
                                scope='g_1024_final'))
'''
_UTILS = '''
from scipy.misc import imresize

def lrelu(x, a=0.2):
  return (0.5 * (1 + a)) * x + (0.5 * (1 - a)) * tf.abs(x)
'''


def test_stage2_from_a_checkout_equals_our_rm(tmp_path):
    checkout = tmp_path / originals.VITON
    checkout.mkdir()
    (checkout / 'model_zalando_tps_warp.py').write_text(_TPS_WARP)
    (checkout / 'utils.py').write_text(_UTILS)
    found, missing = originals.find(str(tmp_path))
    assert found == {originals.VITON: str(checkout)} and originals.CPVTON in missing
    tf.keras.utils.set_random_seed(3)
    model = factory.build(configs.get(spec.RM, configs.LITE, filters=4))
    for weight in model.weights:  # γ, β away from 1, 0
        weight.assign(tf.random.normal(weight.shape, stddev=0.5))
    floats, _ = originals.rm_inputs(2, 16, 12)
    call, source = originals.viton_stage2(str(checkout), 2, 16, 12,
                                          weights=originals.rm_weights(model))
    tryon, alpha, tps_mask = call(*floats)
    call.session.close()
    ours = model(tuple(tf.constant(v) for v in floats), training=False)
    np.testing.assert_allclose(tryon, ours['tryon'].numpy(), atol=1e-5)
    np.testing.assert_allclose(alpha, ours['alpha'].numpy(), atol=1e-5)
    np.testing.assert_array_equal(tps_mask, ours['tps_mask'].numpy())
    assert 'create_refine_generator' in source


def _results(native):
    def stats(median):
        return {'latency': {'median': median}, 'throughput': {'items_per_second': 1 / median}}
    paths = {'keras': {m: stats(0.1) for m in spec.MODULES + ('tryon',)}}
    bf16 = {'keras': {m: stats(0.8) for m in spec.MODULES + ('tryon',)}}
    comparison = {'tryon': {'min_ssim': 1.0, 'max_abs': 0, 'mean_abs': 0},
                  'modules': {spec.GMM: {spec.THETA: {'max_abs': 0},
                                         spec.WARPED_CLOTH: {'max_abs': 0}},
                              spec.EDM: {spec.COARSE: {'max_abs': 0}},
                              spec.RM: {spec.TRYON: {'max_abs': 0}}}}
    return {'machine': {'cpu': 'AMD EPYC', 'cores': 2, 'native_bfloat16': native,
                        'cpu_line': 'CPU: AMD EPYC, 2 cores; ISA: avx2 fma; bfloat16 x'},
            'paths': paths, 'settings': {'batch': 8},
            'bfloat16': {'timings': bf16, 'demo_set': {}, 'random_weights': comparison}}


def test_bfloat16_rows_only_where_native():
    slow = report.bfloat16(_results(native=False))
    assert 'gmm' in slow and 'not native on this CPU: 8.0× slower, not recommended' in slow
    assert 'speed-up' not in slow
    fast = report.bfloat16(_results(native=True))
    assert 'speed-up b1' in fast and 'not native' not in fast
    assert report.cpu_line(_results(True)).startswith('CPU: AMD EPYC')


def test_originals_section_says_how_to_get_it():
    assert '--originals_dir' in report.originals({})
