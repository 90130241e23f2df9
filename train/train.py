r"""Trains one network on a dataset in the CP-VTON or VITON layout.

    python train/train.py --module=gmm --category=men_tshirts \
        --dataset_root=synthetic/men_tshirts --output_dir=runs/candidate
    python train/train.py --module=edm --category=men_tshirts --perceptual_weight=0 \
        --output_dir=runs/candidate ...
    python train/train.py --module=rm --category=men_tshirts --output_dir=runs/candidate ...
    python serving/rollout.py publish --category=men_tshirts --weights_root=runs/candidate

Killed and restarted with the same flags, it resumes from the last checkpoint with the same data
order. The trained network is written to <output_dir>/<module>_<category>/ (a weights directory,
so <output_dir> is a weights root for publish, evaluate and everywear-tryon); checkpoints and
TensorBoard logs go to <output_dir>/training/<module>_<category>/. RM takes the GMM and EDM of
the same run unless --gmm_weights/--edm_weights name others.
"""

import os
import sys

from everywear_tf.cli import app as command  # noqa: E402 (before TensorFlow)

command.quiet_tensorflow()

from absl import flags  # noqa: E402

from everywear_tf import configs  # noqa: E402
from everywear_tf import errors  # noqa: E402
from everywear_tf import spec  # noqa: E402
from everywear_tf import weights  # noqa: E402
from everywear_tf.data import datasets  # noqa: E402
from everywear_tf.data import dress_code  # noqa: E402
from everywear_tf.data import synthetic_tryon  # noqa: E402
from everywear_tf.data import tfrecords  # noqa: E402
from everywear_tf.data import viton_hd  # noqa: E402
from everywear_tf.models import vgg  # noqa: E402
from everywear_tf.train import loop  # noqa: E402
from everywear_tf.train import runs  # noqa: E402
from everywear_tf.train import trainers  # noqa: E402

_MODULE = flags.DEFINE_enum('module', None, list(spec.MODULES), 'The network to train.')
_CATEGORY = flags.DEFINE_enum('category', None, list(spec.CATEGORIES),
                              'Garment category (chooses the garment labels of the targets).')
_DATASET_ROOT = flags.DEFINE_string('dataset_root', None, 'The dataset directory (CP-VTON '
                                    'layout: several, comma-separated, are read as one set, '
                                    'in that order, e.g. two looks of the synthetic set).')
_LAYOUT = flags.DEFINE_enum('layout', 'cpvton', ['cpvton', 'viton', 'viton_hd', 'dress_code'],
                            'The dataset layout (viton_hd: <dataset_root>/<mode>/...; '
                            'dress_code: the --category\'s subset, lower_body for men_pants, '
                            'upper_body for the tops).')
_DATASET = flags.DEFINE_string('dataset', None, 'tfrecord:<glob>: train on TFRecord shards '
                               '(train/make_tfrecords.py) instead of --dataset_root.')
_MODE = flags.DEFINE_string('mode', 'train', 'CP-VTON layout: the split directory to read.')
_PAIRS = flags.DEFINE_string('pairs', None, 'Pairs file (default: <mode>_pairs.txt for the '
                             'CP-VTON layout, viton_train_images.txt for VITON).')
_OUTPUT_DIR = flags.DEFINE_string('output_dir', None, 'The run: the trained network goes to '
                                  '<output_dir>/<module>_<category>/, checkpoints and logs to '
                                  '<output_dir>/training/<module>_<category>/.')
_CONFIG = flags.DEFINE_enum('config', configs.FULL, list(configs.CONFIG_NAMES), 'Network size.')
_VARIANT = flags.DEFINE_enum('variant', configs.CPVTON, list(configs.GMM_VARIANTS),
                             'GMM: CP-VTON (RGB cloth branch) or CP-VTON+ (mask, grid loss).')
_WIDTH = flags.DEFINE_integer(
        'width', None, "The network's base width (GMM and EDM: ngf, RM: filters); default: "
        "--config's (full 64, lite 8). The weights record it, so loading needs no flag.",
        lower_bound=1)
_STEPS = flags.DEFINE_integer('steps', 10000, 'Optimisation steps in total.')
_BATCH_SIZE = flags.DEFINE_integer('batch_size', None, 'Default: the original (GMM 4, EDM/RM '
                                   '16).')
_LEARNING_RATE = flags.DEFINE_float('learning_rate', None, 'Default: the original (GMM 1e-4, '
                                    'EDM/RM 2e-4).')
_SEED = flags.DEFINE_integer('seed', 0, 'Data order and initialisation.')
_DECAY_STEPS = flags.DEFINE_integer(
        'decay_steps', 0, 'The learning rate falls linearly to 0 over the last this many of '
        '--steps, as CP-VTON trains (its --keep_step/--decay_step); 0: constant, as VITON.',
        lower_bound=0)
