"""The torch-free .pth reader: real torch.save files (committed, and fresh when torch is
installed), hand-written ones for what torch 2 no longer writes, and hostile or broken files."""

import builtins
import collections
import struct
import zipfile

import numpy as np
import pytest

from everywear_tf import errors as base_errors
from everywear_tf.convert import errors
from everywear_tf.convert import torch_pth

from tests.convert import pth_writer
from tests.convert import torch_or_skip
from tests.data.fixtures import path

FIXTURES = [f'gmm_{variant}_{kind}.pth' for variant in ('cpvton', 'cpvton_plus')
            for kind in ('zip', 'legacy')]


@pytest.mark.parametrize('variant', ['cpvton', 'cpvton_plus'])
def test_committed_fixtures_both_serialisations_agree(variant):
    zipped = torch_pth.read_state_dict(path('convert', f'gmm_{variant}_zip.pth'))
    legacy = torch_pth.read_state_dict(path('convert', f'gmm_{variant}_legacy.pth'))
    assert len(zipped) == 104 and list(zipped) == list(legacy)
    for name in zipped:
        np.testing.assert_array_equal(zipped[name], legacy[name])
        assert zipped[name].dtype == (np.int64 if name.endswith('num_batches_tracked')
                                      else np.float32)
    assert zipped['extractionB.model.0.weight'].shape == (4, 3 if variant == 'cpvton' else 1,
                                                          4, 4)
    assert zipped['regression.conv.1.num_batches_tracked'].shape == ()


def test_reading_needs_no_torch(monkeypatch):
    real_import = builtins.__import__

    def no_torch(name, *args, **kwargs):
        if name == 'torch' or name.startswith('torch.'):
            raise ImportError('torch is hidden in this test')
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, '__import__', no_torch)
    for name in FIXTURES:
        assert len(torch_pth.read_state_dict(path('convert', name))) == 104


@pytest.mark.parametrize('write', [pth_writer.write_legacy, pth_writer.write_zip])
def test_dtypes_strides_offsets_and_shared_storages(tmp_path, write):
    rng = np.random.default_rng(0)
    shared = pth_writer.Storage(rng.normal(size=30).astype(np.float32), key='shared')
    state = pth_writer.tensors({
            'f32': rng.normal(size=(2, 3, 4, 5)).astype(np.float32),
            'f64': rng.normal(size=(7,)), 'f16': rng.normal(size=(3,)).astype(np.float16),
            'i64': np.array(12345678901), 'u8': np.arange(5, dtype=np.uint8),
            'bool': np.array([True, False]), 'empty': np.zeros((0, 3), np.float32)})
    state['transposed'] = pth_writer.Tensor(shared, 3, (4, 5), (1, 4))  # a .t() of a slice
    state['slice'] = pth_writer.Tensor(shared, 25, (5,), (1,))
    got = torch_pth.read_state_dict(write(str(tmp_path / 'a.pth'), state))
    for name, tensor in state.items():
        flat = tensor.storage.data
        expected = np.lib.stride_tricks.as_strided(
                flat[tensor.offset:], tensor.size, [s * flat.itemsize for s in tensor.stride])
        assert got[name].dtype == flat.dtype and got[name].shape == tensor.size, name
        np.testing.assert_array_equal(got[name], expected, err_msg=name)
        assert got[name].flags.writeable and got[name].flags.c_contiguous


def test_legacy_views_and_cuda_locations(tmp_path):
    """torch 0.4-era files: storages saved from the GPU, tensors on storage views."""
    root = pth_writer.Storage(np.arange(20, dtype=np.float32), key='140', location='cuda:0')
    state = {'a': pth_writer.Tensor(root, 1, (2, 2), (2, 1), view=('141', 10, 6)),
             'b': pth_writer.Tensor(root, 0, (3,), (1,))}
    got = torch_pth.read_state_dict(pth_writer.write_legacy(str(tmp_path / 'v.pth'), state))
    np.testing.assert_array_equal(got['a'], [[11, 12], [13, 14]])
    np.testing.assert_array_equal(got['b'], [0, 1, 2])


def test_big_endian_zip_and_wrapped_state_dicts(tmp_path):
    weights = {'w': np.arange(6, dtype=np.float32).reshape(2, 3)}
    big = pth_writer.write_zip(str(tmp_path / 'big.pth'), pth_writer.tensors(weights), 'big')
    np.testing.assert_array_equal(torch_pth.read_state_dict(big)['w'], weights['w'])
    for wrapper in ('state_dict', 'model'):
        document = {wrapper: pth_writer.tensors(weights), 'epoch': 7, 'note': 'x'}
        got = torch_pth.read_state_dict(
                pth_writer.write_legacy(str(tmp_path / f'{wrapper}.pth'), document))
        assert list(got) == ['w']


