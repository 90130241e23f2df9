"""How far the bfloat16 variant's outputs are from float32's: per module and for the try-on."""

import numpy as np

from everywear_tf import evaluate
from everywear_tf import spec
from everywear_tf.inference import chain as chain_lib
from everywear_tf.models import factory

from bench import inputs as bench_inputs


def chains(category, models):
    """(float32 Chain, bfloat16 Chain) over the same weights; ``models`` = (gmm, edm, rm)."""
    twins = [factory.with_precision(model, factory.BFLOAT16) for model in models]
    floats = [factory.with_precision(model, factory.FLOAT32) for model in models]
    return (chain_lib.Chain.from_models(category, *floats),
            chain_lib.Chain.from_models(category, *twins))


def _difference(reference, other):
    diff = np.abs(np.asarray(reference, np.float64) - np.asarray(other, np.float64))
    return {'max_abs': float(diff.max()), 'mean_abs': float(diff.mean())}


def compare(reference, reduced, chain_inputs):
    """Output differences of ``reduced`` against ``reference`` (two Chains).

    Each module is fed the same inputs in both (RM: the reference chain's GMM and EDM outputs),
    so its own difference shows; ``tryon`` compares the two whole chains, with SSIM (Wang et
    al., on 0..255, evaluate.image_metrics) per item.
    """
    full_reference = reference(chain_inputs)
    full_reduced = reduced(chain_inputs)
    modules = {}
    for module in spec.MODULES:
        module_inputs = bench_inputs.module_inputs(module, chain_inputs, full_reference)
        expected = reference.run_module(module, module_inputs)
        got = reduced.run_module(module, module_inputs)
        modules[module] = {key: _difference(expected[key], got[key])
                           for key in spec.MODULE_OUTPUTS[module]}
    ssim = evaluate.image_metrics(full_reduced[spec.TRYON], full_reference[spec.TRYON])['ssim']
    return {'modules': modules,
            'tryon': {**_difference(full_reference[spec.TRYON], full_reduced[spec.TRYON]),
                      'ssim': [float(s) for s in ssim], 'min_ssim': float(np.min(ssim))}}
