"""Writes the tiny VITON-HD and Dress Code trees in this directory (deterministic).

    python tests/testdata/make_datasets.py

Every image is a figure drawn by the project's synthetic renderer at 1024×768 (nothing taken
from either dataset); the layouts follow each dataset's own loader (see
everywear_tf/data/viton_hd.py and dress_code.py).
"""

import json
import os
import shutil

import cv2
import numpy as np
from PIL import Image

from everywear_tf import fileio
from everywear_tf.data import label_sets
from everywear_tf.data import lip
from everywear_tf.data import parsing
from everywear_tf.data import synthetic

HERE = os.path.dirname(os.path.abspath(__file__))
SEED = 20261201
HEIGHT, WIDTH = 1024, 768
ITEMS = 3
# COCO-18 → BODY_25: BODY_25 index of each COCO point (MidHip is 8, feet 19..24).
_BODY25 = (0, 1, 2, 3, 4, 5, 6, 7, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18)


def _write(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fileio.atomic_write_bytes(path, data)


def _jpeg(path, rgb):
    ok, data = cv2.imencode('.jpg', cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR) if rgb.ndim == 3
                            else rgb, [cv2.IMWRITE_JPEG_QUALITY, 90])
    assert ok
    _write(path, data.tobytes())


def _palette_png(path, labels):
    image = Image.frombytes('P', (labels.shape[1], labels.shape[0]), labels.tobytes())
    palette = np.zeros((256, 3), np.uint8)
    palette[:len(parsing.COLOURS)] = parsing.COLOURS
    image.putpalette(palette.reshape(-1).tolist())
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with fileio.atomic_writer(path) as f:
        image.save(f, format='PNG')


def _inverse(table):
    """LIP id → source id, the first source id of each LIP id."""
    inverse = {}
    for source, (_, target) in sorted(table.items()):
        inverse.setdefault(target, source)
    return inverse


def _to_source(parse, table):
    inverse = _inverse(table)
    out = np.zeros_like(parse)
    for value in np.unique(parse):
        out[parse == value] = inverse[int(value)]
    return out


def _person(rng, i, pants=False):
    return synthetic.render_person(rng, top_colour=(40 + 60 * i, 90, 170),
                                   bottom_colour=(60, 60 + 40 * i, 70), sleeve=0.45 + 0.25 * i,
                                   pattern=('plain', 'stripes', 'plain')[i], height=HEIGHT,
                                   width=WIDTH)


def _neck_patch(parse, keypoints, label):
    """Marks a patch of the upper clothes under the neck point with ``label``."""
    x, y = keypoints[1, :2].astype(int)
    box = parse[y:y + 40, x - 30:x + 30]
    box[box == lip.UPPER_CLOTHES] = label


def viton_hd(root):
    shutil.rmtree(root, ignore_errors=True)
    rng = np.random.default_rng(SEED)
    lines = []
    for i in range(ITEMS):
        name = f'{i:05d}_00.jpg'
        person = _person(rng, i)
        parse = _to_source(person.parse, label_sets.CIHP_TO_LIP)
        _neck_patch(parse, person.keypoints, 10)  # CIHP torso skin
        _jpeg(os.path.join(root, 'train', 'image', name), person.image)
        _palette_png(os.path.join(root, 'train', 'image-parse-v3', name[:-4] + '.png'), parse)
        points = person.keypoints.astype(np.float64).copy()
        if i == 1:
            points[4] = 0.0  # a missing right wrist
        body25 = np.zeros((25, 3))
        body25[list(_BODY25)] = points
        body25[8] = (points[8] + points[11]) / 2  # MidHip
        document = {'version': 1.3, 'people': [{'person_id': [-1], 'pose_keypoints_2d': [
                round(float(v), 3) for v in body25.reshape(-1)]}]}
        _write(os.path.join(root, 'train', 'openpose_json', name[:-4] + '_keypoints.json'),
               json.dumps(document).encode())
        garment = synthetic.render_top(rng, (200, 40 + 50 * i, 60), sleeve=0.45 + 0.25 * i,
                                       height=HEIGHT, width=WIDTH)
        _jpeg(os.path.join(root, 'train', 'cloth', name), garment.image)
        _jpeg(os.path.join(root, 'train', 'cloth-mask', name), garment.mask)
        lines.append(f'{name} {name}')
    _write(os.path.join(root, 'train_pairs.txt'), ('\n'.join(lines) + '\n').encode())


def dress_code(root):
    shutil.rmtree(root, ignore_errors=True)
    rng = np.random.default_rng(SEED + 1)
    for subset, offset in (('upper_body', 0), ('lower_body', 10)):
        lines = []
        for i in range(ITEMS):
            item = f'{offset + i:06d}'
            person = _person(rng, i)
            parse = _to_source(person.parse, label_sets.ATR_TO_LIP)
            if subset == 'lower_body':
                hips = person.keypoints[[8, 11], :2]
                y = int(hips[:, 1].mean())
                band = parse[y - 6:y + 6]
                band[band == 6] = 8  # a belt over the pants
                x = int(hips[:, 0].max()) + 30
                parse[y:y + 60, x:x + 40] = 16  # a bag beside the hip
                garment = synthetic.render_pants(rng, (50, 50 + 60 * i, 160), height=HEIGHT,
                                                 width=WIDTH)
            else:
                garment = synthetic.render_top(rng, (200, 40 + 50 * i, 60),
                                               sleeve=0.45 + 0.25 * i, height=HEIGHT,
                                               width=WIDTH)
            directory = os.path.join(root, subset)
            _jpeg(os.path.join(directory, 'images', item + '_0.jpg'), person.image)
            _jpeg(os.path.join(directory, 'images', item + '_1.jpg'), garment.image)
            if subset == 'lower_body':  # a label map at half the photo's size
                parse = parsing.nearest_resize(parse, (HEIGHT // 2, WIDTH // 2))
            _palette_png(os.path.join(directory, 'label_maps', item + '_4.png'), parse)
            # Keypoints in the 384×512 frame Dress Code's loader assumes (pixel centres kept).
            rows = []
            for k, (x, y, _) in enumerate(person.keypoints.astype(np.float64)):
                if i == 2 and k == 7:
                    rows.append([0.0, 0.0, 0.0, -1.0])  # a missing left wrist
                    continue
                rows.append([round((x + 0.5) * 0.5 - 0.5, 3), round((y + 0.5) * 0.5 - 0.5, 3),
                             0.9, float(k)])
            _write(os.path.join(directory, 'keypoints', item + '_2.json'),
                   json.dumps({'keypoints': rows}).encode())
            lines.append(f'{item}_0.jpg {item}_1.jpg')
        text = ('\n'.join(lines) + '\n').encode()
        for name in ('train_pairs.txt', 'test_pairs_paired.txt'):
            _write(os.path.join(directory, name), text)


if __name__ == '__main__':
    viton_hd(os.path.join(HERE, 'viton_hd'))
    dress_code(os.path.join(HERE, 'dress_code'))
