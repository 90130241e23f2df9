r"""Trains the bundled demo weights: lite GMM, EDM and RM for each category on the synthetic set,
then evaluates them on its held-out test split (swapped products, with ground truth).

    python train/make_synthetic.py --output_dir=synthetic --train=1200 --test=100
    python train/train_demo.py --synthetic_root=synthetic --runs_dir=runs \
        --output_dir=checkpoints/demo

No VGG-19 file can be downloaded here, so the perceptual terms are off (--perceptual_weight=0
in train.py terms); everything else is the originals' recipe at lite width. Resumable: rerun the
same command after an interruption.
"""

import json
import os
import sys

from everywear_tf.cli import app as command  # noqa: E402 (before TensorFlow)

command.quiet_tensorflow()

from absl import flags  # noqa: E402

from everywear_tf import configs  # noqa: E402
from everywear_tf import evaluate  # noqa: E402
from everywear_tf import spec  # noqa: E402
from everywear_tf import weights  # noqa: E402
from everywear_tf.data import datasets  # noqa: E402
from everywear_tf.inference import chain as chain_lib  # noqa: E402
from everywear_tf.train import loop  # noqa: E402
from everywear_tf.train import trainers  # noqa: E402

_SYNTHETIC_ROOT = flags.DEFINE_string('synthetic_root', 'synthetic', 'make_synthetic output.')
_RUNS_DIR = flags.DEFINE_string('runs_dir', 'runs', 'Training state and logs.')
_OUTPUT_DIR = flags.DEFINE_string('output_dir', 'checkpoints/demo', 'Final weights.')
_CATEGORIES = flags.DEFINE_list('categories', list(spec.CATEGORIES), 'Categories to train.')
_STEPS = flags.DEFINE_list('steps', ['2000', '6000', '1500'], 'GMM, EDM, RM steps.')
_RECALIBRATION_BATCHES = flags.DEFINE_integer(
        'recalibration_batches', 64, 'EDM batch-norm statistics recomputed over this many '
        'training batches after training (momentum 0.999 has not forgotten its start yet).')


def _train(module, category, trainer, dataset, batch_size, steps):
    run = os.path.join(_RUNS_DIR.value, f'{module}_{category}')
    config = loop.LoopConfig(steps=steps, batch_size=batch_size, save_every=250, log_every=100,
                             image_every=500)
    terms = trainers.train(trainer, dataset, run, config)
    if module == spec.EDM and _RECALIBRATION_BATCHES.value:
        trainers.recalibrate_batch_norm(trainer.model, trainers.edm_batches(
                dataset, batch_size, _RECALIBRATION_BATCHES.value, seed=1))
    target = os.path.join(_OUTPUT_DIR.value, spec.model_name(module, category))
    weights.save(trainer.model, target, source='synthetic try-on set (train/make_synthetic.py)',
                 overwrite=True, trained={'category': category, 'steps': steps,
                                          'batch_size': batch_size, 'final_losses': terms,
                                          'command': 'train/train_demo.py'})
    return weights.load(target, module=module)


def main(argv):
    del argv
    gmm_steps, edm_steps, rm_steps = (int(s) for s in _STEPS.value)
    results = {}
    for category in _CATEGORIES.value:
        root = os.path.join(_SYNTHETIC_ROOT.value, category)
        train_set = datasets.CpVtonDataset(root, 'train')
        gmm = _train(spec.GMM, category, trainers.GmmTrainer(
                trainers.build(spec.GMM, configs.LITE), category), train_set, 4, gmm_steps)
        edm = _train(spec.EDM, category, trainers.EdmTrainer(
                trainers.build(spec.EDM, configs.LITE), category, perceptual_weight=0.0),
                train_set, 16, edm_steps)
        rm = _train(spec.RM, category, trainers.RmTrainer(
                trainers.build(spec.RM, configs.LITE), category, gmm, edm,
                perceptual_weight=0.0), train_set, 16, rm_steps)
        test_set = datasets.CpVtonDataset(root, 'test', pairs='test_pairs_unpaired.txt',
                                          targets=('image-swap', 'image-parse-swap'))
        summary = evaluate.evaluate(chain_lib.Chain.from_models(category, gmm, edm, rm), test_set,
                                    os.path.join(_RUNS_DIR.value, f'eval_{category}'))
        results[category] = summary
        print(f'{category}\n{evaluate.table(summary)}', file=sys.stderr)
        with open(os.path.join(_RUNS_DIR.value, f'demo_evaluation_{category}.json'), 'w') as f:
            json.dump(summary, f, indent=1)
    return 0


if __name__ == '__main__':
    command.run(main)
