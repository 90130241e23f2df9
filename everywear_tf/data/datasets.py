"""Try-on datasets in the originals' layouts, yielding the signature inputs of DESIGN.md §4.

``CpVtonDataset``: CP-VTON's layout (also VITON-resize as CP-VTON redistributed it, and this
project's synthetic sets)::

    root/{mode}_pairs.txt            "person.jpg cloth.jpg" per line
    root/{mode}/image/               person photos
    root/{mode}/image-parse/         LIP label maps (<person stem>.png)
    root/{mode}/pose/                OpenPose JSON (<person stem>_keypoints.json)
    root/{mode}/cloth/, cloth-mask/  product photos and their masks (same names)

``VitonDataset``: VITON's own layout::

    root/<list file>                 "NNNNNN_0.jpg NNNNNN_1.jpg" per line
    root/women_top/                  persons (_0) and products (_1)
    root/segment/<id>.mat            transposed 641² parses
    root/pose/<id>.mat or root/pose.pkl

Items are dicts with the spec's input keys (uint8 person/cloth [256,192,3], uint8 parse and
cloth_mask [256,192], float32 keypoints [18,2], missing = -1) plus 'person_id' and 'cloth_id'.
Every problem names the file.
"""

import os

import tensorflow as tf

from everywear_tf import errors
from everywear_tf import spec
from everywear_tf.data import cloth_mask as cloth_masks
from everywear_tf.data import images
from everywear_tf.data import keypoints as keypoint_files
from everywear_tf.data import lip
from everywear_tf.data import parsing

TARGET_PERSON = 'target_person'
TARGET_PARSE = 'target_parse'


def read_pairs(path):
    """[(person, cloth)] from a pairs file; a malformed line is a DatasetError with its number."""
    path = errors.require_file(path)
    pairs = []
    with open(path, encoding='utf-8') as f:
        for number, line in enumerate(f, start=1):
            fields = line.split()
            if not fields:
                continue
            if len(fields) != 2:
                raise errors.DatasetError(path, f'line {number}: expected "person cloth", got '
                                                f'{line.strip()!r}')
            pairs.append(tuple(fields))
    if not pairs:
        raise errors.DatasetError(path, 'lists no pairs')
    return pairs


def _stem(name):
    return os.path.splitext(name)[0]


def _require_dir(path):
    if not os.path.isdir(path):
        raise errors.DatasetError(path, 'missing directory (see the dataset layout in '
                                        'everywear_tf/data/datasets.py)')
    return path


class _Dataset:
    """Shared parts: len, the tf.data view."""

    pairs = ()

    def __len__(self):
        return len(self.pairs)

    def read(self, i):
        raise NotImplementedError

    def as_tf_dataset(self, shuffle=False, seed=0):
        """A tf.data.Dataset of item dicts (the spec's input keys), optionally shuffled."""
        keys = spec.MODULE_INPUTS[spec.GMM]
        dtypes = [tf.as_dtype(spec.INPUT_SPECS[key][0]) for key in keys]

        def load(index):
            item = self.read(int(index))
            return tuple(item[key] for key in keys)

        def mapped(index):
            values = tf.numpy_function(load, [index], dtypes)
            out = {}
            for key, value in zip(keys, values):
                value.set_shape(spec.INPUT_SPECS[key][1][1:])
                out[key] = value
            return out

        indices = tf.data.Dataset.range(len(self))
        if shuffle:
            indices = indices.shuffle(len(self), seed=seed, reshuffle_each_iteration=True)
        return indices.map(mapped, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)