def test_not_a_state_dict(tmp_path):
    listed = pth_writer.write_legacy(str(tmp_path / 'list.pth'), [1, 2])
    with pytest.raises(errors.TorchFileError, match='holds a list, not a state dict'):
        torch_pth.read_state_dict(listed)
    mixed = pth_writer.write_zip(str(tmp_path / 'mixed.pth'),
                                 {'w': pth_writer.tensors({'w': np.ones(2)})['w'], 'step': 3})
    with pytest.raises(errors.TorchFileError, match=r"entries \['step'\] are not named tensors"):
        torch_pth.read_state_dict(mixed)


@pytest.mark.parametrize('write', [pth_writer.write_legacy, pth_writer.write_zip])
@pytest.mark.parametrize('module,name', [('os', 'system'), ('posix', 'system'),
                                         ('builtins', 'eval'), ('subprocess', 'call')])
def test_malicious_pickles_are_refused_without_running(tmp_path, monkeypatch, write, module,
                                                       name):
    monkeypatch.chdir(tmp_path)
    marker = tmp_path / 'marker'
    command = f'touch {marker}' if name != 'eval' else f'open({str(marker)!r}, "w")'
    argument = [command.split()] if name == 'call' else [command]
    state = pth_writer.tensors({'w': np.ones(2, np.float32)})
    state['x'] = pth_writer.evil(module, name, *argument)
    target = write(str(tmp_path / 'evil.pth'), state)
    with pytest.raises(errors.UnsafeCheckpointError) as raised:
        torch_pth.read_state_dict(target)
    assert f'refuses to load {module}.{name}' in str(raised.value)
    assert str(target) in str(raised.value) and 'nothing was run' in str(raised.value)
    assert isinstance(raised.value, base_errors.UnsafePickleError)
    assert not marker.exists()


def test_a_whole_pickled_model_is_refused(tmp_path):
    state = {'model': pth_writer.evil('networks', 'GMM')}
    target = pth_writer.write_legacy(str(tmp_path / 'model.pth'), state)
    with pytest.raises(errors.UnsafeCheckpointError, match=r'networks\.GMM.*state_dict\(\)'):
        torch_pth.read_state_dict(target)


