"""Try-on datasets in the originals' layouts, yielding the signature inputs of ARCHITECTURE.md §3.

``CpVtonDataset``: CP-VTON's layout (cp_dataset.py of sergeywong/cp-vton; also VITON-resize as
CP-VTON redistributed it, CP-VTON+'s data with ``parse_dir='image-parse-new'``, and this
project's synthetic sets)::

    root/{mode}_pairs.txt              "person.jpg cloth.jpg" per line (cp_dataset.py:35-39)
    root/{mode}/image/<person>         person photos (:66)
    root/{mode}/image-parse/<stem>.png LIP label maps (:70-71)
    root/{mode}/pose/<stem>_keypoints.json   OpenPose JSON (:95-98)
    root/{mode}/cloth/<cloth>          product photos (:53)
    root/{mode}/cloth-mask/<cloth>     their masks, same file name (:54)

``VitonDataset``: VITON's own layout (``data/`` of xthan/VITON)::

    root/<list file>                   "NNNNNN_0.jpg NNNNNN_1.jpg" per line
                                       (viton_test_pairs.txt, viton_train_images.txt)
    root/women_top/                    persons (_0) and products (_1)
    root/segment/<id>.mat              transposed 641² parses
    root/pose/<id>.mat                 test-set poses, or
    root/pose.pkl                      train-set poses, {id: pose} (build_viton.py:354)

(model_zalando_mask_content_test.py:39-47, 60-66: images, segment and pose directories.)

VITON ships no product masks, so they are computed (cloth_mask.compute_cloth_mask).

Items are dicts with the spec's input keys (uint8 person / cloth [256,192,3], uint8 parse and
cloth_mask [256,192], float32 keypoints [18,2], missing = -1) plus 'person_id' and 'cloth_id'
(file stems). Every problem is a typed error naming the file.
"""

import os

import cv2
import numpy as np
import tensorflow as tf

from everywear_tf import errors
from everywear_tf import spec
from everywear_tf.data import cloth_mask as cloth_masks
from everywear_tf.data import images
from everywear_tf.data import keypoints as keypoint_files
from everywear_tf.data import lip
from everywear_tf.data import parsing
from everywear_tf.data import safe_pickle

TARGET_PERSON = 'target_person'
TARGET_PARSE = 'target_parse'
# The photo front end's estimates of a split's persons (train/estimate_synthetic.py writes them).
ESTIMATED_POSE = 'pose-estimated'
ESTIMATED_PARSE = 'image-parse-estimated'
PERSON_ID = 'person_id'
CLOTH_ID = 'cloth_id'


def read_pairs(path):
    """[(person, cloth)] file names of a pairs file; a malformed line is a DatasetError with its
    number. Blank lines are skipped."""
    path = errors.require_file(path)
    pairs = []
    try:
        with open(path, encoding='utf-8') as f:
            lines = f.read().splitlines()
    except UnicodeDecodeError as e:
        raise errors.DatasetError(path, f'not UTF-8 text ({e.reason} at byte {e.start})') \
            from None
    for number, line in enumerate(lines, start=1):
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
        raise errors.DatasetError(path, 'missing directory (see the dataset layouts in '
                                        'everywear_tf/data/datasets.py)')
    return path


class _Dataset:
    """Shared parts: len() and the tf.data view."""

    pairs = ()

    def __len__(self):
        return len(self.pairs)

    def read(self, i):
        raise NotImplementedError

    def _tf_specs(self):
        """{key: (tf dtype, item shape)} of what ``read`` returns."""
        specs = {key: (tf.as_dtype(spec.INPUT_SPECS[key][0]), spec.INPUT_SPECS[key][1][1:])
                 for key in spec.MODULE_INPUTS[spec.GMM]}
        specs[PERSON_ID] = (tf.string, ())
        specs[CLOTH_ID] = (tf.string, ())
        return specs

    def as_tf_dataset(self, shuffle=False, seed=0):
        """A tf.data.Dataset of the item dicts, in order or shuffled (``seed`` fixes the order of
        each epoch). Items are read with ``read`` through tf.numpy_function; shapes are set."""
        specs = self._tf_specs()
        keys = tuple(specs)

        def load(index):
            item = self.read(int(index))
            return tuple(np.asarray(item[key]) if specs[key][0] != tf.string
                         else np.bytes_(item[key].encode('utf-8')) for key in keys)

        def mapped(index):
            values = tf.numpy_function(load, [index], [specs[key][0] for key in keys])
            out = {}
            for key, value in zip(keys, values):
                value.set_shape(specs[key][1])
                out[key] = value
            return out

        indices = tf.data.Dataset.range(len(self))
        if shuffle:
            indices = indices.shuffle(len(self), seed=seed, reshuffle_each_iteration=True)
        return indices.map(mapped, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)


