"""What this machine's CPU can do: its model, its ISA features, and whether it computes bfloat16
natively (without which the bfloat16 variant of a network is several times slower than float32).

The features come from /proc/cpuinfo's ``flags`` line (Linux). ``onednn_isa`` asks oneDNN itself
(the library TensorFlow's CPU kernels use), through its documented ``ONEDNN_VERBOSE`` switch in a
child process: it prints the instruction set it dispatches to (e.g. "Intel AVX2",
"Intel AVX-512 with AVX512BW, AVX512VL, and AVX512DQ extensions", "... with AMX"). TensorFlow has
no public API that reports it; this module imports no TensorFlow itself.
"""

import dataclasses
import os
import platform
import subprocess
import sys

from everywear_tf import errors

CPUINFO = '/proc/cpuinfo'
# Read instead of CPUINFO when set: a host whose /proc is elsewhere, or a test's fake CPU.
CPUINFO_ENV = 'EVERYWEAR_CPUINFO'

# The flags that make bfloat16 native: AVX512_BF16's dot products, or AMX's bfloat16 tiles.
BFLOAT16_FLAGS = ('avx512_bf16', 'amx_bf16')
# The ISA line shows these when present, in this order (the rest of the flags are not about
# the speed of a convolution).
ISA_FLAGS = ('sse4_2', 'avx', 'avx2', 'fma', 'f16c', 'avx512f', 'avx512bw', 'avx512vl',
             'avx512_vnni', 'avx512_bf16', 'avx512_fp16', 'amx_tile', 'amx_bf16', 'amx_int8')

# What the bfloat16 variant cost where it is not native, when no figure of this run is at hand:
# EDM 7.7-10x float32's time on a 2-core AVX2 AMD EPYC (issue #17's measurement; bench.all
# measures it again on the machine it runs on).
EXPECTED_SLOWDOWN = '7.7-10×'


@dataclasses.dataclass(frozen=True)
class Cpu:
    """A CPU as /proc/cpuinfo describes it: ``model`` (the first 'model name'), ``flags`` (the
    first 'flags' line, a frozenset), ``cores`` (processor entries)."""
    model: str
    flags: frozenset
    cores: int

    def isa(self):
        """The speed-relevant ISA features present, e.g. ['sse4_2', 'avx', 'avx2', 'fma']."""
        return [flag for flag in ISA_FLAGS if flag in self.flags]

    def native_bfloat16(self):
        """True when the CPU computes bfloat16 in hardware (AVX512_BF16 or AMX-BF16)."""
        return any(flag in self.flags for flag in BFLOAT16_FLAGS)

    def line(self):
        """One line naming the CPU, its cores, its ISA and whether bfloat16 is native."""
        native = 'native' if self.native_bfloat16() else 'NOT native (no avx512_bf16/amx_bf16)'
        return (f'CPU: {self.model}, {self.cores} cores; ISA: {" ".join(self.isa()) or "none"}; '
                f'bfloat16 {native}')


def parse_cpuinfo(text, source=CPUINFO):
    """The Cpu of a /proc/cpuinfo text (x86 'flags' or ARM 'Features'); InputError naming
    ``source`` when it has no processor entry."""
    model, flags, cores = None, None, 0
    for line in text.splitlines():
        key, sep, value = line.partition(':')
        if not sep:
            continue
        key, value = key.strip().lower(), value.strip()
        if key == 'processor':
            cores += 1
        elif key in ('model name', 'cpu model', 'hardware') and model is None:
            model = value
        elif key in ('flags', 'features') and flags is None:
            flags = frozenset(value.split())
    if not cores and flags is None:
        raise errors.InputError(source, 'no processor entry (not a cpuinfo text)')
    return Cpu(model or platform.processor() or platform.machine() or 'unknown CPU',
               flags or frozenset(), max(cores, 1))


def cpu(path=None):
    """This machine's Cpu (from ``path``, default $EVERYWEAR_CPUINFO or /proc/cpuinfo; on a
    system without it: the platform's name, no flags, so bfloat16 counts as not native)."""
    path = path or os.environ.get(CPUINFO_ENV) or CPUINFO
    try:
        with open(path) as f:
            text = f.read()
    except OSError:
        return Cpu(platform.processor() or platform.machine() or 'unknown CPU', frozenset(),
                   os.cpu_count() or 1)
    return parse_cpuinfo(text, path)


def native_bfloat16(path=None):
    """True when this machine's CPU computes bfloat16 natively (AVX512_BF16 or AMX-BF16)."""
    return cpu(path).native_bfloat16()


class NotNativeError(errors.EverywearError):
    """A bfloat16 version asked for on a CPU without native bfloat16."""


def check_bfloat16(what, force=False, slowdown=EXPECTED_SLOWDOWN, machine=None, warn=None):
    """Refuses ``what`` (e.g. 'export of the bfloat16 variant') on a CPU without native bfloat16
    unless ``force``; with ``force`` it only warns (``warn(message)``). Returns the message, or
    None when bfloat16 is native. ``machine``: a Cpu (default: this one's)."""
    machine = machine or cpu()
    if machine.native_bfloat16():
        return None
    message = (f'{what}: this CPU ({machine.model}; ISA {" ".join(machine.isa()) or "none"}) '
               'has no native bfloat16 (avx512_bf16 or amx_bf16), where the bfloat16 variant '
               f'takes about {slowdown} the float32 time; it pays only on CPUs with AVX512_BF16 '
               '(Intel Cooper Lake, Sapphire Rapids and later; AMD Zen 4 and later) or AMX')
    if not force:
        raise NotNativeError(message + '. Pass --force to do it anyway')
    if warn is not None:
        warn('warning: ' + message + ' (going ahead: --force)')
    return message


def parse_onednn_verbose(text):
    """The ISA of an ``ONEDNN_VERBOSE=1`` log ('onednn_verbose,info,cpu,isa:Intel AVX2'), or
    None."""
    for line in text.splitlines():
        marker = 'cpu,isa:'
        if line.startswith(('onednn_verbose', 'dnnl_verbose')) and marker in line:
            return line.split(marker, 1)[1].strip()
    return None


_ONEDNN_PROBE = ('import tensorflow as tf\n'
                 'x = tf.ones([1, 8, 8, 4]); k = tf.ones([3, 3, 4, 4])\n'
                 "tf.nn.conv2d(x, k, 1, 'SAME').numpy()\n")


def onednn_isa(python=sys.executable, timeout=120):
    """The instruction set oneDNN dispatches TensorFlow's CPU kernels to on this machine, as it
    reports it (a child process runs one convolution with ONEDNN_VERBOSE=1; a few seconds), or
    None when it reports nothing (oneDNN off, not installed, timed out)."""
    env = {**os.environ, 'ONEDNN_VERBOSE': '1', 'TF_CPP_MIN_LOG_LEVEL': '2',
           'CUDA_VISIBLE_DEVICES': ''}
    try:
        result = subprocess.run([python, '-c', _ONEDNN_PROBE], capture_output=True, text=True,
                                timeout=timeout, env=env)
    except (OSError, subprocess.SubprocessError):
        return None
    return parse_onednn_verbose(result.stdout + result.stderr)
