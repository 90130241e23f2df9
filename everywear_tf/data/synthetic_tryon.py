"""A synthetic try-on dataset with ground truth, written in the CP-VTON layout.

Each person wears a product garment warped onto the body by a known smooth deformation: a thin
plate spline fitted between landmarks of the flat product (neckline, shoulders, sleeve ends, hem;
waist, crotch, knees, hems for pants) and the matching places on the body. The person photo, its
LIP parse (the garment label is exactly the warped product's mask), its COCO-18 keypoints, the
product, its mask and the warp itself therefore agree. The warp is stored as the backward
sampling grid (person pixel → product position in [-1, 1], align-corners), the quantity GMM
predicts.
"""

import dataclasses
import io
import json
import os

import cv2
import numpy as np

from everywear_tf import fileio
from everywear_tf import spec
from everywear_tf.data import lip
from everywear_tf.data import synthetic as draw

CATEGORY_GARMENTS = {spec.MEN_TSHIRTS: 'top', spec.MEN_LONG: 'top', spec.MEN_PANTS: 'pants'}
SLEEVES = {spec.MEN_TSHIRTS: (0.35, 0.5), spec.MEN_LONG: (0.9, 1.0)}
GARMENT_LABELS = {'top': lip.CPVTON_CLOTH, 'pants': lip.LOWER_CLOTH}

# CP-VTON layout, plus the ground-truth warp.
IMAGE, PARSE, CLOTH, CLOTH_MASK, POSE, WARP = ('image', 'image-parse', 'cloth', 'cloth-mask',
                                               'pose', 'warp-grid')
LAYOUT_DIRS = (IMAGE, PARSE, CLOTH, CLOTH_MASK, POSE, WARP)


@dataclasses.dataclass(frozen=True)
class Sample:
    """One person wearing one product, with everything that ties them together."""
    person: np.ndarray  # uint8 [H,W,3]
    parse: np.ndarray  # uint8 [H,W]
    keypoints: np.ndarray  # float32 [18,3]
    cloth: np.ndarray  # uint8 [H,W,3], the flat product on white
    cloth_mask: np.ndarray  # uint8 [H,W] {0,255}
    grid: np.ndarray  # float32 [H,W,2]: person pixel → product (x, y) in [-1, 1]


def _colour(rng):
    return tuple(int(c) for c in rng.integers(20, 230, 3))


def _tps_fit(source, target):
    """Thin-plate spline (kernel r² log r²) mapping source points [K,2] onto target points."""
    k = len(source)
    d2 = ((source[:, None] - source[None]) ** 2).sum(-1)
    kernel = np.where(d2 > 0, d2 * np.log(np.maximum(d2, 1e-300)), 0.0)
    affine = np.concatenate([np.ones((k, 1)), source], axis=1)
    system = np.zeros((k + 3, k + 3))
    system[:k, :k] = kernel + 1e-6 * np.eye(k)
    system[:k, k:] = affine
    system[k:, :k] = affine.T
    rhs = np.concatenate([target, np.zeros((3, 2))])
    coefficients = np.linalg.solve(system, rhs)

    def apply(points):
        d2 = ((points[:, None] - source[None]) ** 2).sum(-1)
        u = np.where(d2 > 0, d2 * np.log(np.maximum(d2, 1e-300)), 0.0)
        return (u @ coefficients[:k] + np.concatenate(
                [np.ones((len(points), 1)), points], axis=1) @ coefficients[k:])

    return apply