class CpVtonDataset(_Dataset):
    """CP-VTON's layout (module docstring).

    Args:
      root: the data root (holding ``{mode}_pairs.txt`` and ``{mode}/``).
      mode: the split directory, 'train' or 'test' (CP-VTON's --datamode).
      pairs: the pairs file name under ``root``; default ``{mode}_pairs.txt``.
      parse_dir: 'image-parse' (CP-VTON) or 'image-parse-new' (CP-VTON+, with ``max_label=20``).
      max_label: the largest label accepted in the parses.
      targets: (image dir, parse dir) of ground truths for the listed pairs, read into
        TARGET_PERSON / TARGET_PARSE (the synthetic test split's 'image-swap', 'image-parse-swap').
      pose_dir: the OpenPose JSON directory ('pose' in CP-VTON's layout).
      estimated_inputs: the pose and parse are the photo front end's estimates
        (ESTIMATED_POSE, ESTIMATED_PARSE), and the split's own parse is spec.TRUE_PARSE, for the
        targets (training on what the pipeline will be given).
    """

    def __init__(self, root, mode='train', pairs=None, parse_dir='image-parse',
                 max_label=lip.MAX_LABEL, targets=None, estimated_inputs=False, pose_dir='pose'):
        self.root = _require_dir(os.fspath(root))
        self.pose_dir = pose_dir
        self.split = _require_dir(os.path.join(self.root, mode))
        self.estimated_inputs = bool(estimated_inputs)
        extra = (ESTIMATED_POSE, ESTIMATED_PARSE) if self.estimated_inputs else ()
        for directory in ('image', parse_dir, pose_dir, 'cloth', 'cloth-mask') + extra:
            _require_dir(os.path.join(self.split, directory))
        self.parse_dir, self.max_label = parse_dir, max_label
        self.targets = tuple(targets) if targets is not None else None
        if self.targets is not None:
            if len(self.targets) != 2:
                raise ValueError(f'targets must be (image dir, parse dir), got {targets!r}')
            for directory in self.targets:
                _require_dir(os.path.join(self.split, directory))
        self.pairs = read_pairs(os.path.join(self.root, pairs or f'{mode}_pairs.txt'))

    def _tf_specs(self):
        specs = super()._tf_specs()
        if self.targets is not None:
            specs[TARGET_PERSON] = (tf.uint8, spec.FRAME_SHAPE + (3,))
            specs[TARGET_PARSE] = (tf.uint8, spec.FRAME_SHAPE)
        if self.estimated_inputs:
            specs[spec.TRUE_PARSE] = (tf.uint8, spec.FRAME_SHAPE)
        return specs

    def _path(self, directory, name):
        return os.path.join(self.split, directory, name)

    def _cloth_mask(self, cloth_name):
        path = self._path('cloth-mask', cloth_name)  # CP-VTON: the cloth's own file name
        if not os.path.isfile(path):
            png = self._path('cloth-mask', _stem(cloth_name) + '.png')  # re-encoded losslessly
            if os.path.isfile(png):
                path = png
        return images.read_mask(path, expected_size=spec.FRAME_SHAPE)

    def _parse(self, directory, stem):
        return parsing.read_parse(self._path(directory, stem + '.png'), spec.FRAME_SHAPE,
                                  self.max_label)

    def read(self, i):
        """Item ``i`` (see the module docstring)."""
        person_name, cloth_name = self.pairs[i]
        stem = _stem(person_name)
        pose_dir, parse_dir = ((ESTIMATED_POSE, ESTIMATED_PARSE) if self.estimated_inputs
                               else (self.pose_dir, self.parse_dir))
        points = keypoint_files.read_keypoints(self._path(pose_dir, stem + '_keypoints.json'))
        item = {spec.PERSON: images.read_image(self._path('image', person_name),
                                               spec.FRAME_SHAPE),
                spec.PARSE: self._parse(parse_dir, stem),
                spec.KEYPOINTS: keypoint_files.to_signature(points),
                spec.CLOTH: images.read_image(self._path('cloth', cloth_name), spec.FRAME_SHAPE),
                spec.CLOTH_MASK: self._cloth_mask(cloth_name),
                PERSON_ID: stem, CLOTH_ID: _stem(cloth_name)}
        if self.estimated_inputs:
            item[spec.TRUE_PARSE] = self._parse(self.parse_dir, stem)
        if self.targets is not None:
            image_dir, parse_dir = self.targets
            item[TARGET_PERSON] = images.read_image(self._path(image_dir, person_name),
                                                    spec.FRAME_SHAPE)
            item[TARGET_PARSE] = self._parse(parse_dir, stem)
        return item