class CpVtonDataset(_Dataset):
    """CP-VTON's layout; ``targets`` names (image dir, parse dir) of ground truths for the
    listed pairs (the synthetic test split's 'image-swap', 'image-parse-swap')."""

    def __init__(self, root, mode='train', pairs=None, parse_dir='image-parse',
                 max_label=lip.MAX_LABEL, targets=None):
        self.root = os.fspath(root)
        _require_dir(self.root)
        self.split = _require_dir(os.path.join(self.root, mode))
        for directory in ('image', parse_dir, 'pose', 'cloth'):
            _require_dir(os.path.join(self.split, directory))
        self.parse_dir, self.max_label, self.targets = parse_dir, max_label, targets
        if targets is not None:
            for directory in targets:
                _require_dir(os.path.join(self.split, directory))
        self.pairs = read_pairs(os.path.join(self.root, pairs or f'{mode}_pairs.txt'))

    def _cloth_mask(self, cloth_name, cloth):
        directory = os.path.join(self.split, 'cloth-mask')
        for name in (cloth_name, _stem(cloth_name) + '.png', _stem(cloth_name) + '.jpg'):
            path = os.path.join(directory, name)
            if os.path.isfile(path):
                return images.read_mask(path, expected_size=spec.FRAME_SHAPE)
        return cloth_masks.compute_cloth_mask(cloth)

    def read(self, i):
        person_name, cloth_name = self.pairs[i]
        stem = _stem(person_name)
        split = self.split
        person = images.read_image(os.path.join(split, 'image', person_name), spec.FRAME_SHAPE)
        parse = parsing.read_parse(os.path.join(split, self.parse_dir, stem + '.png'),
                                   spec.FRAME_SHAPE, self.max_label)
        points = keypoint_files.read_keypoints(os.path.join(split, 'pose',
                                                            stem + '_keypoints.json'))
        cloth = images.read_image(os.path.join(split, 'cloth', cloth_name), spec.FRAME_SHAPE)
        item = {spec.PERSON: person, spec.PARSE: parse,
                spec.KEYPOINTS: keypoint_files.to_signature(points), spec.CLOTH: cloth,
                spec.CLOTH_MASK: self._cloth_mask(cloth_name, cloth),
                'person_id': stem, 'cloth_id': _stem(cloth_name)}
        if self.targets is not None:
            image_dir, parse_dir = self.targets
            item[TARGET_PERSON] = images.read_image(os.path.join(split, image_dir, person_name),
                                                    spec.FRAME_SHAPE)
            item[TARGET_PARSE] = parsing.read_parse(os.path.join(split, parse_dir, stem + '.png'),
                                                    spec.FRAME_SHAPE, self.max_label)
        return item


class VitonDataset(_Dataset):
    """VITON's layout (data/ of xthan/VITON); product masks are computed from the white
    background, as VITON has none."""

    def __init__(self, root, list_file='viton_test_pairs.txt', images_dir='women_top'):
        self.root = os.fspath(root)
        _require_dir(self.root)
        self.images = _require_dir(os.path.join(self.root, images_dir))
        self.segments = _require_dir(os.path.join(self.root, 'segment'))
        self.pose_dir = os.path.join(self.root, 'pose')
        self.pose_pickle = os.path.join(self.root, 'pose.pkl')
        if not os.path.isdir(self.pose_dir) and not os.path.isfile(self.pose_pickle):
            raise errors.DatasetError(self.root, 'needs pose/<id>.mat files or pose.pkl')
        self.pairs = read_pairs(os.path.join(self.root, list_file))

    def _keypoints(self, image_id):
        mat = os.path.join(self.pose_dir, image_id + '.mat')
        if os.path.isfile(mat):
            return keypoint_files.read_viton_pose_mat(mat)
        if os.path.isfile(self.pose_pickle):
            return keypoint_files.read_viton_pose_pickle(self.pose_pickle, key=image_id)
        raise errors.InputNotFoundError(mat, 'no pose .mat for this image and no pose.pkl')

    def read(self, i):
        person_name, cloth_name = self.pairs[i]
        image_id = _stem(person_name)
        person = images.read_image(os.path.join(self.images, person_name), spec.FRAME_SHAPE)
        parse = parsing.read_parse(os.path.join(self.segments, image_id + '.mat'),
                                   spec.FRAME_SHAPE)
        cloth = images.read_image(os.path.join(self.images, cloth_name), spec.FRAME_SHAPE)
        return {spec.PERSON: person, spec.PARSE: parse,
                spec.KEYPOINTS: keypoint_files.to_signature(self._keypoints(image_id)),
                spec.CLOTH: cloth, spec.CLOTH_MASK: cloth_masks.compute_cloth_mask(cloth),
                'person_id': image_id, 'cloth_id': _stem(cloth_name)}


