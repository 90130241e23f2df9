r"""Evaluates a category's GMM, EDM and RM on a dataset: SSIM, PSNR, L1, warp IoU, baselines.

    python train/evaluate.py --category=men_tshirts --weights_root=checkpoints/demo \
        --dataset_root=synthetic/men_tshirts --output_dir=eval/men_tshirts
    # unpaired synthetic pairs with ground truth:
    python train/evaluate.py ... --pairs=test_pairs_unpaired.txt \
        --targets=image-swap,image-parse-swap

Prints a table, writes metrics.json and one grid image per item
(person | cloth | warped | coarse | alpha | try-on | relit | ground truth) under
--output_dir; metrics.json gives each item's relit SSIM (relit_ssim). With the
CP-VTON layout, the mean-warp baseline (every garment warped by the average grid of
--mean_warp_mode's split, default train) is scored beside the model, with GMM's fold fraction
and theta spread; --mean_warp_items=0 skips it.
"""

import os
import sys

from everywear_tf.cli import app as command  # noqa: E402 (before TensorFlow)

command.quiet_tensorflow()

from absl import flags  # noqa: E402

from everywear_tf import errors  # noqa: E402
from everywear_tf import evaluate  # noqa: E402
from everywear_tf import spec  # noqa: E402
from everywear_tf import weights  # noqa: E402
from everywear_tf.data import datasets  # noqa: E402
from everywear_tf.data import dress_code  # noqa: E402
from everywear_tf.data import tfrecords  # noqa: E402
from everywear_tf.data import viton_hd  # noqa: E402
from everywear_tf.inference import chain as chain_lib  # noqa: E402

_CATEGORY = flags.DEFINE_enum('category', None, list(spec.CATEGORIES), 'Garment category.')
_WEIGHTS_ROOT = flags.DEFINE_string('weights_root', None,
                                    'Directory with <module>_<category>/ weights directories.')
_DATASET_ROOT = flags.DEFINE_string('dataset_root', None, 'Dataset (CP-VTON or VITON layout).')
_LAYOUT = flags.DEFINE_enum('layout', 'cpvton', ['cpvton', 'viton', 'viton_hd', 'dress_code'],
                            'Dataset layout (dress_code: the --category\'s subset).')
_DATASET = flags.DEFINE_string('dataset', None, 'tfrecord:<glob>: evaluate TFRecord shards '
                               '(train/make_tfrecords.py) instead of --dataset_root.')
_MODE = flags.DEFINE_string('mode', 'test', 'CP-VTON layout split.')
_PAIRS = flags.DEFINE_string('pairs', None, 'Pairs file (default: <mode>_pairs.txt, or '
                             'viton_test_pairs.txt).')
_TARGETS = flags.DEFINE_list('targets', None, 'Ground-truth image and parse directories for '
                             'unpaired pairs (default: the input person, i.e. paired).')
_OUTPUT_DIR = flags.DEFINE_string('output_dir', None, 'metrics.json and grids/ go here.')
_LIMIT = flags.DEFINE_integer('limit', None, 'Evaluate only the first N items.')
_BATCH_SIZE = flags.DEFINE_integer('batch_size', 8, 'Items per forward pass.')
_MEAN_WARP_MODE = flags.DEFINE_string('mean_warp_mode', 'train', 'CP-VTON layout split whose '
                                      'average GMM grid makes the mean-warp baseline.')
_MEAN_WARP_ITEMS = flags.DEFINE_integer('mean_warp_items', 200, 'Items of that split averaged '
                                        '(0: no mean-warp baseline).', lower_bound=0)
flags.mark_flags_as_required(['category', 'weights_root'])
_ESTIMATED = flags.DEFINE_bool('estimated_inputs', False, 'CP-VTON layout: the networks are given '
                               "the photo front end's pose and parse (<mode>/pose-estimated/, "
                               '<mode>/image-parse-estimated/, from train/estimate_synthetic.py), '
                               'as the pipeline is; scored against the drawn truth.')


def main(argv):
    del argv
    try:
        models = [weights.load(os.path.join(_WEIGHTS_ROOT.value,
                                            spec.model_name(module, _CATEGORY.value)), module)
                  for module in spec.MODULES]
        if _DATASET.value:
            kind, _, pattern = _DATASET.value.partition(':')
            if kind != 'tfrecord' or not pattern:
                raise errors.DatasetError(_DATASET.value, '--dataset must be tfrecord:<glob>')
            dataset = tfrecords.TfRecordDataset(pattern)
        elif not _DATASET_ROOT.value:
            raise errors.DatasetError('--dataset_root', 'missing: pass it (or '
                                                        '--dataset=tfrecord:<glob>)')
        elif _LAYOUT.value == 'viton_hd':
            dataset = viton_hd.VitonHdDataset(_DATASET_ROOT.value, _MODE.value, _PAIRS.value)
        elif _LAYOUT.value == 'dress_code':
            dataset = dress_code.DressCodeDataset(_DATASET_ROOT.value, _CATEGORY.value,
                                                  _PAIRS.value or 'test_pairs_paired.txt')
        elif _LAYOUT.value == 'viton':
            dataset = datasets.VitonDataset(_DATASET_ROOT.value,
                                            _PAIRS.value or 'viton_test_pairs.txt')
        else:
            dataset = datasets.CpVtonDataset(_DATASET_ROOT.value, _MODE.value, _PAIRS.value,
                                             targets=tuple(_TARGETS.value) if _TARGETS.value
                                             else None, estimated_inputs=_ESTIMATED.value)
        chain = chain_lib.Chain.from_models(_CATEGORY.value, *models)
        average = None
        if _MEAN_WARP_ITEMS.value and _LAYOUT.value == 'cpvton' and not _DATASET.value:
            average = evaluate.mean_grid(
                    chain, datasets.CpVtonDataset(_DATASET_ROOT.value, _MEAN_WARP_MODE.value,
                                                  estimated_inputs=_ESTIMATED.value),
                    limit=_MEAN_WARP_ITEMS.value, batch_size=_BATCH_SIZE.value)
        summary = evaluate.evaluate(chain, dataset, _OUTPUT_DIR.value, _BATCH_SIZE.value,
                                    _LIMIT.value, log=lambda message: print(message,
                                                                           file=sys.stderr),
                                    average_grid=average)
    except errors.EverywearError as e:
        print(f'evaluate: error: {e}', file=sys.stderr)
        return 1
    print(evaluate.table(summary))
    return 0


if __name__ == '__main__':
    command.run(main)
