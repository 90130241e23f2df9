"""Draws the bundled demo files beside this script (deterministic; rerun to regenerate).

    python -m everywear_tf.demo.make_demo
"""

import json
import os

import cv2
import numpy as np

from everywear_tf import demo
from everywear_tf import fileio
from everywear_tf.data import images
from everywear_tf.data import parsing
from everywear_tf.data import synthetic

SEED = 20261124
PHOTO_SEED = 20261201
# The try-on demo's photo: a person drawn at 720×540 on a square 720×720 canvas, so the pipeline
# letterboxes, crops and pastes back at a size and aspect that are not the networks' frame.
PHOTO_SIZE, PHOTO_PERSON, PHOTO_LEFT = (720, 720), (720, 540), 70


def _openpose_json(keypoints):
    """OpenPose 1.3+ layout with one person, COCO-18 points; missing points are (0, 0, 0)."""
    flat = [round(float(v), 2) for v in np.asarray(keypoints).reshape(-1)]
    people = [{'pose_keypoints_2d': flat, 'face_keypoints_2d': [], 'hand_left_keypoints_2d': [],
               'hand_right_keypoints_2d': []}]
    return json.dumps({'version': 1.3, 'people': people}, indent=1)


def main():
    """Writes the demo person (image, parse, pose), the three products with their masks, and the
    720×720 JPEG photo with its parse and pose, at the paths ``everywear_tf.demo`` names."""
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
    photo_rng = np.random.default_rng(PHOTO_SEED)
    person = synthetic.render_person(photo_rng, top_colour=(45, 95, 160),
                                     bottom_colour=(70, 65, 60), sleeve=0.45,
                                     height=PHOTO_PERSON[0], width=PHOTO_PERSON[1])
    right = PHOTO_SIZE[1] - PHOTO_PERSON[1] - PHOTO_LEFT
    photo = np.pad(person.image, ((0, 0), (PHOTO_LEFT, right), (0, 0)), mode='edge')
    ok, jpeg = cv2.imencode('.jpg', cv2.cvtColor(photo, cv2.COLOR_RGB2BGR),
                            [cv2.IMWRITE_JPEG_QUALITY, 92])
    assert ok
    fileio.atomic_write_bytes(demo.PHOTO, jpeg.tobytes())  # a photo: JPEG, like users' photos
    parsing.write_parse_png(demo.PHOTO_PARSE, np.pad(person.parse, ((0, 0), (PHOTO_LEFT, right))))
    keypoints = person.keypoints.copy()
    keypoints[:, 0] += PHOTO_LEFT
    fileio.atomic_write_bytes(demo.PHOTO_POSE, _openpose_json(keypoints).encode())
    print('wrote the demo to', os.path.dirname(demo.PERSON))


if __name__ == '__main__':
    main()
