"""Writes every reader fixture in this directory (deterministic; rerun to regenerate).

    python tests/testdata/make_fixtures.py

README.md beside this script lists what each fixture exercises.
"""

import io
import json
import os
import pickle
import shutil
import struct

import cv2
import numpy as np
import scipy.io
from PIL import Image

from everywear_tf import fileio
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
    fileio.atomic_write_bytes(_path(name), data if isinstance(data, bytes) else data.encode())


class _Python2Pickler(pickle._Pickler):
    """Protocol 2 as Python 2 wrote it: str and bytes as (SHORT_)BINSTRING, so an array's
    data is a raw byte string (Python 3 writes _codecs.encode(..., 'latin1') instead). This is
    what VITON's pose.pkl looks like; Python 3 reads it with encoding='latin1'."""

    dispatch = dict(pickle._Pickler.dispatch)

    def save_binstring(self, obj):
        data = obj.encode('latin1') if isinstance(obj, str) else obj
        if len(data) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(data)]) + data)
        else:
            self.write(pickle.BINSTRING + struct.pack('<i', len(data)) + data)
        self.memoize(obj)

    dispatch[bytes] = save_binstring
    dispatch[str] = save_binstring


def python2_pickle(obj):
    buffer = io.BytesIO()
    _Python2Pickler(buffer, protocol=2).dump(obj)
    return buffer.getvalue()


def _savemat(name, arrays, **kwargs):
    fileio.atomic_write_mat(_path(name), arrays,
                            b'MATLAB 5.0 MAT-file, written by everywear make_fixtures.py', **kwargs)


def _save_npy(name, array):
    with fileio.atomic_writer(_path(name)) as f:
        np.save(f, array)


def _viton_segment(labels):
    """A 256×192 label map as LIP_SSL gave it to VITON: padded to a square at the top-left,
    parsed at 641² (upsampled here with Pillow's NEAREST), stored transposed."""
    square = np.zeros((256, 256), np.uint8)
    square[:, :192] = labels
    return np.asarray(Image.fromarray(square).resize((641, 641), Image.NEAREST)).T


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
    _write('pose_non_numeric.json', json.dumps({'people': [
            {'pose_keypoints_2d': _flat(points)[:5] + ['12.5'] + _flat(points)[6:]}]}))
    # VITON: candidate rows (x, y, score, id), subset rows (18 indices, total score, count).
    # Row 0 is a weak spurious detection (4 parts, score 2.1); row 1 is the person (score 15.3).
    present = [k for k in range(18) if points[k, 2] > 0]
    spurious = [(10.0, 20.0), (12.0, 30.0), (8.0, 30.0), (16.0, 30.0)]
    candidate = np.array([[x, y, 0.5, i] for i, (x, y) in enumerate(spurious)] +
                         [[points[k, 0], points[k, 1], 0.9, len(spurious) + i]
                          for i, k in enumerate(present)])
    subset = -np.ones((2, 20))
    subset[0, :4] = np.arange(4)
    subset[0, 18:] = (2.1, 4)
    subset[1, present] = len(spurious) + np.arange(len(present))
    subset[1, 18:] = (15.3, len(present))
    pose = {'candidate': candidate, 'subset': subset}
    _savemat('viton_pose.mat', pose)
    _write('viton_pose.pkl', python2_pickle(pose))
    everywear = {'format': 'everywear-pose', 'version': 1, 'order': 'coco18',
                 'image_size': [256, 192], 'keypoints': np.round(points, 3).tolist()}
    _write('pose_everywear.json', json.dumps(everywear, indent=1))
    _save_npy('pose_expected.npy', np.round(points, 3).astype(np.float32))


def parse_fixtures(person):
    labels = person.parse
    parsing.write_parse_png(_path('parse_palette.png'), labels)
    images.write_png(_path('parse_grey.png'), labels)
    colours = np.asarray(lip.PALETTE, np.uint8)[labels]
    images.write_png(_path('parse_lip_colours.png'), colours)
    bad = labels.copy()
    bad[:4, :4] = 25
    images.write_png(_path('parse_label_25.png'), bad)
    _savemat('viton_segment.mat', {'segment': _viton_segment(labels)}, do_compression=True)
    _save_npy('parse_expected.npy', labels)


class _Mkdir:
    """Unpickling this would create MARKER in the working directory."""

    def __reduce__(self):
        return os.mkdir, (MARKER,)


def pickle_fixtures(person):
    _write('malicious.pkl', pickle.dumps({'image': np.zeros(3), 'payload': _Mkdir()},
                                         protocol=2))
    transform = np.array([[0.5, 0.0, 10.0], [0.0, 0.5, 0.0]])
    bundle.write_bundle(_path('bundle_valid.pkl'), {
            'image': person.image, 'parse': person.parse, 'keypoints': person.keypoints,
            'transform': transform, 'source_size': np.array([512, 364], np.int64),
            'frame': spec.BODY_FRAME})


def dataset_fixtures():
    root = _path('cpvton')
    shutil.rmtree(root, ignore_errors=True)
    synthetic_tryon.write_split(root, 'test', spec.MEN_TSHIRTS, 2, SEED,
                                frame=spec.BODY_FRAME)
    # VITON's layout: JPEG persons and products, transposed segment .mat, pose .mat / pose.pkl.
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
            _write(os.path.join('viton', 'women_top', name + '.jpg'), data.tobytes())
        _savemat(os.path.join('viton', 'segment', image_id + '.mat'),
                 {'segment': _viton_segment(sample.parse)}, do_compression=True)
        candidate = np.array([[x, y, c, k] for k, (x, y, c) in enumerate(sample.keypoints)])
        subset = np.concatenate([np.arange(18.0), [17.0, 18.0]])[None]
        subset[0, 3] = -1  # one missing point
        if i == 0:  # the test set's form
            _savemat(os.path.join('viton', 'pose', image_id + '.mat'),
                     {'candidate': candidate, 'subset': subset})
        else:  # the train set's form: pose.pkl, a Python 2 pickle {image id: pose}
            _write(os.path.join('viton', 'pose.pkl'),
                   python2_pickle({image_id: {'candidate': candidate, 'subset': subset}}))
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