def _top_landmarks(sleeve, s, width):
    """Product landmarks of ``synthetic.render_top``'s geometry, person's right side first."""
    cx, top_y, bottom_y = width / 2, 40 * s, 215 * s
    half_body, half_neck = 42 * s, 14 * s
    reach = (34 + 70 * max(sleeve - 0.45, 0)) * s
    points = [(cx, top_y + 9 * s), (cx, bottom_y), (cx, (top_y + bottom_y) / 2)]
    for side in (-1, 1):
        shoulder = np.array((cx + side * half_body, top_y + 14 * s))
        points += [(cx + side * half_neck, top_y), tuple(shoulder),
                   tuple(shoulder + (side * reach, reach * 0.9)),
                   tuple(shoulder + (side * (reach - 16 * s), reach * 0.9 + 14 * s)),
                   tuple(shoulder + (0, 30 * s)),
                   (cx + side * (half_body - 4 * s), bottom_y)]
    return np.array(points, np.float64)


def _arm_point(points, sho, elb, wri, sleeve):
    if sleeve <= 0.5:
        return draw._along(points[sho], points[elb], sleeve * 2)
    return draw._along(points[elb], points[wri], (sleeve - 0.5) * 2)


def _top_body_points(points, sleeve, s):
    """Where each product landmark of a top lands on the body (same order)."""
    neck, hips = points[draw.NECK], (points[draw.R_HIP] + points[draw.L_HIP]) / 2
    hem_y = hips[1] + 8 * s
    out = [neck + (0, 2 * s), (hips[0], hem_y), (neck + (hips[0], hem_y)) / 2]
    for side, (sho, elb, wri, hp) in ((-1, (draw.R_SHOULDER, draw.R_ELBOW, draw.R_WRIST,
                                            draw.R_HIP)),
                                      (1, (draw.L_SHOULDER, draw.L_ELBOW, draw.L_WRIST,
                                           draw.L_HIP))):
        shoulder = points[sho] + (side * 4 * s, -1 * s)
        end = _arm_point(points, sho, elb, wri, sleeve)
        direction = end - points[sho]
        normal = np.array((-direction[1], direction[0])) / (np.linalg.norm(direction) + 1e-9)
        if normal[0] * side < 0:
            normal = -normal
        width = (8 if sleeve <= 0.5 else 6.5) * s
        hip = points[hp] + (side * 7 * s, 0)
        out += [neck + (side * 9 * s, -3 * s), shoulder, end + normal * width,
                end - normal * width, draw._along(shoulder, hip, 0.28) - (side * 3 * s, 0),
                (hip[0], hem_y)]
    return np.array(out, np.float64)


def _pants_landmarks(s, width):
    """Product landmarks of ``synthetic.render_pants``."""
    cx, top_y, bottom_y = width / 2, 20 * s, 240 * s
    crotch_y = top_y + 70 * s
    knee_y = (crotch_y + bottom_y) / 2
    points = [(cx, top_y), (cx, crotch_y)]
    for side in (-1, 1):
        inner_knee = cx + side * 6 * s * (knee_y - crotch_y) / (bottom_y - crotch_y)
        points += [(cx + side * 34 * s, top_y), (cx + side * 42 * s, bottom_y),
                   (cx + side * 6 * s, bottom_y), (cx + side * 38 * s, knee_y),
                   (inner_knee, knee_y), (cx + side * 36 * s, crotch_y)]
    return np.array(points, np.float64)


def _pants_body_points(points, s):
    hips = (points[draw.R_HIP] + points[draw.L_HIP]) / 2
    out = [hips + (0, -8 * s), hips + (0, 16 * s)]
    for side, (hp, kne, ank) in ((-1, (draw.R_HIP, draw.R_KNEE, draw.R_ANKLE)),
                                 (1, (draw.L_HIP, draw.L_KNEE, draw.L_ANKLE))):
        hem = draw._along(points[kne], points[ank], 0.85)
        knee_mid = draw._along(points[kne], hem, 0.1)
        out += [points[hp] + (side * 9 * s, -8 * s), hem + (side * 9 * s, 0),
                hem - (side * 8 * s, 0), knee_mid + (side * 11 * s, 0),
                knee_mid - (side * 10 * s, 0), points[hp] + (side * 10 * s, 16 * s)]
    return np.array(out, np.float64)


