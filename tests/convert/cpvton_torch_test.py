"""CP-VTON / CP-VTON+ .pth files (both torch.save formats) convert to torch's own theta and to
the NumPy reference's outputs; every mismatch is a named error."""

import collections

import numpy as np
import pytest

from everywear_tf import configs
from everywear_tf import spec
from everywear_tf.convert import cpvton_torch
from everywear_tf.convert import errors
from everywear_tf.convert import tables
from everywear_tf.convert import torch_pth
from everywear_tf.models import blocks
from everywear_tf.models import factory

from tests.convert import pth_writer
from tests.convert import torch_or_skip
from tests.data.fixtures import path
from tests.models import gmm_test
from tests.testdata.convert import torch_inputs

VARIANTS = {configs.CPVTON: 3, configs.CPVTON_PLUS: 1}


def _config(variant):
    """The fixtures' network: our lite GMM at ngf 4 on a 128×64 frame."""
    return configs.get(spec.GMM, configs.LITE, variant=variant, ngf=torch_inputs.NGF,
                       height=torch_inputs.HEIGHT, width=torch_inputs.WIDTH)


def _fixture(variant, kind):
    return path('convert', f'gmm_{variant}_{kind}.pth')


def _compare_with_numpy(model, agnostic, cloth, seed):
    weights = {k: v.numpy().astype(np.float64) for k, v in blocks.named_weights(model).items()}
    frame = (agnostic.shape[0], model.config.height, model.config.width)
    rng = np.random.default_rng(seed)
    rgb = rng.uniform(-1, 1, frame + (3,)).astype(np.float32)
    mask = (rng.uniform(size=frame + (1,)) > 0.5).astype(np.float32)
    expected = gmm_test._forward(weights, agnostic, cloth, rgb, mask, *frame[1:])
    got = model((agnostic, cloth, rgb, mask), training=False)
    for key in ('theta', 'grid', 'warped_cloth', 'warped_mask'):
        np.testing.assert_allclose(got[key].numpy(), expected[key], atol=1e-4, err_msg=key)


@pytest.mark.parametrize('variant', VARIANTS)
@pytest.mark.parametrize('kind', ['zip', 'legacy'])
def test_converted_theta_equals_torch_and_numpy(variant, kind):
    """The committed fixtures: torch's GMM forward (theta saved beside them) and the float64
    NumPy forward of everything, batch 2."""
    model = cpvton_torch.convert(_fixture(variant, kind), _config(variant))
    agnostic, cloth = (x.transpose(0, 2, 3, 1) for x in torch_inputs.inputs(VARIANTS[variant]))
    theta = model.regress(agnostic, cloth, training=False).numpy()
    torch_theta = np.load(path('convert', f'gmm_{variant}_theta.npy'))
    np.testing.assert_allclose(theta, torch_theta, atol=1e-5)
    _compare_with_numpy(model, agnostic, cloth, seed=3)


def test_fresh_torch_files_convert_to_torch_theta(tmp_path):
    """torch.save now, in both serialisations (plain and wrapped), from the original's
    architecture built in torch; our theta against torch's."""
    torch = torch_or_skip()
    from tests.testdata.convert import make_torch_fixtures
    torch.manual_seed(5)
    network = make_torch_fixtures.Gmm(3)
    with torch.no_grad():
        for module in network.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.2, 0.2)
                module.running_var.uniform_(0.5, 2.0)
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.2, 0.2)
    network.eval()
    agnostic, cloth = torch_inputs.inputs(3)
    with torch.no_grad():
        expected = network(torch.from_numpy(agnostic), torch.from_numpy(cloth)).numpy()
    for zipped in (True, False):
        for document in (network.state_dict(), {'state_dict': network.state_dict()}):
            target = str(tmp_path / f'gmm_{zipped}_{len(document)}.pth')
            torch.save(document, target, _use_new_zipfile_serialization=zipped)
            model = cpvton_torch.convert(target, _config(configs.CPVTON))
            theta = model.regress(agnostic.transpose(0, 2, 3, 1), cloth.transpose(0, 2, 3, 1),
                                  training=False).numpy()
            np.testing.assert_allclose(theta, expected, atol=1e-5)


def test_the_committed_fixtures_are_what_their_script_makes(tmp_path, capsys):
    """make_torch_fixtures.py, rerun with the installed torch, writes the same tensors and
    theta as the committed files (so they can be regenerated and trusted)."""
    torch_or_skip()
    from tests.testdata.convert import make_torch_fixtures
    make_torch_fixtures.main(str(tmp_path))
    for variant in VARIANTS:
        for kind in ('zip', 'legacy'):
            fresh = torch_pth.read_state_dict(str(tmp_path / f'gmm_{variant}_{kind}.pth'))
            committed = torch_pth.read_state_dict(_fixture(variant, kind))
            assert list(fresh) == list(committed)
            for name in fresh:
                np.testing.assert_array_equal(fresh[name], committed[name], err_msg=name)
        np.testing.assert_allclose(np.load(tmp_path / f'gmm_{variant}_theta.npy'),
                                   np.load(path('convert', f'gmm_{variant}_theta.npy')),
                                   atol=1e-6)


