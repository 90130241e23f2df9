r"""Writes the synthetic try-on dataset (CP-VTON layout) for one or all categories.

    python train/make_synthetic.py --output_dir=synthetic --train=2000 --test=200 --look=photo

Deterministic by --seed; an interrupted run resumes (complete items are skipped). Each category
is written in the frame the pipeline tries it on (tops: the upper-body crop, drawn at twice the
size and cropped like a photo; pants: the whole body) unless --frame says otherwise. --look=photo
(the default) randomises the drawing towards photographs (poses, body shapes, hair, garment cuts,
backgrounds, light, folds, soft shadows, product photos on off-white); --look=flat is the plain
drawing the bundled demo and the test fixtures use.
"""

import os
import sys

from everywear_tf.cli import app as command  # noqa: E402 (before TensorFlow)

command.quiet_tensorflow()

from absl import flags  # noqa: E402

from everywear_tf import spec  # noqa: E402
from everywear_tf.data import synthetic  # noqa: E402
from everywear_tf.data import synthetic_tryon  # noqa: E402

_OUTPUT_DIR = flags.DEFINE_string('output_dir', 'synthetic', 'Root; one directory per category.')
_CATEGORIES = flags.DEFINE_list('categories', list(spec.CATEGORIES), 'Categories to write.')
_TRAIN = flags.DEFINE_integer('train', 2000, 'Training items per category.')
_TEST = flags.DEFINE_integer('test', 200, 'Test items per category.')
_SEED = flags.DEFINE_integer('seed', 0, 'Dataset seed.')
_FRAME = flags.DEFINE_enum('frame', None, list(spec.FRAMES),
                           'Frame of every category (default: the pipeline\'s frame of each).')
_LOOK = flags.DEFINE_enum('look', synthetic.PHOTO, list(synthetic.LOOKS),
                          'photo: randomised towards photographs; flat: the plain drawing.')


def main(argv):
    del argv
    for category in _CATEGORIES.value:
        if category not in spec.CATEGORIES:
            print(f'make_synthetic: error: unknown category {category!r}; expected one of '
                  f'{spec.CATEGORIES}', file=sys.stderr)
            return 1
    for category in _CATEGORIES.value:
        root = os.path.join(_OUTPUT_DIR.value, category)
        synthetic_tryon.write_dataset(root, category, _TRAIN.value, _TEST.value, _SEED.value,
                                      log=lambda message: print(message, file=sys.stderr),
                                      frame=_FRAME.value, look=_LOOK.value)
        print(f'wrote {root}')
    return 0


if __name__ == '__main__':
    command.run(main)
