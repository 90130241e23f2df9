"""CP-VTON / CP-VTON+ ``gmm_final.pth`` → our Gmm.

The source names are those of cp-vton's networks.py ``GMM.state_dict()`` (104 entries, reference
cpvton.md §1.6): ``extractionA.model.{0,3,...,15}`` and ``extractionB.model.*`` convolutions,
``extraction{A,B}.model.{2,5,8,11,14}`` batch norms (Conv → ReLU → BN),
``regression.conv.{0,3,6,9}`` convolutions, ``regression.conv.{1,4,7,10}`` batch norms,
``regression.linear``.

Convolutions go OIHW → HWIO; batch norms give γ (``weight``), β (``bias``), running mean and
variance (ε 1e-5 is our model's); ``num_batches_tracked`` (absent from torch 0.4.0 saves) is
excluded. Our Gmm flattens the regression features in NCHW order before its Dense layer, as the
original's ``x.view(B, -1)`` does, so the linear weight is simply transposed.

CP-VTON+ differs only in its cloth branch's input (the 1-channel mask, not RGB):
``extractionB.model.0.weight`` is (64, 1, 4, 4) rather than (64, 3, 4, 4). The variant comes from
the config; a checkpoint of the other variant is refused, the error saying which variant to use
before listing the mismatches.
"""

import os
from collections.abc import Mapping

import numpy as np
import tensorflow as tf

from everywear_tf import configs
from everywear_tf import spec
from everywear_tf.convert import errors
from everywear_tf.convert import tables
from everywear_tf.convert import torch_pth
from everywear_tf.models import blocks
from everywear_tf.models import factory

FORMAT = 'cpvton_torch'
EXTRACTOR_CONVS = (0, 3, 6, 9, 12, 15)  # nn.Sequential indices in FeatureExtraction
EXTRACTOR_NORMS = (2, 5, 8, 11, 14)
REGRESSION_CONVS = (0, 3, 6, 9)  # in FeatureRegression.conv
REGRESSION_NORMS = (1, 4, 7, 10)
BRANCHES = (('extraction_a', 'extractionA'), ('extraction_b', 'extractionB'))
CLOTH_BRANCH_INPUT = 'extractionB.model.0.weight'
CLOTH_BRANCH_KERNEL = 'extraction_b_conv0/kernel'
STATE_DICT_SIZE = 104  # with num_batches_tracked; 90 without


def _batch_norm(target, source):
    return [tables.Rule(f'{target}/gamma', f'{source}.weight'),
            tables.Rule(f'{target}/beta', f'{source}.bias'),
            tables.Rule(f'{target}/moving_mean', f'{source}.running_mean'),
            tables.Rule(f'{target}/moving_variance', f'{source}.running_var')]


def _conv(target, source):
    return [tables.Rule(f'{target}/kernel', f'{source}.weight', tables.OIHW_TO_HWIO),
            tables.Rule(f'{target}/bias', f'{source}.bias')]


def table(variant: str = configs.CPVTON) -> tables.Table:
    """The conversion table (the same names for both variants; shapes differ in one tensor)."""
    if variant not in configs.GMM_VARIANTS:
        raise ValueError(f'unknown GMM variant {variant!r}; known: {configs.GMM_VARIANTS}')
    rules = []
    for ours, theirs in BRANCHES:
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
    norms = [f'{theirs}.model.{i}' for _, theirs in BRANCHES for i in EXTRACTOR_NORMS]
    norms += [f'regression.conv.{i}' for i in REGRESSION_NORMS]
    return tables.Table(tuple(rules), exclude=tables.slots(norms, ['num_batches_tracked'], '.'))


def variant_problem(state: Mapping[str, np.ndarray], model: tf.keras.Model) -> str | None:
    """'wrong variant: ...' when the cloth branch's input width is the other variant's (naming
    the tensor, its shape, the shape ``model`` needs, and the variant to use); else None."""
    weight = state.get(CLOTH_BRANCH_INPUT)
    if weight is None or weight.ndim != 4:
        return None
    needed = tables.Rule(CLOTH_BRANCH_KERNEL, CLOTH_BRANCH_INPUT, tables.OIHW_TO_HWIO)\
        .source_shape(blocks.named_weights(model)[CLOTH_BRANCH_KERNEL].shape)
    variant = model.config.variant
    found = {3: configs.CPVTON, 1: configs.CPVTON_PLUS}.get(weight.shape[1])
    if weight.shape[1] == needed[1] or found is None or found == variant:
        return None
    name = {configs.CPVTON: 'CP-VTON (RGB cloth input)',
            configs.CPVTON_PLUS: 'CP-VTON+ (cloth-mask input)'}[found]
    return (f'wrong variant: {CLOTH_BRANCH_INPUT!r} has shape {tuple(weight.shape)} but the '
            f'{variant} config needs {needed}: this is a {name} checkpoint; use '
            f"variant='{found}' (--variant={found})")


def convert(pth_path: os.PathLike | str,
            config: configs.GmmConfig | None = None) -> tf.keras.Model:
    """A Gmm (built from ``config``, full CP-VTON by default) holding ``pth_path``'s weights."""
    config = config or configs.get(spec.GMM, configs.FULL)
    if not isinstance(config, configs.GmmConfig):
        raise TypeError(f'cpvton_torch converts into a GmmConfig network, got {config!r}')
    state = torch_pth.read_state_dict(pth_path)
    model = factory.build(config)
    hint = variant_problem(state, model)
    try:
        return tables.apply_table(table(config.variant), state, model, pth_path)
    except errors.CheckpointError as e:
        if hint is None:
            raise
        # The likely cause first, then every problem.
        raise errors.CheckpointError(
                pth_path, f'{hint.partition(": ")[2]}; {e.problem}', (hint,) + e.problems) \
            from None
