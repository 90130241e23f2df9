"""CP-VTON .pth files (both torch.save formats) convert to the numbers of torch and of the NumPy
reference; every mismatch is a named error."""

import collections
import os
import pickle

import numpy as np
import pytest

from everywear_tf import configs
from everywear_tf import errors
from everywear_tf import spec
from everywear_tf.convert import cpvton_torch
from everywear_tf.convert import tables
from everywear_tf.convert import torch_pth
from everywear_tf.models import blocks
from tests.data.fixtures import path
from tests.models import gmm_test
from tests.testdata.convert import torch_inputs

VARIANTS = {configs.CPVTON: 3, configs.CPVTON_PLUS: 1}


def _config(variant):
    return configs.get(spec.GMM, configs.LITE, variant=variant, ngf=torch_inputs.NGF,
                       height=torch_inputs.HEIGHT, width=torch_inputs.WIDTH)


def _fixture(variant, kind):
    return path('convert', f'gmm_{variant}_{kind}.pth')


@pytest.mark.parametrize('variant', VARIANTS)
@pytest.mark.parametrize('kind', ['zip', 'legacy'])
def test_converted_theta_equals_torch_and_numpy(variant, kind):
    model = cpvton_torch.convert(_fixture(variant, kind), _config(variant))
    agnostic, cloth = (x.transpose(0, 2, 3, 1) for x in torch_inputs.inputs(VARIANTS[variant]))
    theta = model.regress(agnostic, cloth, training=False).numpy()
    torch_theta = np.load(path('convert', f'gmm_{variant}_theta.npy'))
    np.testing.assert_allclose(theta, torch_theta, atol=1e-5)
    weights = {k: v.numpy().astype(np.float64) for k, v in blocks.named_weights(model).items()}
    frame = (2, torch_inputs.HEIGHT, torch_inputs.WIDTH)
    rng = np.random.default_rng(3)
    rgb = rng.uniform(-1, 1, frame + (3,)).astype(np.float32)
    mask = (rng.uniform(size=frame + (1,)) > 0.5).astype(np.float32)
    expected = gmm_test._forward(weights, agnostic, cloth, rgb, mask, *frame[1:])
    got = model((agnostic, cloth, rgb, mask), training=False)
    for key in ('theta', 'grid', 'warped_cloth', 'warped_mask'):
        np.testing.assert_allclose(got[key].numpy(), expected[key], atol=1e-4, err_msg=key)


def test_both_serialisations_hold_the_same_tensors():
    for variant in VARIANTS:
        a = torch_pth.read_state_dict(_fixture(variant, 'zip'))
        b = torch_pth.read_state_dict(_fixture(variant, 'legacy'))
        assert len(a) == 104 and list(a) == list(b)
        for key in a:
            np.testing.assert_array_equal(a[key], b[key])


@pytest.fixture
def state():
    return torch_pth.read_state_dict(_fixture(configs.CPVTON, 'zip'))


def _apply(state, variant=configs.CPVTON):
    from everywear_tf.models import factory
    return tables.apply(cpvton_torch.table(variant), state,
                        factory.build(_config(variant)), 'gmm_final.pth')


def test_a_missing_key_is_named(state):
    del state['regression.conv.4.running_var']
    with pytest.raises(tables.CheckpointError, match=r"missing tensor "
                       r"'regression.conv.4.running_var' \(for regression_bn1/moving_variance\)"):
        _apply(state)


def test_an_unknown_key_is_named(state):
    state['regression.extra.weight'] = np.zeros(3, np.float32)
    with pytest.raises(tables.CheckpointError,
                       match=r"unexpected tensors \['regression.extra.weight'\]"):
        _apply(state)


def test_a_wrong_shape_is_named(state):
    state['regression.linear.bias'] = np.zeros(49, np.float32)
    with pytest.raises(tables.CheckpointError, match=r"'regression.linear.bias' has shape "
                                                     r"\(49,\), regression_linear/bias needs"):
        _apply(state)


def test_num_batches_tracked_is_optional(state):
    trimmed = collections.OrderedDict((k, v) for k, v in state.items()
                                      if not k.endswith('num_batches_tracked'))
    assert len(trimmed) == 104 - 14  # 5 + 5 + 4 batch norms
    _apply(trimmed)