def test_truncated_corrupt_and_foreign_files(tmp_path):
    legacy = open(path('convert', 'gmm_cpvton_legacy.pth'), 'rb').read()
    zipped = open(path('convert', 'gmm_cpvton_zip.pth'), 'rb').read()
    cases = {'half_legacy.pth': legacy[:len(legacy) // 2],
             'legacy_minus_one.pth': legacy[:-1],
             'legacy_header_only.pth': legacy[:60],
             'half_zip.pth': zipped[:len(zipped) // 2],
             'empty.pth': b'', 'text.pth': b'hello, not a checkpoint',
             'numpy.pth': b'\x93NUMPY\x01\x00' + b' ' * 100}
    for name, content in cases.items():
        (tmp_path / name).write_bytes(content)
        with pytest.raises(errors.TorchFileError) as raised:
            torch_pth.read_state_dict(str(tmp_path / name))
        assert str(tmp_path / name) in str(raised.value), name
    with pytest.raises(base_errors.InputNotFoundError, match='no such file'):
        torch_pth.read_state_dict(str(tmp_path / 'absent.pth'))


def test_a_corrupt_zip_record_and_a_short_storage(tmp_path):
    target = tmp_path / 'crc.pth'
    data = bytearray(open(path('convert', 'gmm_cpvton_zip.pth'), 'rb').read())
    with zipfile.ZipFile(path('convert', 'gmm_cpvton_zip.pth')) as archive:
        info = archive.getinfo(next(n for n in archive.namelist() if '/data/' in n))
    name_length, extra_length = struct.unpack('<HH', data[info.header_offset + 26:
                                                         info.header_offset + 30])
    start = info.header_offset + 30 + name_length + extra_length  # the local header's lengths
    data[start] ^= 0xff  # one flipped byte in a storage: the CRC check fails
    target.write_bytes(bytes(data))
    with pytest.raises(errors.TorchFileError, match='corrupt record'):
        torch_pth.read_state_dict(str(target))
    state = pth_writer.tensors({'w': np.ones(4, np.float32)})
    short = pth_writer.write_legacy(str(tmp_path / 'short.pth'), state,
                                    storage_bytes={'0': b'\0' * 8})
    with pytest.raises(errors.TorchFileError, match='truncated in storage 0'):
        torch_pth.read_state_dict(short)
    overrun = {'w': pth_writer.Tensor(pth_writer.Storage(np.ones(4, np.float32), 0), 2, (3,),
                                      (1,))}
    with pytest.raises(errors.TorchFileError, match='holds 4 elements, a tensor of size'):
        torch_pth.read_state_dict(pth_writer.write_zip(str(tmp_path / 'over.pth'), overrun))


def test_unsupported_content_asks_for_the_torch_extra(tmp_path, monkeypatch):
    state = pth_writer.tensors({'w': np.ones(2, np.float32)})
    state['p'] = pth_writer.evil('torch._utils', '_rebuild_parameter')
    target = pth_writer.write_zip(str(tmp_path / 'param.pth'), state)
    real_import = builtins.__import__

    def no_torch(name, *args, **kwargs):
        if name == 'torch':
            raise ImportError('hidden')
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, '__import__', no_torch)
    with pytest.raises(errors.TorchRequiredError) as raised:
        torch_pth.read_state_dict(target)
    assert "torch._utils._rebuild_parameter" in str(raised.value)
    assert "pip install '.[torch]'" in str(raised.value)
    with pytest.raises(errors.UnsupportedTorchFileError):
        torch_pth.read_state_dict(target, torch_fallback=False)


def test_fresh_torch_save_files_in_both_serialisations(tmp_path):
    """Files written now by the installed torch, beyond the committed fixtures: dtypes, views,
    wrappers, and the torch.load fallback for nn.Parameter entries."""
    torch = torch_or_skip()
    torch.manual_seed(0)
    base = torch.randn(6, 5)
    state = collections.OrderedDict(
            conv=torch.randn(8, 3, 4, 4), transposed=base.t(), row=base[2],
            f64=torch.randn(3, dtype=torch.float64), f16=torch.randn(3).half(),
            bf16=torch.randn(4).bfloat16(), count=torch.tensor(7), flags=torch.tensor([True]))
    if hasattr(torch, 'uint16'):  # saved through _rebuild_tensor_v3 and an untyped storage
        state['u16'] = torch.arange(5).to(torch.uint16)
    expected = {k: (v.float() if v.dtype == torch.bfloat16 else v).numpy()
                for k, v in state.items()}
    for zipped in (True, False):
        documents = {'plain': state, 'wrapped': {'state_dict': state, 'epoch': 3},
                     'model': {'model': state}}
        for label, document in documents.items():
            target = str(tmp_path / f'{label}_{zipped}.pth')
            torch.save(document, target, _use_new_zipfile_serialization=zipped)
            got = torch_pth.read_state_dict(target, torch_fallback=False)
            assert list(got) == list(state)
            for name, value in expected.items():
                assert got[name].dtype == value.dtype, name
                np.testing.assert_array_equal(got[name], value, err_msg=name)
    params = {'w': torch.nn.Parameter(torch.ones(2, 2))}
    target = str(tmp_path / 'params.pth')
    torch.save(params, target)
    with pytest.raises(errors.UnsupportedTorchFileError, match='_rebuild_parameter'):
        torch_pth.read_state_dict(target, torch_fallback=False)
    np.testing.assert_array_equal(torch_pth.read_state_dict(target)['w'], np.ones((2, 2)))


def test_the_test_writer_matches_torch(tmp_path):
    """pth_writer's files, which the tests above rely on, are what torch.load reads too."""
    torch = torch_or_skip()
    root = pth_writer.Storage(np.arange(20, dtype=np.float32), key='9', location='cpu')
    state = {'a': pth_writer.Tensor(root, 1, (2, 2), (1, 2), view=('10', 10, 6)),
             'b': pth_writer.Tensor(root, 4, (3,), (2,))}
    state.update(pth_writer.tensors({'c': np.arange(3, dtype=np.int64)}))
    for target in (pth_writer.write_legacy(str(tmp_path / 'l.pth'), state),
                   pth_writer.write_zip(str(tmp_path / 'z.pth'),
                                        {k: v for k, v in state.items() if k != 'a'}),
                   pth_writer.write_zip(str(tmp_path / 'b.pth'), {'c': state['c']}, 'big')):
        ours = torch_pth.read_state_dict(target)
        theirs = torch.load(target, map_location='cpu', weights_only=True)
        assert list(ours) == list(theirs)
        for name in ours:
            np.testing.assert_array_equal(ours[name], theirs[name].numpy())
