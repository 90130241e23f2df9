r"""The demo weights on real photos: fold fraction, warped-mask IoU and the collapse test.

    python train/photo_check.py --output_dir=/tmp/photo_check

Photos: the bundled demo photo and scikit-image's ``astronaut`` and ``camera`` (public domain,
read from the installed package; the test extra installs it), each with the pose and parse the
photo front end estimates (the frontend extra). Each photo gets the demo t-shirt. Per photo the
table gives GMM's fold fraction (share of the warped garment where the sampling grid folds), the
IoU of GMM's warped mask (≥ 100/255) with the estimated upper-clothes region of the frame, and
below it the theta spread across the photos (near 0: one warp for every input). Written to
``--output_dir``: per photo a row frame | warped garment | try-on frame | final photo, nothing
of which belongs in the repository.
"""

import os
import sys

from everywear_tf.cli import app as command  # noqa: E402 (before TensorFlow)

command.quiet_tensorflow()

import cv2  # noqa: E402
import numpy as np  # noqa: E402
from absl import flags  # noqa: E402

from everywear_tf import demo  # noqa: E402
from everywear_tf import demo_weights  # noqa: E402
from everywear_tf import errors  # noqa: E402
from everywear_tf import evaluate  # noqa: E402
from everywear_tf import spec  # noqa: E402
from everywear_tf.data import images  # noqa: E402
from everywear_tf.data import lip  # noqa: E402
from everywear_tf.inference import pipeline  # noqa: E402

_OUTPUT_DIR = flags.DEFINE_string('output_dir', None, 'Where the stage pictures go (PNG).')
_WEIGHTS_ROOT = flags.DEFINE_string('weights_root', demo_weights.DIRECTORY,
                                    'Directory of <module>_<category>/ weights directories.')
_CATEGORY = flags.DEFINE_enum('category', spec.MEN_TSHIRTS, (spec.MEN_TSHIRTS, spec.MEN_LONG),
                              'The top to try on.')


def photos() -> dict:
    """{name: RGB uint8 photo}: the demo photo and scikit-image's astronaut and camera man."""
    try:
        from skimage import data as skimage_data
    except ImportError as e:
        raise errors.EverywearError('scikit-image is needed for the real photos '
                                    "(pip install '.[test]')") from e
    camera = skimage_data.camera()
    return {'demo': images.read_image(demo.PHOTO), 'astronaut': skimage_data.astronaut(),
            'camera': np.repeat(camera[..., None], 3, axis=2)}


def check(backend, category: str, photo: np.ndarray, name: str) -> tuple:
    """(figures, picture row) of one photo."""
    estimate = pipeline.front_end_for(backend)(photo, name)
    garment_path, mask_path = ((demo.TSHIRT, demo.TSHIRT_MASK) if category == spec.MEN_TSHIRTS
                               else (demo.LONG_SLEEVE, demo.LONG_SLEEVE_MASK))
    result = pipeline.try_on(backend, category, photo, estimate.parse, estimate.keypoints,
                             images.read_image(garment_path), images.read_mask(mask_path), name)
    outputs = result.outputs
    warped = outputs[spec.WARPED_MASK] >= spec.GMM_MASK_THRESHOLD
    clothes = result.frame.parse == lip.UPPER_CLOTHES
    figures = {
            'folded': float(evaluate.fold_fraction(outputs[spec.GRID][None],
                                                   outputs[spec.WARPED_MASK][None])[0]),
            'iou': float(evaluate.iou(warped[None], clothes[None])[0]),
            'theta': outputs[spec.THETA],
    }
    height = spec.IMAGE_HEIGHT
    final = result.final
    final = cv2.resize(final, (max(1, round(final.shape[1] * height / final.shape[0])), height),
                       interpolation=cv2.INTER_AREA)
    row = np.concatenate([result.frame.image, outputs[spec.WARPED_CLOTH], result.composed(),
                          final], axis=1)
    return figures, row


def main(argv):
    del argv
    try:
        backend = pipeline.make_backend(_WEIGHTS_ROOT.value)
        results = {name: check(backend, _CATEGORY.value, photo, name)
                   for name, photo in photos().items()}
    except errors.EverywearError as e:
        print(f'photo_check: error: {e}', file=sys.stderr)
        return 1
    print('| photo | folded | warped-mask IoU vs upper clothes |')
    print('|---|---|---|')
    for name, (figures, _) in results.items():
        print(f"| {name} | {100 * figures['folded']:.2f}% | {figures['iou']:.3f} |")
    thetas = np.stack([figures['theta'] for figures, _ in results.values()])
    print(f'theta spread over the photos: {evaluate.theta_spread(thetas):.4f}')
    if _OUTPUT_DIR.value:
        os.makedirs(_OUTPUT_DIR.value, exist_ok=True)
        for name, (_, row) in results.items():
            path = os.path.join(_OUTPUT_DIR.value, f'{name}_{_CATEGORY.value}.png')
            images.write_png(path, row)
            print(f'wrote {path}')
    return 0


if __name__ == '__main__':
    command.run(main)