_VGG_WEIGHTS = flags.DEFINE_string('vgg_weights', None, 'imagenet-vgg-verydeep-19.mat '
                                   '(MatConvNet) or Keras vgg19_..._notop.h5, for the '
                                   'perceptual loss. Never downloaded.')
_PERCEPTUAL_WEIGHT = flags.DEFINE_float('perceptual_weight', None,
                                        'Default: the original (EDM 3.0, RM 0.8); 0 trains '
                                        'without VGG.')
_GMM_WEIGHTS = flags.DEFINE_string('gmm_weights', None, 'RM only: a trained GMM (warps; '
                                   'default: <output_dir>/gmm_<category>).')
_EDM_WEIGHTS = flags.DEFINE_string('edm_weights', None, 'RM only: a trained EDM (coarse '
                                   'persons; default: <output_dir>/edm_<category>).')
_RECALIBRATE = flags.DEFINE_integer(
        'recalibrate_batch_norm', 0, 'EDM: recompute the batch-norm statistics over this many '
        'training batches after training (useful after short runs; 0 keeps the moving '
        'averages, as the original).')
_SAVE_EVERY = flags.DEFINE_integer('save_every', 500, 'Checkpoint interval in steps.')
_LOG_EVERY = flags.DEFINE_integer('log_every', 50, 'Progress and scalar interval in steps.')
_IMAGE_EVERY = flags.DEFINE_integer('image_every', 500, 'Image summary interval in steps.')
_GRID_WEIGHT = flags.DEFINE_float('grid_weight', 0.0, 'GMM on the synthetic layout: weight of the '
                                  'supervised grid term L1(grid, the true grid of warp-grid/) '
                                  '(this project\'s addition; 0 = the originals\' losses).',
                                  lower_bound=0.0)
_GRID_ON = flags.DEFINE_enum('grid_on', 'frame', list(trainers.GRID_REGIONS), 'Where the grid '
                             'term counts: the whole frame, or only where the garment is.')
flags.mark_flags_as_required(['module', 'category', 'output_dir'])
_ESTIMATED_INPUTS = flags.DEFINE_bool(
        'estimated_inputs', False, 'CP-VTON layout: the pose and parse the networks are given are '
        'the photo front end\'s estimates (<mode>/pose-estimated/, <mode>/image-parse-estimated/, '
        'written by train/estimate_synthetic.py); the targets still come from the split\'s own '
        'parse.')
_INIT_WEIGHTS = flags.DEFINE_string(
        'init_weights', None, 'Start from this weights directory (of the same module and config) '
        'instead of a fresh initialisation, e.g. to fine-tune the demo weights on new data. Only '
        'when the run has no checkpoint yet; a resumed run continues from its checkpoint.')


def _dataset():
    if _DATASET.value:
        kind, _, pattern = _DATASET.value.partition(':')
        if kind != 'tfrecord' or not pattern:
            raise errors.DatasetError(_DATASET.value, '--dataset must be tfrecord:<glob>')
        return tfrecords.TfRecordDataset(pattern)
    if not _DATASET_ROOT.value:
        raise errors.DatasetError('--dataset_root', 'missing: pass it (or '
                                                    '--dataset=tfrecord:<glob>)')
    roots = _roots()
    if _LAYOUT.value == 'viton_hd':
        return viton_hd.VitonHdDataset(_DATASET_ROOT.value, _MODE.value, _PAIRS.value)
    if _LAYOUT.value == 'dress_code':
        return dress_code.DressCodeDataset(_DATASET_ROOT.value, _CATEGORY.value,
                                           _PAIRS.value or 'train_pairs.txt')
    if _LAYOUT.value == 'viton':
        return datasets.VitonDataset(_DATASET_ROOT.value, _PAIRS.value or 'viton_train_images.txt')
    parts = []
    for root in roots:
        dataset = datasets.CpVtonDataset(root, _MODE.value, _PAIRS.value,
                                         estimated_inputs=_ESTIMATED_INPUTS.value)
        if _GRID_WEIGHT.value:
            dataset = synthetic_tryon.WithGridTargets(dataset, root, _MODE.value)
        parts.append(dataset)
    return parts[0] if len(parts) == 1 else datasets.Concatenated(parts)


def _roots():
    """The --dataset_root directories (several only in the CP-VTON layout)."""
    roots = [root for root in _DATASET_ROOT.value.split(',') if root]
    if len(roots) > 1 and _LAYOUT.value != 'cpvton':
        raise errors.DatasetError(_DATASET_ROOT.value, 'several dataset roots are read only in '
                                                       'the CP-VTON layout')
    if not roots:
        raise errors.DatasetError('--dataset_root', 'empty')
    return roots


