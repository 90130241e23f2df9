r"""Converts a dataset in any supported layout to sharded TFRecords of the signature inputs.

    python train/make_tfrecords.py --layout=dress_code --category=men_pants \
        --dataset_root=DressCode --output_prefix=shards/pants/train --num_shards=64
    python train/train.py --module=gmm --category=men_pants \
        --dataset=tfrecord:'shards/pants/train-*.tfrecord' --output_dir=runs/pants

Shards are <output_prefix>-NNNNN-of-MMMMM.tfrecord, items in the dataset's order, each written
under a temporary name and renamed when complete; rerun with the same flags, it skips the shards
already written (resumable). <output_prefix>.json records what the shards were made from (layout,
root, category, split, pairs, shard and item counts); a rerun that differs from it, or shards
under the prefix without it, are refused rather than mixed. Progress is printed per shard.
"""

import glob
import json
import os
import sys
import time

from everywear_tf.cli import app as command  # noqa: E402 (before TensorFlow)

command.quiet_tensorflow()

from absl import flags  # noqa: E402

from everywear_tf import errors  # noqa: E402
from everywear_tf import fileio  # noqa: E402
from everywear_tf import spec  # noqa: E402
from everywear_tf.data import datasets  # noqa: E402
from everywear_tf.data import dress_code  # noqa: E402
from everywear_tf.data import tfrecords  # noqa: E402
from everywear_tf.data import viton_hd  # noqa: E402

_LAYOUT = flags.DEFINE_enum('layout', 'cpvton', ['cpvton', 'viton', 'viton_hd', 'dress_code'],
                            'The source layout.')
_ROOT = flags.DEFINE_string('dataset_root', None, 'The source dataset directory.')
_CATEGORY = flags.DEFINE_enum('category', None, list(spec.CATEGORIES),
                              'Dress Code: chooses the subset (lower_body for men_pants, '
                              'upper_body for the tops).')
_MODE = flags.DEFINE_string('mode', 'train', 'CP-VTON / VITON-HD split directory.')
_PAIRS = flags.DEFINE_string('pairs', None, "Pairs file (default: the layout's training list).")
_PREFIX = flags.DEFINE_string('output_prefix', None, 'Shards go to '
                              '<output_prefix>-NNNNN-of-MMMMM.tfrecord.')
_SHARDS = flags.DEFINE_integer('num_shards', 16, 'Number of shards.', lower_bound=1)
flags.mark_flags_as_required(['dataset_root', 'output_prefix'])


def _dataset():
    layout = _LAYOUT.value
    if layout == 'viton_hd':
        return viton_hd.VitonHdDataset(_ROOT.value, _MODE.value, _PAIRS.value)
    if layout == 'dress_code':
        if not _CATEGORY.value:
            raise errors.DatasetError(_ROOT.value, 'the dress_code layout needs --category')
        return dress_code.DressCodeDataset(_ROOT.value, _CATEGORY.value,
                                           _PAIRS.value or 'train_pairs.txt')
    if layout == 'viton':
        return datasets.VitonDataset(_ROOT.value, _PAIRS.value or 'viton_train_images.txt')
    return datasets.CpVtonDataset(_ROOT.value, _MODE.value, _PAIRS.value)


def _check_manifest(count, shards):
    """Writes <prefix>.json, or checks the shards under the prefix came from these flags."""
    manifest = _PREFIX.value + '.json'
    wanted = {'layout': _LAYOUT.value, 'dataset_root': os.path.abspath(_ROOT.value),
              'category': _CATEGORY.value, 'mode': _MODE.value, 'pairs': _PAIRS.value,
              'num_shards': shards, 'items': count}
    if os.path.isfile(manifest):
        try:
            with open(manifest) as f:
                found = json.load(f)
        except (OSError, ValueError) as e:
            raise errors.DatasetError(manifest, f'unreadable ({e}); remove it and the shards '
                                                'to start again') from None
        differ = sorted(k for k in wanted if found.get(k) != wanted[k])
        if differ:
            raise errors.DatasetError(manifest, 'the shards under this prefix were made from '
                                      'something else: ' + ', '.join(
                                          f'{k} {found.get(k)!r} (now {wanted[k]!r})'
                                          for k in differ)
                                      + '; use another --output_prefix or remove them')
        return
    existing = glob.glob(glob.escape(_PREFIX.value) + '-*-of-*.tfrecord')
    if existing:
        raise errors.DatasetError(existing[0], f'{len(existing)} shard(s) under this prefix and no '
                                  f'{os.path.basename(manifest)} saying what they hold; use '
                                  'another --output_prefix or remove them')
    os.makedirs(os.path.dirname(os.path.abspath(manifest)), exist_ok=True)
    fileio.atomic_write_bytes(manifest, json.dumps(wanted, indent=1).encode() + b'\n')


def main(argv):
    del argv
    try:
        dataset = _dataset()
        count, shards = len(dataset), min(_SHARDS.value, len(dataset))
        _check_manifest(count, shards)
        started = time.monotonic()
        for k in range(shards):
            path = tfrecords.shard_name(_PREFIX.value, k, shards)
            first, last = k * count // shards, (k + 1) * count // shards
            if os.path.isfile(path):
                print(f'shard {k + 1}/{shards}: {path} exists, skipped', file=sys.stderr)
                continue
            tfrecords.write_shard(path, (dataset.read(i) for i in range(first, last)))
            print(f'shard {k + 1}/{shards}: items {first}..{last - 1} -> {path} '
                  f'({time.monotonic() - started:.0f} s)', file=sys.stderr, flush=True)
    except errors.EverywearError as e:
        print(f'make_tfrecords: error: {e}', file=sys.stderr)
        return 1
    print(f'wrote {shards} shards of {count} items', file=sys.stderr)
    return 0


if __name__ == '__main__':
    command.run(main)
