"""VITON-HD's layout (zalando-hd-resized, as shadow2496/VITON-HD's datasets.py reads it)::

    root/{mode}_pairs.txt                      "person.jpg cloth.jpg" per line (VITONDataset
                                               __init__: opt.dataset_list)
    root/{mode}/image/<id>_00.jpg              1024×768 persons (__getitem__: 'image')
    root/{mode}/image-parse-v3/<id>_00.png     CIHP palette parses (the loader's 'image-parse';
                                               the release names it image-parse-v3)
    root/{mode}/openpose_json/<id>_00_keypoints.json   OpenPose BODY_25 ``people[0]
                                               .pose_keypoints_2d`` (the loader's
                                               'openpose-json'), pixels of the 1024×768 photo
    root/{mode}/cloth/<cloth>, cloth-mask/<cloth>      products and their masks, same file name
                                               (the loader thresholds the mask at ≥ 128)

Items are the signature inputs of the 256×192 frame (datasets module): person and cloth
area-reduced, the parse mapped CIHP → LIP (label_sets.CIHP_TO_LIP) and nearest-resized, the
mask nearest-resized then thresholded, keypoints BODY_25 → COCO-18 (keypoints.read_keypoints,
the most confident person) scaled to the frame. Directory spellings of both the release and the
loader are accepted.
"""

import os

from everywear_tf import spec
from everywear_tf.data import datasets
from everywear_tf.data import images
from everywear_tf.data import keypoints as keypoint_files
from everywear_tf.data import label_sets
from everywear_tf.data import parsing

PARSE_DIRS = ('image-parse-v3', 'image-parse')
POSE_DIRS = ('openpose_json', 'openpose-json')


class VitonHdDataset(datasets._Dataset):
    """VITON-HD's layout (module docstring); ``mode`` 'train' or 'test', ``pairs`` the pairs file
    under ``root`` (default ``{mode}_pairs.txt``)."""

    def __init__(self, root, mode='train', pairs=None):
        self.root = datasets._require_dir(os.fspath(root))
        self.split = datasets._require_dir(os.path.join(self.root, mode))
        self.image_dir = datasets.first_dir(self.split, ('image',))
        self.parse_dir = datasets.first_dir(self.split, PARSE_DIRS)
        self.pose_dir = datasets.first_dir(self.split, POSE_DIRS)
        self.cloth_dir = datasets.first_dir(self.split, ('cloth',))
        self.mask_dir = datasets.first_dir(self.split, ('cloth-mask',))
        self.pairs = datasets.read_pairs(os.path.join(self.root, pairs or f'{mode}_pairs.txt'))

    def read(self, i):
        """Item ``i`` (see the module docstring)."""
        person_name, cloth_name = self.pairs[i]
        stem = datasets._stem(person_name)
        path = os.path.join(self.image_dir, person_name)
        photo = images.read_image(path)
        person = datasets.reduce_image(photo, path)
        parse_path = os.path.join(self.parse_dir, stem + '.png')
        raw = parsing.read_parse(parse_path, max_label=255)
        parse = datasets.reduce_labels(label_sets.to_lip(raw, label_sets.CIHP, parse_path),
                                       parse_path, photo.shape)
        pose_path = os.path.join(self.pose_dir, stem + '_keypoints.json')
        points = keypoint_files.read_keypoints(pose_path, photo.shape[:2])
        cloth_path = os.path.join(self.cloth_dir, cloth_name)
        cloth_photo = images.read_image(cloth_path)
        mask_path = os.path.join(self.mask_dir, cloth_name)
        mask = images.read_mask(mask_path, expected_size=cloth_photo.shape[:2])
        return {spec.PERSON: person, spec.PARSE: parse,
                spec.KEYPOINTS: keypoint_files.to_signature(
                        datasets.scale_keypoints(points, photo.shape)),
                spec.CLOTH: datasets.reduce_image(cloth_photo, cloth_path),
                spec.CLOTH_MASK: datasets.binary_mask(parsing.nearest_resize(mask,
                                                                             spec.FRAME_SHAPE)),
                datasets.PERSON_ID: stem, datasets.CLOTH_ID: datasets._stem(cloth_name)}