def test_a_cpvton_plus_checkpoint_into_a_cpvton_config(tmp_path):
    with pytest.raises(tables.CheckpointError) as raised:
        cpvton_torch.convert(_fixture(configs.CPVTON_PLUS, 'zip'), _config(configs.CPVTON))
    message = str(raised.value)
    assert "'extractionB.model.0.weight' has shape (4, 1, 4, 4)" in message
    assert "it is a cpvton_plus checkpoint: use variant='cpvton_plus'" in message
    with pytest.raises(tables.CheckpointError, match="use variant='cpvton'"):
        cpvton_torch.convert(_fixture(configs.CPVTON, 'legacy'), _config(configs.CPVTON_PLUS))


def test_all_problems_are_listed_together(state):
    del state['extractionA.model.0.bias']
    state['regression.linear.bias'] = np.zeros(49, np.float32)
    with pytest.raises(tables.CheckpointError) as raised:
        _apply(state)
    assert 'extractionA.model.0.bias' in str(raised.value)
    assert 'regression.linear.bias' in str(raised.value)


def test_full_size_table_matches_the_original_names_and_shapes():
    """The 104 names and shapes of cpvton.md §1.6 fill the full GMM exactly."""
    from everywear_tf.models import factory
    for variant, cloth_channels in VARIANTS.items():
        model = factory.build(configs.get(spec.GMM, configs.FULL, variant=variant))
        state = collections.OrderedDict()
        widths = (64, 128, 256, 512, 512, 512)
        for branch, in_channels in (('extractionA', 22), ('extractionB', cloth_channels)):
            channels = in_channels
            for i, index in enumerate((0, 3, 6, 9, 12, 15)):
                kernel = 4 if i < 4 else 3
                state[f'{branch}.model.{index}.weight'] = np.zeros(
                        (widths[i], channels, kernel, kernel), np.float32)
                state[f'{branch}.model.{index}.bias'] = np.zeros(widths[i], np.float32)
                if i < 5:
                    for field in ('weight', 'bias', 'running_mean', 'running_var'):
                        state[f'{branch}.model.{index + 2}.{field}'] = np.ones(widths[i],
                                                                               np.float32)
                    state[f'{branch}.model.{index + 2}.num_batches_tracked'] = np.array(1)
                channels = widths[i]
        channels = 192
        for index, (width, kernel) in zip((0, 3, 6, 9), ((512, 4), (256, 4), (128, 3),
                                                         (64, 3))):
            state[f'regression.conv.{index}.weight'] = np.zeros((width, channels, kernel,
                                                                 kernel), np.float32)
            state[f'regression.conv.{index}.bias'] = np.zeros(width, np.float32)
            for field in ('weight', 'bias', 'running_mean', 'running_var'):
                state[f'regression.conv.{index + 1}.{field}'] = np.ones(width, np.float32)
            state[f'regression.conv.{index + 1}.num_batches_tracked'] = np.array(1)
            channels = width
        state['regression.linear.weight'] = np.zeros((50, 768), np.float32)
        state['regression.linear.bias'] = np.zeros(50, np.float32)
        assert len(state) == 104
        tables.apply(cpvton_torch.table(variant), state, model, 'gmm_final.pth')


def test_malicious_and_broken_files(tmp_path, monkeypatch):
    class Evil:
        def __reduce__(self):
            return os.mkdir, ('pth_marker',)

    monkeypatch.chdir(tmp_path)
    legacy = tmp_path / 'evil.pth'
    with open(legacy, 'wb') as f:
        for header in (torch_pth.LEGACY_MAGIC, 1001, {'little_endian': True}):
            pickle.dump(header, f, protocol=2)
        pickle.dump(collections.OrderedDict(w=Evil()), f, protocol=2)
    with pytest.raises(errors.UnsafePickleError, match='refuses to load posix.mkdir'):
        torch_pth.read_state_dict(str(legacy))
    assert not (tmp_path / 'pth_marker').exists()
    data = open(_fixture(configs.CPVTON, 'legacy'), 'rb').read()
    for name, content in (('truncated.pth', data[:len(data) // 2]), ('empty.pth', b''),
                          ('text.pth', b'hello')):
        (tmp_path / name).write_bytes(content)
        with pytest.raises(errors.InputError) as raised:
            torch_pth.read_state_dict(str(tmp_path / name))
        assert name in str(raised.value)
    zipped = open(_fixture(configs.CPVTON, 'zip'), 'rb').read()
    (tmp_path / 'cut.pth').write_bytes(zipped[:len(zipped) // 2])
    with pytest.raises(errors.InputError, match='cut.pth'):
        torch_pth.read_state_dict(str(tmp_path / 'cut.pth'))