class Concatenated:
    """Several datasets read as one, in order (len() and read(i), like each part): to train on
    two looks of the synthetic set at once, say. Items are the parts' own, unchanged; every part
    must give the same keys (the loop stacks them)."""

    def __init__(self, parts):
        self.parts = tuple(parts)
        if not self.parts:
            raise ValueError('Concatenated needs at least one dataset')
        self.ends = np.cumsum([len(part) for part in self.parts])

    def __len__(self):
        return int(self.ends[-1])

    def read(self, i):
        """Item ``i``: item ``i`` minus the earlier parts' lengths of the part it falls in."""
        i = int(i)
        if not 0 <= i < len(self):
            raise IndexError(f'item {i} of a dataset of {len(self)}')
        part = int(np.searchsorted(self.ends, i, side='right'))
        start = int(self.ends[part - 1]) if part else 0
        return self.parts[part].read(i - start)


def first_dir(split, names):
    """The first of ``names`` that is a directory under ``split`` (datasets were published with
    different spellings); a DatasetError listing them all if none is."""
    for name in names:
        if os.path.isdir(os.path.join(split, name)):
            return os.path.join(split, name)
    raise errors.DatasetError(os.path.join(split, names[0]),
                              'missing directory (also looked for ' + ', '.join(names[1:]) + ')'
                              if len(names) > 1 else 'missing directory')


def check_aspect(path, shape, frame=spec.FRAME_SHAPE, error=errors.ImageError):
    """Raises ``error`` naming ``path`` unless an [H,W,...] of ``shape`` has the frame's aspect."""
    height, width = shape[:2]
    if height * frame[1] != width * frame[0]:
        raise error(path, f'is {height}x{width} (HxW): not the {frame[0]}:{frame[1]} aspect '
                          f'of the {frame[0]}x{frame[1]} frame')


def reduce_image(image, path, frame=spec.FRAME_SHAPE):
    """An image of the frame's aspect area-reduced to the frame (OpenCV's INTER_AREA: for
    1024×768 → 256×192 the mean of each 4×4 block, rounded half to even)."""
    check_aspect(path, image.shape, frame)
    if image.shape[:2] == tuple(frame):
        return image
    return cv2.resize(image, (frame[1], frame[0]), interpolation=cv2.INTER_AREA)


def reduce_labels(labels, path, photo_shape, frame=spec.FRAME_SHAPE):
    """A label map of the photo's aspect nearest-resized to the frame (Pillow's NEAREST rule,
    parsing.nearest_resize); ParseMapError naming ``path`` for another aspect."""
    if labels.shape[0] * photo_shape[1] != labels.shape[1] * photo_shape[0]:
        raise errors.ParseMapError(path, f'is {labels.shape[0]}x{labels.shape[1]} (HxW) but '
                                         f'the photo is {photo_shape[0]}x{photo_shape[1]}: a '
                                         "different aspect ratio (another photo's parse?)")
    return np.ascontiguousarray(parsing.nearest_resize(labels, frame))


