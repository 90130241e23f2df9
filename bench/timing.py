"""Timing: latency statistics over repeated calls, throughput, and this machine's measured peak."""

import contextlib
import datetime
import gc
import os
import platform
import time

import numpy as np
import tensorflow as tf

from everywear_tf import hardware


@contextlib.contextmanager
def _no_garbage_collection():
    """A clean start for each timed series: the garbage of the set-up is collected first. The
    collector stays on while timing (unlike timeit): what it costs a call is part of what a
    caller pays, REST's JSON bodies above all."""
    gc.collect()
    yield


def measure(function, runs, warmup=2):
    """Calls ``function()`` ``warmup`` times untimed, then ``runs`` times; seconds per call.

    Returns {'median', 'p90', 'mean', 'min', 'max', 'runs'} (seconds). ``function`` must return
    only when its work is done (numpy results, not pending tensors).
    """
    for _ in range(warmup):
        function()
    times = []
    with _no_garbage_collection():
        for _ in range(runs):
            start = time.perf_counter()
            function()
            times.append(time.perf_counter() - start)
    times = np.asarray(times)
    return {'median': float(np.median(times)), 'p90': float(np.percentile(times, 90)),
            'mean': float(times.mean()), 'min': float(times.min()), 'max': float(times.max()),
            'runs': int(runs)}


def throughput(function, batch, runs, warmup=1):
    """Items per second of ``function()`` processing ``batch`` items per call (median call)."""
    stats = measure(function, runs, warmup)
    return {**stats, 'batch': int(batch), 'items_per_second': batch / stats['median']}


def matmul(size=2048, dtype=tf.float32):
    """(one size³ matrix product, returning when done; its FLOPs): the unit of the peak."""
    a = tf.cast(tf.random.stateless_normal([size, size], seed=[1, 2], dtype=tf.float32), dtype)
    product = tf.function(lambda x: tf.reduce_sum(tf.cast(tf.matmul(x, x)[:1, :1], tf.float32)))
    return (lambda: product(a).numpy()), 2 * size ** 3


def peak_gflops(size=2048, runs=5, dtype=tf.float32):
    """The best GFLOP/s of a size³ matrix product on this machine, now (2·size³ FLOPs a call).

    The denominator of every efficiency figure: measured in the same run as the modules, so
    the load of the moment affects both alike.
    """
    a = tf.random.stateless_normal([size, size], seed=[1, 2], dtype=tf.float32)
    a = tf.cast(a, dtype)
    product = tf.function(lambda x: tf.reduce_sum(tf.cast(tf.matmul(x, x)[:1, :1], tf.float32)))
    stats = measure(lambda: product(a).numpy(), runs, warmup=2)
    return {'gflops': 2 * size ** 3 / stats['min'] / 1e9, 'size': size,
            'dtype': tf.as_dtype(dtype).name, 'seconds': stats}


def machine(onednn=True):
    """What the figures were measured on: CPU (model, ISA flags, native bfloat16, and with
    ``onednn`` the ISA oneDNN reports it dispatches to, hardware.onednn_isa), cores,
    TensorFlow, load, date."""
    cpu = hardware.cpu()
    return {'date': datetime.datetime.now(datetime.UTC).isoformat(timespec='seconds'),
            'cpu': cpu.model, 'cores': os.cpu_count(), 'isa': cpu.isa(),
            'native_bfloat16': cpu.native_bfloat16(), 'cpu_line': cpu.line(),
            'onednn_isa': hardware.onednn_isa() if onednn else None,
            'avx512_bf16': 'avx512_bf16' in cpu.flags, 'avx512f': 'avx512f' in cpu.flags,
            'tensorflow': tf.__version__, 'python': platform.python_version(),
            'onednn': os.environ.get('TF_ENABLE_ONEDNN_OPTS', 'default (on)'),
            'load_average': list(os.getloadavg())}


def interleaved(functions, runs, warmup=2, batch=None):
    """``measure`` for several functions called in turn (A, B, A, B, ...), so that a change of
    load while they run affects each alike: before/after comparisons. {name: stats}; with
    ``batch``, each stats also has items_per_second."""
    for function in functions.values():
        for _ in range(warmup):
            function()
    times = {name: [] for name in functions}
    with _no_garbage_collection():
        for _ in range(runs):
            for name, function in functions.items():
                start = time.perf_counter()
                function()
                times[name].append(time.perf_counter() - start)
    out = {}
    for name, values in times.items():
        values = np.asarray(values)
        out[name] = {'median': float(np.median(values)),
                     'p90': float(np.percentile(values, 90)), 'mean': float(values.mean()),
                     'min': float(values.min()), 'max': float(values.max()), 'runs': int(runs)}
        if batch is not None:
            out[name].update(batch=int(batch), items_per_second=batch / out[name]['median'])
    return out
