"""Dress Code's layout (aimagelab/dress-code, data/dataset.py and README.md)::

    root/<subset>/                  upper_body, lower_body, dresses
    root/<subset>/train_pairs.txt, test_pairs_paired.txt, test_pairs_unpaired.txt
                                    "<id>_0.jpg <id>_1.jpg" per line (Dataset.__init__)
    root/<subset>/images/<id>_0.jpg person, <id>_1.jpg garment, 1024×768 (README "Summary")
    root/<subset>/keypoints/<id>_2.json   {"keypoints": 18 × [x, y, score, id]} (README
                                    "Keypoints"; __getitem__ reshapes it to (-1, 4)), OpenPose
                                    COCO-18 order, in pixels of a 384×512 (W×H) image: the loader
                                    scales x by width/384 and y by height/512, and takes a point
                                    as present when x > 1 and y > 1
    root/<subset>/label_maps/<id>_4.png   one-channel SCHP-ATR ids (README "Human Label Map",
                                    data/labelmap.py), nearest-resized by the loader

Skeletons (_5.jpg) and dense poses are not read. The garment has no mask in the dataset: it is
computed from the white background (cloth_mask.compute_cloth_mask), as for VITON.

Subsets and this project's categories: ``lower_body`` trains men_pants, ``upper_body`` the tops
(men_tshirts, men_long); ``dresses`` has no category here and is refused (CategoryError).
"""

import json
import os

import numpy as np

from everywear_tf import errors
from everywear_tf import spec
from everywear_tf.data import cloth_mask as cloth_masks
from everywear_tf.data import datasets
from everywear_tf.data import images
from everywear_tf.data import keypoints as keypoint_files
from everywear_tf.data import label_sets
from everywear_tf.data import parsing

UPPER_BODY = 'upper_body'
LOWER_BODY = 'lower_body'
DRESSES = 'dresses'
SUBSETS = (UPPER_BODY, LOWER_BODY, DRESSES)
SUBSET_OF_CATEGORY = {spec.MEN_TSHIRTS: UPPER_BODY, spec.MEN_LONG: UPPER_BODY,
                      spec.MEN_PANTS: LOWER_BODY}
# The frame Dress Code's keypoints are given in (h, w): data/dataset.py scales by /384, /512.
KEYPOINT_FRAME = (512, 384)
MAX_JSON_BYTES = keypoint_files.MAX_JSON_BYTES


def subset_for(category):
    """The Dress Code subset that trains ``category`` (a spec category or a subset name);
    CategoryError for ``dresses`` or anything else."""
    if category == DRESSES:
        raise errors.CategoryError(
                "Dress Code's 'dresses' subset has no category here: this project tries on "
                f'{", ".join(spec.CATEGORIES)} (upper_body trains the tops, lower_body '
                'men_pants)')
    if category in SUBSET_OF_CATEGORY:
        return SUBSET_OF_CATEGORY[category]
    if category in (UPPER_BODY, LOWER_BODY):
        return category
    raise errors.CategoryError(f'{category!r} is neither a category ({", ".join(spec.CATEGORIES)}'
                               f') nor a Dress Code subset ({UPPER_BODY}, {LOWER_BODY})')


def read_keypoints(path):
    """[18,3] (x, y, confidence) of a Dress Code keypoint JSON, in its 384×512 frame's pixels;
    a point is present when x > 1 and y > 1 (the loader's rule), with confidence = its score, or
    1 if that is not positive. KeypointsError naming the file otherwise."""
    path = errors.require_file(path)
    size = os.path.getsize(path)
    if size > MAX_JSON_BYTES:
        raise errors.KeypointsError(path, f'is {size} bytes, above the limit of '
                                          f'{MAX_JSON_BYTES} bytes for a pose file')
    try:
        with open(path, 'rb') as f:
            document = json.loads(f.read().decode('utf-8'))
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise errors.KeypointsError(path, f'not valid JSON ({e})') from None
    if not isinstance(document, dict) or 'keypoints' not in document:
        raise errors.KeypointsError(path, 'no "keypoints" list: not a Dress Code keypoint file')
    rows = document['keypoints']
    if not isinstance(rows, list) or len(rows) != spec.NUM_KEYPOINTS:
        count = len(rows) if isinstance(rows, list) else type(rows).__name__
        raise errors.KeypointsError(path, f'"keypoints" must be {spec.NUM_KEYPOINTS} '
                                          f'[x, y, score, id] entries, got {count}')
    points = np.zeros((spec.NUM_KEYPOINTS, 3), np.float32)
    for k, row in enumerate(rows):
        if (not isinstance(row, list) or len(row) != 4 or not all(
                isinstance(v, (int, float)) and not isinstance(v, bool) and np.isfinite(v)
                for v in row)):
            raise errors.KeypointsError(path, f'keypoints[{k}] must be 4 finite numbers '
                                              f'[x, y, score, id], got {row!r}')
        x, y, score = float(row[0]), float(row[1]), float(row[2])
        if x > 1 and y > 1:
            points[k] = (x, y, score if score > 0 else 1.0)
    return points


class DressCodeDataset(datasets._Dataset):
    """One Dress Code subset (module docstring).

    Args:
      root: the dataset root (holding upper_body/, lower_body/, dresses/).
      category: a spec category (chooses the subset, ``subset_for``) or a subset name.
      pairs: the pairs file under the subset (default train_pairs.txt).
    """

    def __init__(self, root, category, pairs='train_pairs.txt'):
        self.root = datasets._require_dir(os.fspath(root))
        self.subset = subset_for(category)
        self.dir = datasets._require_dir(os.path.join(self.root, self.subset))
        for directory in ('images', 'keypoints', 'label_maps'):
            datasets._require_dir(os.path.join(self.dir, directory))
        self.pairs = datasets.read_pairs(os.path.join(self.dir, pairs))

    def read(self, i):
        """Item ``i`` (see the module docstring)."""
        person_name, cloth_name = self.pairs[i]
        stem = datasets._stem(person_name)
        item_id = stem[:-2] if stem.endswith('_0') else stem
        path = os.path.join(self.dir, 'images', person_name)
        photo = images.read_image(path)
        person = datasets.reduce_image(photo, path)
        parse_path = os.path.join(self.dir, 'label_maps', item_id + '_4.png')
        raw = parsing.read_parse(parse_path, max_label=255)
        parse = datasets.reduce_labels(label_sets.to_lip(raw, label_sets.ATR, parse_path),
                                       parse_path, photo.shape)
        points = read_keypoints(os.path.join(self.dir, 'keypoints', item_id + '_2.json'))
        cloth_path = os.path.join(self.dir, 'images', cloth_name)
        cloth = datasets.reduce_image(images.read_image(cloth_path), cloth_path)
        return {spec.PERSON: person, spec.PARSE: parse,
                spec.KEYPOINTS: keypoint_files.to_signature(
                        datasets.scale_keypoints(points, KEYPOINT_FRAME)),
                spec.CLOTH: cloth, spec.CLOTH_MASK: cloth_masks.compute_cloth_mask(cloth),
                datasets.PERSON_ID: stem, datasets.CLOTH_ID: datasets._stem(cloth_name)}
