"""CP-VTON / CP-VTON+ ``gmm_final.pth`` → our Gmm (cp-vton networks.py names, 104 entries).

Convolutions OIHW → HWIO; batch norms γ, β, running mean and variance (ε 1e-5 is the model's);
``num_batches_tracked`` (absent from torch 0.4.0 saves) is excluded. The linear layer reads the
regression features in NCHW order in our Gmm too, so its weight is simply transposed.
"""

from everywear_tf import configs
from everywear_tf import spec
from everywear_tf.convert import tables
from everywear_tf.convert import torch_pth
from everywear_tf.models import factory

EXTRACTOR_CONVS = (0, 3, 6, 9, 12, 15)
EXTRACTOR_NORMS = (2, 5, 8, 11, 14)
REGRESSION_CONVS = (0, 3, 6, 9)
REGRESSION_NORMS = (1, 4, 7, 10)


def _batch_norm(target, source):
    return [tables.Rule(f'{target}/gamma', f'{source}.weight'),
            tables.Rule(f'{target}/beta', f'{source}.bias'),
            tables.Rule(f'{target}/moving_mean', f'{source}.running_mean'),
            tables.Rule(f'{target}/moving_variance', f'{source}.running_var')]


def _conv(target, source):
    return [tables.Rule(f'{target}/kernel', f'{source}.weight', tables.OIHW_TO_HWIO),
            tables.Rule(f'{target}/bias', f'{source}.bias')]


def table(variant):
    rules = []
    for ours, theirs in (('extraction_a', 'extractionA'), ('extraction_b', 'extractionB')):
        for i, index in enumerate(EXTRACTOR_CONVS):
            rules += _conv(f'{ours}_conv{i}', f'{theirs}.model.{index}')
        for i, index in enumerate(EXTRACTOR_NORMS):
            rules += _batch_norm(f'{ours}_bn{i}', f'{theirs}.model.{index}')
    for i, index in enumerate(REGRESSION_CONVS):
        rules += _conv(f'regression_conv{i}', f'regression.conv.{index}')
    for i, index in enumerate(REGRESSION_NORMS):
        rules += _batch_norm(f'regression_bn{i}', f'regression.conv.{index}')
    rules += [tables.Rule('regression_linear/kernel', 'regression.linear.weight',
                          tables.TRANSPOSE),
              tables.Rule('regression_linear/bias', 'regression.linear.bias')]
    return tables.Table(tuple(rules), exclude=(r'.*\.num_batches_tracked',))


CLOTH_BRANCH_INPUT = 'extractionB.model.0.weight'


def check_variant(state, config, path):
    """CP-VTON's cloth branch takes RGB (3 input channels), CP-VTON+'s the mask (1)."""
    weight = state.get(CLOTH_BRANCH_INPUT)
    if weight is None or weight.ndim != 4 or weight.shape[1] == config.cloth_channels:
        return
    found = {3: configs.CPVTON, 1: configs.CPVTON_PLUS}.get(weight.shape[1])
    suggestion = f"; it is a {found} checkpoint: use variant='{found}'" if found else ''
    raise tables.CheckpointError(
            path, f'{CLOTH_BRANCH_INPUT!r} has shape {tuple(weight.shape)}: its cloth branch '
                  f'takes {weight.shape[1]} channel(s), the {config.variant} config '
                  f'{config.cloth_channels}{suggestion}')


def convert(pth_path, config=None):
    """A Gmm holding the weights of ``pth_path`` (config: full CP-VTON by default)."""
    config = config or configs.get(spec.GMM, configs.FULL)
    state = torch_pth.read_state_dict(pth_path)
    check_variant(state, config, pth_path)
    model = factory.build(config)
    return tables.apply(table(config.variant), state, model, pth_path)