def _warp(product, product_mask, body_points, product_points, height, width):
    """Backward-warps the product onto the body; returns (rgb, bool mask, grid [-1,1])."""
    to_product = _tps_fit(body_points, product_points)
    yy, xx = np.mgrid[:height, :width].astype(np.float64)
    mapped = to_product(np.stack([xx.ravel(), yy.ravel()], axis=1)).reshape(height, width, 2)
    map_x, map_y = mapped[..., 0].astype(np.float32), mapped[..., 1].astype(np.float32)
    rgb = cv2.remap(product, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                    borderValue=(255, 255, 255))
    mask = cv2.remap(product_mask, map_x, map_y, cv2.INTER_LINEAR,
                     borderMode=cv2.BORDER_CONSTANT, borderValue=0) >= 128
    grid = np.stack([mapped[..., 0] / (width - 1) * 2 - 1,
                     mapped[..., 1] / (height - 1) * 2 - 1], axis=-1).astype(np.float32)
    return rgb, mask, grid


def render_sample(rng, category, height=spec.IMAGE_HEIGHT, width=spec.IMAGE_WIDTH,
                  product=None):
    """A person wearing a product of ``category``; ``product`` (a Garment) is drawn if None."""
    if category not in CATEGORY_GARMENTS:
        raise ValueError(f'unknown category {category!r}; expected one of {spec.CATEGORIES}')
    s = width / 192.0
    kind = CATEGORY_GARMENTS[category]
    points = draw.sample_skeleton(rng, height, width)
    pattern = draw.PATTERNS[int(rng.integers(len(draw.PATTERNS)))]
    if kind == 'top':
        sleeve = float(rng.uniform(*SLEEVES[category]))
        if product is None:
            product = draw.render_top(rng, _colour(rng), sleeve=sleeve, pattern=pattern,
                                      height=height, width=width)
        rgb, mask, grid = _warp(product.image, product.mask, _top_body_points(points, sleeve, s),
                                _top_landmarks(sleeve, s, width), height, width)
        parse = draw.draw_parse(points, top=True, sleeve=sleeve, height=height, width=width,
                                top_mask=mask)
        image = draw.colour_person(parse, rng, _colour(rng), _colour(rng))
        garment_region = parse == lip.UPPER_CLOTHES
    else:
        sleeve = float(rng.uniform(0.35, 1.0))
        if product is None:
            product = draw.render_pants(rng, _colour(rng), pattern=pattern, height=height,
                                        width=width)
        rgb, mask, grid = _warp(product.image, product.mask, _pants_body_points(points, s),
                                _pants_landmarks(s, width), height, width)
        parse = draw.draw_parse(points, top=True, sleeve=sleeve, height=height, width=width,
                                pants_mask=mask)
        top_pattern = draw.PATTERNS[int(rng.integers(len(draw.PATTERNS)))]
        image = draw.colour_person(parse, rng, _colour(rng), _colour(rng), top_pattern)
        garment_region = parse == lip.PANTS
    image[garment_region] = rgb[garment_region]
    keypoints = np.concatenate([points, np.ones((spec.NUM_KEYPOINTS, 1))], axis=1)
    return Sample(person=image, parse=parse, keypoints=keypoints.astype(np.float32),
                  cloth=product.image, cloth_mask=product.mask, grid=grid)


def _openpose_json(keypoints):
    flat = [round(float(v), 3) for v in np.asarray(keypoints).reshape(-1)]
    return json.dumps({'version': 1.3, 'people': [{'pose_keypoints_2d': flat}]})