def _random_state(config, seed=0):
    """A state dict with the original's 104 names and ``config``'s shapes, random values."""
    rng = np.random.default_rng(seed)
    model = factory.build(config)
    state = collections.OrderedDict()
    for name, shape in cpvton_torch.table(config.variant).source_shapes(model).items():
        if name.endswith(('running_var', '.weight')) and len(shape) == 1:
            state[name] = rng.uniform(0.5, 1.5, shape).astype(np.float32)
        else:
            fan_in = np.prod(shape[1:]) if len(shape) > 1 else 10
            state[name] = rng.normal(0, 1 / np.sqrt(fan_in), shape).astype(np.float32)
        if name.endswith('running_var'):
            state[name.replace('running_var', 'num_batches_tracked')] = np.array(100)
    return state


def test_a_written_lite_state_dict_converts_exactly(tmp_path):
    """Every tensor lands where the table says, transformed, for both variants (written by the
    torch-free test writer in the legacy format torch 0.4 used)."""
    for variant in VARIANTS:
        config = configs.get(spec.GMM, configs.LITE, variant=variant, height=128, width=64)
        state = _random_state(config)
        assert len(state) == cpvton_torch.STATE_DICT_SIZE
        target = pth_writer.write_legacy(str(tmp_path / f'{variant}.pth'),
                                         pth_writer.tensors(state))
        model = cpvton_torch.convert(target, config)
        ours = blocks.named_weights(model)
        for rule in cpvton_torch.table(variant).rules:
            np.testing.assert_array_equal(ours[rule.target].numpy(), rule.apply(state[rule.source]))
        rng = np.random.default_rng(1)
        agnostic = rng.uniform(-1, 1, (2, 128, 64, 22)).astype(np.float32)
        cloth = rng.uniform(-1, 1, (2, 128, 64, VARIANTS[variant])).astype(np.float32)
        _compare_with_numpy(model, agnostic, cloth, seed=2)


@pytest.fixture
def state():
    return torch_pth.read_state_dict(_fixture(configs.CPVTON, 'zip'))


def _apply(state, variant=configs.CPVTON):
    return tables.apply_table(cpvton_torch.table(variant), state,
                              factory.build(_config(variant)), 'gmm_final.pth')


def test_a_missing_key_is_named(state):
    del state['regression.conv.4.running_var']
    with pytest.raises(errors.CheckpointError, match=r"missing tensors: "
                       r"'regression.conv.4.running_var' \(for regression_bn1/moving_variance\)"):
        _apply(state)


def test_an_unknown_key_is_named(state):
    state['regression.extra.weight'] = np.zeros(3, np.float32)
    with pytest.raises(errors.CheckpointError, match=r"unexpected tensors .*: "
                                                     r"'regression.extra.weight'"):
        _apply(state)


def test_a_wrong_shape_is_named(state):
    state['regression.linear.bias'] = np.zeros(49, np.float32)
    with pytest.raises(errors.CheckpointError, match=r"wrong shapes: 'regression.linear.bias' "
                       r"has shape \(49,\), regression_linear/bias needs \(50,\)"):
        _apply(state)


def test_integer_and_non_finite_tensors_are_refused(state):
    state['regression.linear.bias'] = state['regression.linear.bias'].astype(np.int32)
    state['extractionA.model.0.bias'] = np.full_like(state['extractionA.model.0.bias'], np.nan)
    with pytest.raises(errors.CheckpointError) as raised:
        _apply(state)
    assert "not floating point: 'regression.linear.bias' is int32" in str(raised.value)
    assert "non-finite values: 'extractionA.model.0.bias' (4 of 4)" in str(raised.value)


def test_num_batches_tracked_is_optional(state):
    trimmed = collections.OrderedDict((k, v) for k, v in state.items()
                                      if not k.endswith('num_batches_tracked'))
    assert len(trimmed) == 104 - 14  # 5 + 5 + 4 batch norms
    _apply(trimmed)


def test_a_cpvton_plus_checkpoint_into_a_cpvton_config():
    with pytest.raises(errors.CheckpointError) as raised:
        cpvton_torch.convert(_fixture(configs.CPVTON_PLUS, 'zip'), _config(configs.CPVTON))
    message = str(raised.value)
    assert message.startswith(_fixture(configs.CPVTON_PLUS, 'zip'))
    assert message.startswith(
            f"{_fixture(configs.CPVTON_PLUS, 'zip')}: 'extractionB.model.0.weight' has shape "
            "(4, 1, 4, 4) but the cpvton config needs (4, 3, 4, 4): this is a CP-VTON+ "
            "(cloth-mask input) checkpoint; use variant='cpvton_plus' (--variant=cpvton_plus); "
            "does not match the network (1 problem): wrong shapes: "
            "'extractionB.model.0.weight' has shape (4, 1, 4, 4), extraction_b_conv0/kernel "
            "needs (4, 3, 4, 4)"), message
    assert raised.value.problems[0].startswith('wrong variant: ')
    with pytest.raises(errors.CheckpointError, match=r"needs \(4, 1, 4, 4\).*variant='cpvton'"):
        cpvton_torch.convert(_fixture(configs.CPVTON, 'legacy'), _config(configs.CPVTON_PLUS))
    # A wider network too: the variant still comes first, every other mismatch follows.
    with pytest.raises(errors.CheckpointError) as raised:
        cpvton_torch.convert(_fixture(configs.CPVTON_PLUS, 'legacy'),
                             configs.get(spec.GMM, configs.LITE, height=128, width=64))
    assert "use variant='cpvton_plus'" in str(raised.value)
    assert len(raised.value.problems) > 50