def scale_keypoints(points, source_shape, frame=spec.FRAME_SHAPE):
    """[18,3] keypoints in pixels of a ``source_shape`` (h, w) image → pixels of the frame, pixel
    centres kept (x + 0.5)·s − 0.5 as frames.py maps a photo; missing points stay missing."""
    points = np.asarray(points, np.float64).copy()
    present = points[:, 2] > 0
    for axis, (size, out) in enumerate(((source_shape[1], frame[1]),
                                        (source_shape[0], frame[0]))):
        scale = out / size
        points[present, axis] = (points[present, axis] + 0.5) * scale - 0.5
    return points.astype(np.float32)


def binary_mask(mask):
    """0/255 of a grey mask (≥ 128 is garment, as VITON-HD's loader thresholds it)."""
    return np.where(mask >= 128, 255, 0).astype(np.uint8)


class VitonDataset(_Dataset):
    """VITON's layout (module docstring). Poses use row 0 of ``subset`` as VITON does
    (utils.py:33); product masks are computed from the white background."""

    def __init__(self, root, list_file='viton_test_pairs.txt', images_dir='women_top'):
        self.root = _require_dir(os.fspath(root))
        self.images = _require_dir(os.path.join(self.root, images_dir))
        self.segments = _require_dir(os.path.join(self.root, 'segment'))
        self.pose_dir = os.path.join(self.root, 'pose')
        self.pose_pickle = os.path.join(self.root, 'pose.pkl')
        if not os.path.isdir(self.pose_dir) and not os.path.isfile(self.pose_pickle):
            raise errors.DatasetError(self.pose_dir, 'missing: VITON keeps poses in pose/<id>.mat '
                                                     '(test) or pose.pkl (train)')
        self.pairs = read_pairs(os.path.join(self.root, list_file))
        self._pose_table = None

    def _keypoints(self, image_id):
        mat = os.path.join(self.pose_dir, image_id + '.mat')
        if os.path.isfile(mat):
            return keypoint_files.read_viton_pose_mat(mat, person=keypoint_files.FIRST)
        if not os.path.isfile(self.pose_pickle):
            raise errors.InputNotFoundError(mat, 'no such file (and no pose.pkl)')
        if self._pose_table is None:  # ~14k poses: unpickled once, not per item
            table = safe_pickle.load(self.pose_pickle, encoding='latin1')
            if not isinstance(table, dict):
                raise errors.KeypointsError(self.pose_pickle, 'must hold a dict {image id: '
                                                              'pose}')
            self._pose_table = table
        if image_id not in self._pose_table:
            raise errors.KeypointsError(self.pose_pickle, f'no pose for {image_id!r} (and no '
                                                          f'{mat})')
        return keypoint_files.from_viton_pose(self._pose_table[image_id],
                                              f'{self.pose_pickle}[{image_id!r}]',
                                              keypoint_files.FIRST)

    def read(self, i):
        """Item ``i`` (see the module docstring)."""
        person_name, cloth_name = self.pairs[i]
        image_id = _stem(person_name)
        person = images.read_image(os.path.join(self.images, person_name), spec.FRAME_SHAPE)
        parse = parsing.read_parse(os.path.join(self.segments, image_id + '.mat'),
                                   spec.FRAME_SHAPE)
        cloth = images.read_image(os.path.join(self.images, cloth_name), spec.FRAME_SHAPE)
        return {spec.PERSON: person, spec.PARSE: parse,
                spec.KEYPOINTS: keypoint_files.to_signature(self._keypoints(image_id)),
                spec.CLOTH: cloth, spec.CLOTH_MASK: cloth_masks.compute_cloth_mask(cloth),
                PERSON_ID: image_id, CLOTH_ID: _stem(cloth_name)}
