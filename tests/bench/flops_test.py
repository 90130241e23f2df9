"""FLOP counts against hand formulas, and the timing helpers."""

import tensorflow as tf

from everywear_tf import configs
from everywear_tf import spec
from everywear_tf.models import factory

from bench import flops
from bench import timing


def test_convolutions_matmuls_and_elementwise_ops_by_hand():
    conv = tf.keras.layers.Conv2D(8, 3, 2, 'same', use_bias=False, name='conv')
    deconv = tf.keras.layers.Conv2DTranspose(4, 4, 2, 'same', use_bias=False, name='deconv')

    def network(x, a, b):
        y = deconv(conv(x))  # [2,16,12,8] → [2,8,6,8] → [2,16,12,4]
        return tf.nn.relu(y), tf.matmul(a, b, transpose_a=True)

    signature = [tf.TensorSpec([2, 16, 12, 3]), tf.TensorSpec([7, 5]), tf.TensorSpec([7, 9])]
    counted = flops.count_function(network, signature, ['conv', 'deconv'])
    conv_flops = 2 * (2 * 8 * 6 * 8) * (3 * 3 * 3)
    deconv_flops = 2 * (2 * 8 * 6 * 8) * (4 * 4 * 4)
    matmul_flops = 2 * 5 * 9 * 7
    assert counted['layers']['conv'] == conv_flops
    assert counted['layers']['deconv'] == deconv_flops
    assert counted[flops.MULTIPLY_ADD] == conv_flops + deconv_flops + matmul_flops
    assert counted[flops.ELEMENTWISE] == 2 * 16 * 12 * 4  # the ReLU
    assert counted['total'] == counted[flops.MULTIPLY_ADD] + counted[flops.ELEMENTWISE]


def test_full_rm_convolutions_match_its_layers():
    model = factory.build(configs.get(spec.RM, configs.FULL))
    signature = [tf.TensorSpec([1, 256, 192, 3])] * 2 + [tf.TensorSpec([1, 256, 192, 1])]
    counted = flops.count_function(lambda a, b, c: model((a, b, c)), signature,
                                   [layer.name for layer in model.layers])
    pixels = 256 * 192
    assert counted['layers']['g_256_conv1'] == 2 * pixels * 64 * 9 * 6
    assert counted['layers']['g_256_conv2'] == 2 * pixels * 64 * 9 * 64
    assert counted['layers']['g_1024_final'] >= 2 * pixels * 64  # + its bias


def test_measure_and_peak():
    calls = []
    stats = timing.measure(lambda: calls.append(1), runs=4, warmup=2)
    assert len(calls) == 6 and stats['runs'] == 4
    assert 0 <= stats['min'] <= stats['median'] <= stats['p90'] <= stats['max']
    assert timing.peak_gflops(size=128, runs=2)['gflops'] > 0
    machine = timing.machine(onednn=False)
    assert machine['cores'] >= 1 and machine['cpu_line'].startswith('CPU: ')