def test_every_problem_is_listed_and_nothing_is_assigned(state):
    del state['extractionA.model.0.bias']
    del state['extractionA.model.3.bias']
    state['regression.linear.bias'] = np.zeros(49, np.float32)
    state['regression.conv.0.weight'] = state['regression.conv.0.weight'][:, :-1]
    state['stray'] = np.zeros(1, np.float32)
    model = factory.build(_config(configs.CPVTON))
    before = {k: v.numpy().copy() for k, v in blocks.named_weights(model).items()}
    with pytest.raises(errors.CheckpointError) as raised:
        tables.apply_table(cpvton_torch.table(), state, model, 'gmm_final.pth')
    assert len(raised.value.problems) == 5
    for name in ('extractionA.model.0.bias', 'extractionA.model.3.bias', 'regression.linear.bias',
                 'regression.conv.0.weight', 'stray'):
        assert name in str(raised.value)
    assert '(5 problems)' in str(raised.value)
    for name, variable in blocks.named_weights(model).items():
        np.testing.assert_array_equal(variable.numpy(), before[name], err_msg=name)


def test_a_full_size_mismatch_names_every_tensor(state):
    """A lite file into the full network: one error naming every mis-shaped tensor (all but
    the linear bias, 50 wide in both)."""
    model = factory.build(configs.get(spec.GMM, configs.FULL))
    with pytest.raises(errors.CheckpointError) as raised:
        tables.apply_table(cpvton_torch.table(), state, model, 'gmm_final.pth')
    message = str(raised.value)
    assert len(raised.value.problems) == 89
    for name in state:
        if not name.endswith('num_batches_tracked') and name != 'regression.linear.bias':
            assert f"'{name}' has shape" in message, name
    assert '... and' not in message


def _original_shapes(cloth_channels):
    """The 104 names and shapes of gmm_final.pth (reference cpvton.md §1.6)."""
    shapes = collections.OrderedDict()
    widths = (64, 128, 256, 512, 512, 512)
    for branch, in_channels in (('extractionA', 22), ('extractionB', cloth_channels)):
        channels = in_channels
        for i, index in enumerate((0, 3, 6, 9, 12, 15)):
            kernel = 4 if i < 4 else 3
            shapes[f'{branch}.model.{index}.weight'] = (widths[i], channels, kernel, kernel)
            shapes[f'{branch}.model.{index}.bias'] = (widths[i],)
            if i < 5:
                for field in ('weight', 'bias', 'running_mean', 'running_var'):
                    shapes[f'{branch}.model.{index + 2}.{field}'] = (widths[i],)
                shapes[f'{branch}.model.{index + 2}.num_batches_tracked'] = ()
            channels = widths[i]
    channels = 192
    for index, (width, kernel) in zip((0, 3, 6, 9), ((512, 4), (256, 4), (128, 3), (64, 3))):
        shapes[f'regression.conv.{index}.weight'] = (width, channels, kernel, kernel)
        shapes[f'regression.conv.{index}.bias'] = (width,)
        for field in ('weight', 'bias', 'running_mean', 'running_var'):
            shapes[f'regression.conv.{index + 1}.{field}'] = (width,)
        shapes[f'regression.conv.{index + 1}.num_batches_tracked'] = ()
        channels = width
    shapes['regression.linear.weight'] = (50, 768)
    shapes['regression.linear.bias'] = (50,)
    return shapes


@pytest.mark.parametrize('variant', VARIANTS)
def test_full_size_table_matches_the_original_names_and_shapes(variant):
    """The table, checked against the full GMM's shapes without running it: the original's 104
    names, each rule's required shape, and the parameter count."""
    shapes = _original_shapes(VARIANTS[variant])
    assert len(shapes) == 104
    table = cpvton_torch.table(variant)
    model = factory.build(configs.get(spec.GMM, configs.FULL, variant=variant))
    needed = table.source_shapes(model)
    assert set(needed) | {n for n in shapes if table.excluded(n)} == set(shapes)
    for name, shape in needed.items():
        assert shape == shapes[name], name
    assert sorted(table.targets) == sorted(blocks.named_weights(model))
    trainable = sum(int(np.prod(s)) for n, s in shapes.items()
                    if not n.endswith(('running_mean', 'running_var', 'num_batches_tracked')))
    assert trainable == {configs.CPVTON: 19_057_650, configs.CPVTON_PLUS: 19_055_602}[variant]