def write_split(root, mode, category, count, seed, log=None, start=0):
    """Writes ``count`` samples of one split in the CP-VTON layout under ``root/mode``.

    Pairs: ``{mode}_pairs.txt`` (person with its own product) and, for test,
    ``test_pairs_unpaired.txt`` (person with another person's product, no ground truth).
    Names: person ``NNNNNN_0.png``, product ``NNNNNN_1.png``. Every file is written atomically,
    and a sample whose files all exist is skipped, so an interrupted run resumes.
    """
    from everywear_tf.data import images, parsing  # TMP: module-level once the readers land
    log = log or (lambda message: None)
    split = os.path.join(root, mode)
    for directory in LAYOUT_DIRS:
        os.makedirs(os.path.join(split, directory), exist_ok=True)
    names = []
    for i in range(start, start + count):
        person_name, cloth_name = f'{i:06d}_0.png', f'{i:06d}_1.png'
        names.append((person_name, cloth_name))
        paths = (os.path.join(split, IMAGE, person_name),
                 os.path.join(split, PARSE, person_name),
                 os.path.join(split, POSE, f'{i:06d}_0_keypoints.json'),
                 os.path.join(split, CLOTH, cloth_name),
                 os.path.join(split, CLOTH_MASK, cloth_name),
                 os.path.join(split, WARP, f'{i:06d}_0.npy'))
        if all(os.path.exists(path) for path in paths):
            continue
        # One generator per sample: any sample can be regenerated alone, identically.
        sample = render_sample(np.random.default_rng([seed, i]), category)
        image_path, parse_path, pose_path, cloth_path, mask_path, warp_path = paths
        images.write_png(image_path, sample.person)
        parsing.write_parse_png(parse_path, sample.parse)
        fileio.atomic_write_bytes(pose_path, _openpose_json(sample.keypoints).encode())
        images.write_png(cloth_path, sample.cloth)
        images.write_png(mask_path, sample.cloth_mask)
        fileio.atomic_write_bytes(warp_path, _npy(sample.grid))
        if (i - start + 1) % 50 == 0:
            log(f'{mode}: {i - start + 1}/{count}')
    pairs = ''.join(f'{p} {c}\n' for p, c in names)
    fileio.atomic_write_bytes(os.path.join(split, f'{mode}_pairs.txt'), pairs.encode())
    fileio.atomic_write_bytes(os.path.join(root, f'{mode}_pairs.txt'), pairs.encode())
    if mode == 'test' and len(names) > 1:
        rotated = names[1:] + names[:1]
        unpaired = ''.join(f'{p} {c}\n' for (p, _), (_, c) in zip(names, rotated))
        fileio.atomic_write_bytes(os.path.join(root, 'test_pairs_unpaired.txt'),
                                  unpaired.encode())
    return names


def _npy(array):
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def write_dataset(root, category, train=2000, test=200, seed=0, log=None):
    """The train and test splits of one category under ``root`` (e.g. synthetic/men_tshirts)."""
    write_split(root, 'train', category, train, seed, log)
    write_split(root, 'test', category, test, seed, log, start=train)
    return root


def read_grid(path):
    """A ground-truth warp written by ``write_split`` (plain .npy; pickles refused)."""
    return np.load(path, allow_pickle=False)


def signature_item(sample):
    """A Sample as the signature inputs of DESIGN.md §4 (keypoints: negative = missing)."""
    keypoints = np.where(sample.keypoints[:, 2:] > 0, sample.keypoints[:, :2],
                         spec.MISSING_KEYPOINT).astype(np.float32)
    return {spec.PERSON: sample.person, spec.PARSE: sample.parse, spec.KEYPOINTS: keypoints,
            spec.CLOTH: sample.cloth, spec.CLOTH_MASK: sample.cloth_mask}


class RenderedDataset:
    """Samples drawn on demand (item i from seed (seed, i)), with the dataset readers' interface.

    For tests and quick experiments; real training reads a written dataset.
    """

    def __init__(self, category, size, seed=0):
        self.category, self.size, self.seed = category, size, seed

    def __len__(self):
        return self.size

    def sample(self, i):
        return render_sample(np.random.default_rng([self.seed, i]), self.category)

    def read(self, i):
        return {**signature_item(self.sample(i)), 'person_id': f'{i:06d}_0',
                'cloth_id': f'{i:06d}_1'}
