r"""Writes the photo front end's pose and parse of every person of a synthetic split, so the
networks can learn from what they will be given rather than from the drawn truth.

    python train/estimate_synthetic.py --dataset_root=synthetic/men_tshirts --mode=train

For each ``<mode>/image/<person>`` it writes ``<mode>/pose-estimated/<stem>_keypoints.json``
(OpenPose JSON, frame pixels) and ``<mode>/image-parse-estimated/<stem>.png`` (LIP palette PNG),
the front end's estimate of that image (needs the frontend extra). Train on them with
``train/train.py --estimated_inputs``: the networks' inputs (pose, parse, and the person
representation made from them) come from the estimate, their targets (the garment region, the
clothing mask) from the drawn parse. Where the front end refuses the image (no person found,
no shoulders), the drawn pose and parse are written instead and counted. Each file is written
to a temporary name and renamed; an interrupted run resumes (persons with both files are
skipped).
"""

import os
import shutil
import sys
import time

from everywear_tf.cli import app as command  # noqa: E402 (before TensorFlow)

command.quiet_tensorflow()

from absl import flags  # noqa: E402

from everywear_tf import errors  # noqa: E402
from everywear_tf.data import datasets  # noqa: E402
from everywear_tf.data import images  # noqa: E402
from everywear_tf.data import keypoints as keypoint_files  # noqa: E402
from everywear_tf.data import parsing  # noqa: E402
from everywear_tf.inference.frontend import estimator  # noqa: E402

_DATASET_ROOT = flags.DEFINE_string('dataset_root', None, 'A synthetic dataset (CP-VTON layout).',
                                    required=True)
_MODE = flags.DEFINE_string('mode', 'train', 'The split directory.')
_LOG_EVERY = flags.DEFINE_integer('log_every', 100, 'Progress interval in persons.', lower_bound=1)


def main(argv):
    del argv
    split = os.path.join(_DATASET_ROOT.value, _MODE.value)
    image_dir = os.path.join(split, 'image')
    if not os.path.isdir(image_dir):
        print(f'estimate_synthetic: error: {image_dir}: not a directory', file=sys.stderr)
        return 1
    pose_dir = os.path.join(split, datasets.ESTIMATED_POSE)
    parse_dir = os.path.join(split, datasets.ESTIMATED_PARSE)
    os.makedirs(pose_dir, exist_ok=True)
    os.makedirs(parse_dir, exist_ok=True)
    names = sorted(os.listdir(image_dir))
    front_end = estimator.FrontEnd.in_process()
    fallbacks, done, started = 0, 0, time.monotonic()
    for count, name in enumerate(names, 1):
        stem = os.path.splitext(name)[0]
        pose_out = os.path.join(pose_dir, f'{stem}_keypoints.json')
        parse_out = os.path.join(parse_dir, f'{stem}.png')
        if not (os.path.isfile(pose_out) and os.path.isfile(parse_out)):
            path = os.path.join(image_dir, name)
            try:
                photo = images.read_image(path)
            except errors.EverywearError as e:
                print(f'estimate_synthetic: error: {e}', file=sys.stderr)
                return 1
            try:
                estimate = front_end(photo, path)
                keypoint_files.write_openpose_json(pose_out, estimate.keypoints)
                parsing.write_parse_png(parse_out, estimate.parse)
            except errors.EverywearError:  # no person, no shoulders: what the pipeline refuses
                fallbacks += 1
                shutil.copyfile(os.path.join(split, 'pose', f'{stem}_keypoints.json'),
                                pose_out + '.tmp')
                os.replace(pose_out + '.tmp', pose_out)
                shutil.copyfile(os.path.join(split, 'image-parse', f'{stem}.png'),
                                parse_out + '.tmp')
                os.replace(parse_out + '.tmp', parse_out)
            done += 1
        if count % _LOG_EVERY.value == 0 or count == len(names):
            rate = done / max(time.monotonic() - started, 1e-9)
            print(f'{count}/{len(names)} persons ({done} estimated now, {rate:.1f}/s; '
                  f'{fallbacks} refused by the front end, drawn truth used)', file=sys.stderr)
    print(f'wrote {pose_dir} and {parse_dir} ({fallbacks} of {len(names)} with the drawn truth)')
    return 0


if __name__ == '__main__':
    command.run(main)