def _initialised_from(model, directory, module):
    """``model``'s architecture with the weights of ``directory`` (to fine-tune trained weights
    on new data); TrainingSetupError if that holds another module or config than ``model``'s."""
    trained = weights.load(directory, module=module)
    if trained.config != model.config:
        raise trainers.TrainingSetupError(
                f'--init_weights: {directory} holds a {module.upper()} with config '
                f'{trained.config}, not the {model.config} requested '
                f'(--config, --variant, --width)')
    return trained


def _trainer():
    module = _MODULE.value
    overrides = {'variant': _VARIANT.value} if module == spec.GMM else {}
    if _WIDTH.value:
        overrides['filters' if module == spec.RM else 'ngf'] = _WIDTH.value
    model = trainers.build(module, _CONFIG.value, **overrides)
    if _INIT_WEIGHTS.value:
        model = _initialised_from(model, _INIT_WEIGHTS.value, module)
    optimizer = None
    if _LEARNING_RATE.value or _DECAY_STEPS.value:
        defaults = trainers.DEFAULT_OPTIMIZERS[module]
        optimizer = trainers.make_optimizer(
                trainers.OptimizerConfig(_LEARNING_RATE.value or defaults.learning_rate,
                                         defaults.beta_1, defaults.beta_2, defaults.epsilon),
                steps=_STEPS.value, decay_steps=_DECAY_STEPS.value)
    if module == spec.GMM:
        return trainers.GmmTrainer(model, _CATEGORY.value, optimizer,
                                   grid_weight=_GRID_WEIGHT.value, grid_on=_GRID_ON.value)
    default_weight = 3.0 if module == spec.EDM else 0.8
    weight = default_weight if _PERCEPTUAL_WEIGHT.value is None else _PERCEPTUAL_WEIGHT.value
    features = vgg.Vgg19Features.from_file(_VGG_WEIGHTS.value) if _VGG_WEIGHTS.value else None
    if module == spec.EDM:
        return trainers.EdmTrainer(model, _CATEGORY.value, features, weight, optimizer)
    trained = {}
    for other, given in ((spec.GMM, _GMM_WEIGHTS.value), (spec.EDM, _EDM_WEIGHTS.value)):
        path = given or runs.weights_dir(_OUTPUT_DIR.value, other, _CATEGORY.value)
        if not os.path.isdir(path):
            raise trainers.TrainingSetupError(
                    f'{path}: no such weights directory; RM training needs the trained GMM and '
                    f'EDM: train them with the same --output_dir first, or pass --gmm_weights '
                    f'and --edm_weights')
        trained[other] = weights.load(path, module=other)
    return trainers.RmTrainer(model, _CATEGORY.value, trained[spec.GMM], trained[spec.EDM],
                              features, weight, optimizer)


def main(argv):
    del argv
    try:
        runs.check_output_dir(_OUTPUT_DIR.value, _MODULE.value, _CATEGORY.value)
        trainer = _trainer()
        dataset = _dataset()
    except (errors.EverywearError, trainers.TrainingSetupError) as e:
        print(f'train: error: {e}', file=sys.stderr)
        return 1
    module = _MODULE.value
    config = loop.LoopConfig(steps=_STEPS.value,
                             batch_size=_BATCH_SIZE.value or trainers.DEFAULT_BATCH_SIZES[module],
                             seed=_SEED.value, save_every=_SAVE_EVERY.value,
                             log_every=_LOG_EVERY.value, image_every=_IMAGE_EVERY.value)
    print(f'training {module.upper()} ({_CONFIG.value}) on {len(dataset)} items of '
          f'{_DATASET.value or _DATASET_ROOT.value} for {config.steps} steps, '
          f'batch {config.batch_size}',
          file=sys.stderr)
    state = runs.state_dir(_OUTPUT_DIR.value, module, _CATEGORY.value)
    terms = trainers.train(trainer, dataset, state, config)
    if module == spec.EDM and _RECALIBRATE.value:
        trainers.recalibrate_batch_norm(trainer.model, trainers.edm_batches(
                dataset, config.batch_size, _RECALIBRATE.value, seed=config.seed + 1))
    directory = weights.save(trainer.model,
                             runs.weights_dir(_OUTPUT_DIR.value, module, _CATEGORY.value),
                             source=_DATASET.value or ','.join(map(os.path.abspath, _roots())),
                             overwrite=True,
                             trained={'category': _CATEGORY.value, 'steps': config.steps,
                                      'batch_size': config.batch_size, 'seed': config.seed,
                                      'final_losses': terms})
    print(f'wrote {directory}', file=sys.stderr)
    return 0


if __name__ == '__main__':
    command.run(main)
