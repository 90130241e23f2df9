"""Draws the bundled demo files beside this script (deterministic; rerun to regenerate).

    python -m everywear_tf.demo.make_demo
"""

import json
import os

import numpy as np

from everywear_tf import demo
from everywear_tf import fileio
from everywear_tf.data import images
from everywear_tf.data import parsing
from everywear_tf.data import synthetic

SEED = 20261124


def _openpose_json(keypoints):
    """OpenPose 1.3+ layout with one person, COCO-18 points; missing points are (0, 0, 0)."""
    flat = [round(float(v), 2) for v in np.asarray(keypoints).reshape(-1)]
    people = [{'pose_keypoints_2d': flat, 'face_keypoints_2d': [], 'hand_left_keypoints_2d': [],
               'hand_right_keypoints_2d': []}]
    return json.dumps({'version': 1.3, 'people': people}, indent=1)


def main():
    rng = np.random.default_rng(SEED)
    person = synthetic.render_person(rng, top_colour=(45, 95, 160), bottom_colour=(70, 65, 60),
                                     sleeve=0.45)
    images.write_png(demo.PERSON, person.image)
    parsing.write_parse_png(demo.PERSON_PARSE, person.parse)
    fileio.atomic_write_bytes(demo.PERSON_POSE, _openpose_json(person.keypoints).encode())
    for path, mask_path, garment in (
            (demo.TSHIRT, demo.TSHIRT_MASK,
             synthetic.render_top(rng, (190, 55, 50), sleeve=0.45, pattern='stripes')),
            (demo.LONG_SLEEVE, demo.LONG_SLEEVE_MASK,
             synthetic.render_top(rng, (60, 130, 80), sleeve=1.0)),
            (demo.PANTS, demo.PANTS_MASK, synthetic.render_pants(rng, (40, 50, 90)))):
        images.write_png(path, garment.image)
        images.write_png(mask_path, garment.mask)
    print('wrote the demo to', os.path.dirname(demo.PERSON))


if __name__ == '__main__':
    main()
