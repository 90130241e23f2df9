"""CPU detection from cpuinfo texts (fake ones: the test must not depend on the machine)."""

import pytest

from everywear_tf import errors
from everywear_tf import hardware

_EPYC_AVX2 = """processor\t: 0
vendor_id\t: AuthenticAMD
model name\t: AMD EPYC 7B12
flags\t\t: fpu sse sse2 sse4_2 avx f16c fma avx2 bmi2

processor\t: 1
model name\t: AMD EPYC 7B12
flags\t\t: fpu sse sse2 sse4_2 avx f16c fma avx2 bmi2
"""

_SAPPHIRE_RAPIDS = """processor\t: 0
model name\t: Intel(R) Xeon(R) Platinum 8481C CPU @ 2.70GHz
flags\t\t: sse4_2 avx avx2 fma avx512f avx512bw avx512vl avx512_vnni amx_tile amx_bf16 amx_int8
"""

_COOPER_LAKE = """processor\t: 0
model name\t: Intel(R) Xeon(R) Platinum 8353H
flags\t\t: sse4_2 avx avx2 fma avx512f avx512bw avx512_bf16
processor\t: 1
processor\t: 2
"""

_GRAVITON = """processor\t: 0
BogoMIPS\t: 243.75
Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics bf16
"""


def test_avx2_only_is_not_native():
    cpu = hardware.parse_cpuinfo(_EPYC_AVX2)
    assert cpu.model == 'AMD EPYC 7B12' and cpu.cores == 2
    assert cpu.isa() == ['sse4_2', 'avx', 'avx2', 'fma', 'f16c']
    assert not cpu.native_bfloat16()
    assert 'AMD EPYC 7B12' in cpu.line() and 'NOT native' in cpu.line()


@pytest.mark.parametrize('text', [_SAPPHIRE_RAPIDS, _COOPER_LAKE])
def test_avx512_bf16_or_amx_is_native(text):
    cpu = hardware.parse_cpuinfo(text)
    assert cpu.native_bfloat16()
    assert 'bfloat16 native' in cpu.line()


def test_avx512_without_bf16_is_not_native():
    text = _COOPER_LAKE.replace(' avx512_bf16', '')
    assert not hardware.parse_cpuinfo(text).native_bfloat16()


def test_first_lines_count_and_arm_features():
    assert hardware.parse_cpuinfo(_COOPER_LAKE).cores == 3
    arm = hardware.parse_cpuinfo(_GRAVITON)
    assert 'bf16' in arm.flags and not arm.native_bfloat16()  # only the x86 flags count


def test_not_a_cpuinfo_text_names_the_file():
    with pytest.raises(errors.InputError, match='/x/cpuinfo: no processor entry'):
        hardware.parse_cpuinfo('hello\nworld\n', '/x/cpuinfo')


def test_cpu_reads_the_file_and_survives_its_absence(tmp_path):
    path = tmp_path / 'cpuinfo'
    path.write_text(_SAPPHIRE_RAPIDS)
    assert hardware.native_bfloat16(str(path))
    missing = hardware.cpu(str(tmp_path / 'absent'))
    assert missing.flags == frozenset() and not missing.native_bfloat16()


def test_check_refuses_without_force_and_warns_with_it():
    slow = hardware.parse_cpuinfo(_EPYC_AVX2)
    with pytest.raises(hardware.NotNativeError, match=r'export: this CPU \(AMD EPYC 7B12.*'
                                                      r'avx2.*9\.0×.*--force'):
        hardware.check_bfloat16('export', machine=slow, slowdown='9.0×')
    warnings = []
    message = hardware.check_bfloat16('export', force=True, machine=slow, warn=warnings.append)
    assert warnings == [f'warning: {message} (going ahead: --force)']
    fast = hardware.parse_cpuinfo(_COOPER_LAKE)
    assert hardware.check_bfloat16('export', machine=fast, warn=warnings.append) is None
    assert len(warnings) == 1


def test_onednn_verbose_line():
    log = ('onednn_verbose,info,oneDNN v3.2.1 (commit N/A)\n'
           'onednn_verbose,info,cpu,runtime:threadpool,nthr:2\n'
           'onednn_verbose,info,cpu,isa:Intel AVX2\n')
    assert hardware.parse_onednn_verbose(log) == 'Intel AVX2'
    assert hardware.parse_onednn_verbose('nothing here\n') is None


@pytest.mark.slow
def test_export_binary_refuses_bfloat16_on_a_cpu_without_it_unless_forced(tmp_path):
    import os
    import subprocess
    import sys
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    fake = tmp_path / 'cpuinfo'
    fake.write_text(_EPYC_AVX2)
    env = {**os.environ, hardware.CPUINFO_ENV: str(fake)}
    command = [sys.executable, 'export/export_saved_model.py', '--model_name=rm_men_tshirts',
               '--random_weights', '--config=lite', f'--base_dir={tmp_path / "exported"}',
               '--precision=bfloat16']
    refused = subprocess.run(command, cwd=root, env=env, capture_output=True, text=True,
                             timeout=300)
    assert refused.returncode == 1, refused.stderr[-2000:]
    assert 'export: error: export of the bfloat16 variant: this CPU (AMD EPYC 7B12' in (
            refused.stderr)
    assert '--force' in refused.stderr and not (tmp_path / 'exported').exists()
    forced = subprocess.run(command + ['--force'], cwd=root, env=env, capture_output=True,
                            text=True, timeout=300)
    assert forced.returncode == 0, forced.stderr[-2000:]
    assert 'export: warning: export of the bfloat16 variant' in forced.stderr
    assert (tmp_path / 'exported' / 'rm_men_tshirts' / '1' / 'saved_model.pb').exists()
