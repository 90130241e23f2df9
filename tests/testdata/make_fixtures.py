"""Writes every reader fixture in this directory (deterministic; rerun to regenerate).

    python tests/testdata/make_fixtures.py

README.md beside this script lists what each fixture exercises.
"""

import json
import os
import pickle
import shutil

import cv2
import numpy as np
import scipy.io

from everywear_tf import spec
from everywear_tf.data import bundle
from everywear_tf.data import images
from everywear_tf.data import lip
from everywear_tf.data import parsing
from everywear_tf.data import synthetic
from everywear_tf.data import synthetic_tryon

HERE = os.path.dirname(os.path.abspath(__file__))
SEED = 20261124
MARKER = 'everywear_pickle_marker'  # the directory the malicious pickle would create


def _path(*parts):
    path = os.path.join(HERE, *parts)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    return path


def _write(name, data):
    with open(_path(name), 'wb') as f:
        f.write(data if isinstance(data, bytes) else data.encode())


def _flat(points):
    return [round(float(v), 3) for v in np.asarray(points).reshape(-1)]


def pose_fixtures(person):
    points = person.keypoints.copy()
    points[3] = 0.0  # one missing point (OpenPose writes 0, 0, 0)
    _write('pose_coco18.json', json.dumps({'version': 1.3, 'people': [
            {'pose_keypoints_2d': _flat(points)}]}))
    _write('pose_legacy.json', json.dumps({'version': 1.0, 'people': [
            {'pose_keypoints': _flat(points)}]}))
    # BODY_25: MidHip at 8, feet at 19..24; two people, the second more confident.
    body25 = np.zeros((25, 3))
    body25[[0, 1, 2, 3, 4, 5, 6, 7, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18]] = points
    body25[8] = (96.0, 140.0, 0.9)
    body25[19:] = (50.0, 250.0, 0.8)
    weak = body25.copy()
    weak[:, 2] *= 0.2
    _write('pose_body25_two_people.json', json.dumps({'version': 1.3, 'people': [
            {'pose_keypoints_2d': _flat(weak)}, {'pose_keypoints_2d': _flat(body25)}]}))
    valid = json.dumps({'people': [{'pose_keypoints_2d': _flat(points)}]})
    _write('pose_truncated.json', valid[:len(valid) // 2])
    _write('pose_wrong_count.json', json.dumps({'people': [
            {'pose_keypoints_2d': _flat(points)[:51]}]}))
    _write('pose_nan.json', valid.replace(str(_flat(points)[0]), 'NaN', 1))
    _write('pose_no_people.json', json.dumps({'version': 1.3, 'people': []}))
    # VITON: candidate rows (x, y, score, id), subset rows (18 indices, total score, count).
    present = [k for k in range(18) if points[k, 2] > 0]
    candidate = np.array([[points[k, 0], points[k, 1], 0.9, i] for i, k in enumerate(present)])
    subset = -np.ones((1, 20))
    subset[0, present] = np.arange(len(present))
    subset[0, 18:] = (15.3, len(present))
    scipy.io.savemat(_path('viton_pose.mat'), {'candidate': candidate, 'subset': subset})
    with open(_path('viton_pose.pkl'), 'wb') as f:
        pickle.dump({'candidate': candidate, 'subset': subset}, f, protocol=2)
    everywear = {'format': 'everywear-pose', 'version': 1, 'order': 'coco18',
                 'image_size': [256, 192], 'keypoints': np.round(points, 3).tolist()}
    _write('pose_everywear.json', json.dumps(everywear, indent=1))
    np.save(_path('pose_expected.npy'), np.round(points, 3).astype(np.float32))


def parse_fixtures(person):
    labels = person.parse
    parsing.write_parse_png(_path('parse_palette.png'), labels)
    cv2.imwrite(_path('parse_grey.png'), labels)
    colours = np.asarray(lip.PALETTE, np.uint8)[labels]
    cv2.imwrite(_path('parse_lip_colours.png'), cv2.cvtColor(colours, cv2.COLOR_RGB2BGR))
    bad = labels.copy()
    bad[:4, :4] = 25
    cv2.imwrite(_path('parse_label_25.png'), bad)
    # VITON: the photo padded at the bottom-right to a square, parsed at 641², stored transposed.
    square = np.zeros((256, 256), np.uint8)
    square[:, :192] = labels
    segment = parsing.nearest_resize(square, (641, 641)).T
    scipy.io.savemat(_path('viton_segment.mat'), {'segment': segment}, do_compression=True)
    np.save(_path('parse_expected.npy'), labels)


class _Mkdir:
    """Unpickling this would create MARKER in the working directory."""

    def __reduce__(self):
        return os.mkdir, (MARKER,)


def pickle_fixtures(person):
    with open(_path('malicious.pkl'), 'wb') as f:
        pickle.dump({'image': np.zeros(3), 'payload': _Mkdir()}, f, protocol=2)
    transform = np.array([[0.5, 0.0, 10.0], [0.0, 0.5, 0.0]])
    bundle.write_bundle(_path('bundle_valid.pkl'), {
            'image': person.image, 'parse': person.parse, 'keypoints': person.keypoints,
            'transform': transform, 'source_size': np.array([512, 364], np.int64),
            'frame': bundle.BODY})


def dataset_fixtures():
    root = _path('cpvton')
    shutil.rmtree(root, ignore_errors=True)
    synthetic_tryon.write_split(root, 'test', spec.MEN_TSHIRTS, 2, SEED)
    # VITON's layout: JPEG persons and products, transposed segment .mat, pose .mat.
    viton = _path('viton')
    shutil.rmtree(viton, ignore_errors=True)
    lines = []
    for i in range(2):
        sample = synthetic_tryon.render_sample(np.random.default_rng([SEED, 100 + i]),
                                               spec.MEN_TSHIRTS)
        image_id = f'{i:06d}_0'
        for name, rgb in ((image_id, sample.person), (f'{i:06d}_1', sample.cloth)):
            ok, data = cv2.imencode('.jpg', cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR),
                                    [cv2.IMWRITE_JPEG_QUALITY, 95])
            with open(_path('viton', 'women_top', name + '.jpg'), 'wb') as f:
                f.write(data.tobytes())
        square = np.zeros((256, 256), np.uint8)
        square[:, :192] = sample.parse
        scipy.io.savemat(_path('viton', 'segment', image_id + '.mat'),
                         {'segment': parsing.nearest_resize(square, (641, 641)).T},
                         do_compression=True)
        candidate = np.array([[x, y, c, k] for k, (x, y, c) in enumerate(sample.keypoints)])
        subset = np.concatenate([np.arange(18.0), [17.0, 18.0]])[None]
        scipy.io.savemat(_path('viton', 'pose', image_id + '.mat'),
                         {'candidate': candidate, 'subset': subset})
        lines.append(f'{image_id}.jpg {(i + 1) % 2:06d}_1.jpg\n')
    _write(os.path.join('viton', 'viton_test_pairs.txt'), ''.join(lines))


def main():
    person = synthetic.render_person(np.random.default_rng(SEED), sleeve=0.45,
                                     pattern='stripes')
    images.write_png(_path('person.png'), person.image)
    pose_fixtures(person)
    parse_fixtures(person)
    pickle_fixtures(person)
    dataset_fixtures()
    print('wrote the fixtures to', HERE)


if __name__ == '__main__':
    main()
