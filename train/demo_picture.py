r"""Draws README's demo picture: the photo | the garments | the try-on, from the photo alone.

    python train/demo_picture.py --output=docs/demo_tryon.png

The bundled demo photo, t-shirt and pants, the pose and parse estimated by the photo front end
(needs the frontend extra), the networks from --weights_root (default: the demo weights); one
row, --height pixels tall.
"""

import sys

from everywear_tf.cli import app as command  # noqa: E402 (before TensorFlow)

command.quiet_tensorflow()

import cv2  # noqa: E402
import numpy as np  # noqa: E402
from absl import flags  # noqa: E402

from everywear_tf import demo  # noqa: E402
from everywear_tf import demo_weights  # noqa: E402
from everywear_tf import errors  # noqa: E402
from everywear_tf import spec  # noqa: E402
from everywear_tf.data import images  # noqa: E402
from everywear_tf.inference import pipeline  # noqa: E402

_OUTPUT = flags.DEFINE_string('output', 'docs/demo_tryon.png', 'Where the picture goes (PNG).')
_WEIGHTS_ROOT = flags.DEFINE_string('weights_root', demo_weights.DIRECTORY,
                                    'Directory of <module>_<category>/ weights directories.')
_HEIGHT = flags.DEFINE_integer('height', 360, 'Height of the row in pixels.', lower_bound=64)


def _fit(image, height):
    scale = height / image.shape[0]
    return cv2.resize(image, (max(1, round(image.shape[1] * scale)), height),
                      interpolation=cv2.INTER_AREA)


def main(argv):
    del argv
    try:
        photo = images.read_image(demo.PHOTO)
        backend = pipeline.make_backend(_WEIGHTS_ROOT.value)
        estimate = pipeline.front_end_for(backend)(photo, demo.PHOTO)
        top = images.read_image(demo.TSHIRT)
        bottom = images.read_image(demo.PANTS)
        final, _ = pipeline.outfit(backend, photo, estimate.parse, estimate.keypoints,
                                   top=(spec.MEN_TSHIRTS, top, images.read_mask(demo.TSHIRT_MASK)),
                                   bottom=(spec.MEN_PANTS, bottom,
                                           images.read_mask(demo.PANTS_MASK)),
                                   pose_path=demo.PHOTO)
        height = _HEIGHT.value
        garments = np.concatenate([_fit(top, height // 2), _fit(bottom, height - height // 2)], 0)
        row = np.concatenate([_fit(photo, height), _fit(garments, height), _fit(final, height)],
                             1)
        images.write_png(_OUTPUT.value, row)
    except errors.EverywearError as e:
        print(f'demo_picture: error: {e}', file=sys.stderr)
        return 1
    print(f'wrote {_OUTPUT.value}')
    return 0


if __name__ == '__main__':
    command.run(main)
