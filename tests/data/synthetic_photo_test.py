"""The photo look of the synthetic try-on data: exact ground truth kept, real variety; and the
flat look exactly as it was."""

import hashlib

import cv2
import numpy as np
import pytest

from everywear_tf import spec
from everywear_tf.data import images
from everywear_tf.data import lip
from everywear_tf.data import synthetic
from everywear_tf.data import synthetic_tryon
from everywear_tf.ops import sampling

PHOTO = synthetic.PHOTO
ARMS = (lip.LEFT_ARM, lip.RIGHT_ARM)
LEGS = (lip.LEFT_LEG, lip.RIGHT_LEG, lip.LEFT_SHOE, lip.RIGHT_SHOE)


def _digest(*arrays):
    h = hashlib.sha256()
    for a in arrays:
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()[:16]


# sha256 (first 16 hex digits) of flat items as drawn before the photo look existed
# (commit f1afe24), on this machine's NumPy/OpenCV.
FLAT_DIGESTS = {
    (spec.MEN_TSHIRTS, spec.BODY_FRAME): 'c304b750b54b6a25',
    (spec.MEN_TSHIRTS, spec.UPPER_FRAME): '48a181c5d1efe267',
    (spec.MEN_TSHIRTS, 'swap'): '0c9be492d404b200',
    (spec.MEN_LONG, spec.BODY_FRAME): '1f7c537c160a6ebd',
    (spec.MEN_LONG, spec.UPPER_FRAME): '50d0a0604f48e21d',
    (spec.MEN_LONG, 'swap'): '30b914dbac1453db',
    (spec.MEN_PANTS, spec.BODY_FRAME): 'b67df0922b9f2040',
    (spec.MEN_PANTS, spec.UPPER_FRAME): '5a696dbdbca88d32',
    (spec.MEN_PANTS, 'swap'): 'b58642c51340aa17',
}
FLAT_DRAWN_DIGEST = '51d228b246a51877'


@pytest.mark.parametrize('category', spec.CATEGORIES)
def test_the_flat_look_is_unchanged_bit_for_bit(category):
    for frame in spec.FRAMES:
        s = synthetic_tryon.framed_sample(3, 1, category, frame)
        assert s.shading is None
        assert _digest(s.person, s.parse, s.keypoints, s.cloth, s.cloth_mask,
                       s.grid) == FLAT_DIGESTS[category, frame]
    s = synthetic_tryon.framed_sample(3, 2, category, spec.BODY_FRAME, product_of=5)
    assert _digest(s.person, s.parse, s.grid) == FLAT_DIGESTS[category, 'swap']


def test_the_flat_drawing_functions_are_unchanged():
    rng = np.random.default_rng(11)
    p = synthetic.render_person(rng)
    t = synthetic.render_top(rng, (10, 200, 30), sleeve=1.0, pattern='dots')
    q = synthetic.render_pants(rng, (50, 50, 90), pattern='print')
    assert _digest(p.image, p.parse, p.keypoints, t.image, t.mask, q.image,
                   q.mask) == FLAT_DRAWN_DIGEST


def _fold_fraction(grid, region):
    """Share of ``region`` where the backward grid's Jacobian determinant is <= 0."""
    height, width = grid.shape[:2]
    x = (grid[..., 0] + 1) / 2 * (width - 1)
    y = (grid[..., 1] + 1) / 2 * (height - 1)
    x_y, x_x = np.gradient(x)
    y_y, y_x = np.gradient(y)
    return float(((x_x * y_y - x_y * y_x)[region] <= 0).mean())


@pytest.mark.parametrize('frame', spec.FRAMES)
@pytest.mark.parametrize('category', spec.CATEGORIES)
def test_photo_ground_truth_ties_together(category, frame):
    is_pants = category == spec.MEN_PANTS
    labels = lip.LOWER_CLOTH if is_pants else (lip.UPPER_CLOTHES,)
    # What may be drawn over the garment: the head and bare forearms over tops; the top, arms
    # and shoes over pants.
    occluders = ((lip.FACE, lip.HAIR) + ARMS
                 + ((lip.UPPER_CLOTHES, lip.LEFT_SHOE, lip.RIGHT_SHOE) if is_pants else ()))
    for i in range(2):
        sample = synthetic_tryon.framed_sample(6, i, category, frame, look=PHOTO)
        shading = sample.shading
        assert shading.shape == sample.parse.shape and shading.dtype == np.float32
        assert shading.min() >= 0.3 - 1e-6 and shading.max() <= 1.15 + 1e-6 and shading.std() > 0.01
        assert set(np.unique(sample.cloth_mask)) == {0, 255}  # the product mask: exact
        region = np.isin(sample.parse, labels)
        warped_mask = sampling.grid_sample(
                (sample.cloth_mask[None, ..., None] / 255.0).astype(np.float32),
                sample.grid[None], 'zeros').numpy()[0, ..., 0] >= 0.5
        # The garment label is where the warped product lands, but for what is drawn over it.
        assert warped_mask[region].mean() > 0.99
        # (a pixel of slack at the edge: the renderer and grid_sample round differently)
        near = cv2.dilate(region.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
        hidden = warped_mask & ~near
        assert (hidden & ~np.isin(sample.parse, occluders)).sum() < 0.002 * region.sum()
        # Garment pixels are the product's pixels at the warped positions, lit by the shading.
        warped = sampling.grid_sample(sample.cloth[None].astype(np.float32), sample.grid[None],
                                      'border').numpy()[0]
        unclipped = region & (sample.person.min(-1) > 0) & (sample.person.max(-1) < 255)
        lit = warped * shading[..., None]
        assert np.abs(lit[unclipped] - sample.person[unclipped]).mean() < 6.0
        # ... and not without it: the light is really there.
        assert np.abs(warped[unclipped] - sample.person[unclipped]).mean() > 2.0
        # The ground-truth warp hardly folds.
        assert _fold_fraction(sample.grid, region) < 0.05
        # Keypoints lie on the drawn limbs (those inside the frame).
        height, width = sample.parse.shape
        for index, allowed in (((3, 4, 6, 7), ARMS + (lip.UPPER_CLOTHES,)),
                               ((9, 10, 12, 13), LEGS + lip.LOWER_CLOTH),
                               ((0, 14, 15, 16, 17), (lip.FACE, lip.HAIR))):
            for k in index:
                x, y = np.round(sample.keypoints[k, :2]).astype(int)
                if 0 <= x < width and 0 <= y < height:
                    assert sample.parse[y, x] in allowed, (i, k, sample.parse[y, x])


def test_photo_look_varies():
    poses, hair, necklines, legs = set(), set(), set(), []
    for i in range(40):
        style, product = synthetic_tryon.item(2, i, spec.MEN_TSHIRTS, look=PHOTO)
        poses.add(style.figure.arms)
        hair.add(style.figure.hair)
        necklines.add(product.cut.neckline)
    assert poses == set(synthetic.ARM_POSES)
    assert hair == set(synthetic.HAIR_STYLES) and necklines == set(synthetic.NECKLINES)
    for i in range(10):
        legs.append(synthetic_tryon.item(2, i, spec.MEN_PANTS, look=PHOTO)[1].cut.legs)
    assert min(legs) < 0.3 and max(legs) > 0.7  # slim and wide
    backgrounds, sides, products = [], [], []
    for i in range(10):
        sample = synthetic_tryon.framed_sample(2, i, spec.MEN_PANTS, look=PHOTO)
        backgrounds.append(sample.person[sample.parse == lip.BACKGROUND].mean())
        body = sample.parse > 0
        half = sample.parse.shape[1] // 2
        sides.append(sample.shading[:, :half][body[:, :half]].mean()
                     - sample.shading[:, half:][body[:, half:]].mean())
        products.append(sample.cloth[sample.cloth_mask == 0].mean())
    assert min(backgrounds) < 110 and max(backgrounds) > 180  # dark and light backdrops
    assert min(sides) < -0.01 and max(sides) > 0.01  # lit from the left and from the right
    assert all(150 < p < 250 for p in products)  # off-white, not pure white


def test_long_sleeves_take_no_pose_that_would_fold_the_warp():
    rng = np.random.default_rng(0)
    arms = {synthetic_tryon.sample_style(rng, look=PHOTO, category=spec.MEN_LONG).figure.arms
            for _ in range(60)}
    assert arms and not arms & set(synthetic.LONG_SLEEVE_EXCLUDED)


def test_a_photo_split_is_written_as_drawn(tmp_path):
    synthetic_tryon.write_split(str(tmp_path), 'train', spec.MEN_PANTS, 1, seed=1, look=PHOTO)
    sample = synthetic_tryon.framed_sample(1, 0, spec.MEN_PANTS, look=PHOTO)
    np.testing.assert_array_equal(images.read_image(str(tmp_path / 'train' / 'image' /
                                                      '000000_0.png')), sample.person)
    grid = synthetic_tryon.read_grid(str(tmp_path / 'train' / 'warp-grid' / '000000_0.json'))
    np.testing.assert_allclose(grid, sample.grid, atol=1e-4)
    dataset = synthetic_tryon.RenderedDataset(spec.MEN_PANTS, 1, seed=1, look=PHOTO)
    np.testing.assert_array_equal(dataset.read(0)[spec.PERSON], sample.person)


def test_unknown_look_is_refused(tmp_path):
    with pytest.raises(ValueError, match='unknown look'):
        synthetic_tryon.item(0, 0, spec.MEN_TSHIRTS, look='painted')
    with pytest.raises(ValueError, match='unknown look'):
        synthetic_tryon.write_split(str(tmp_path), 'train', spec.MEN_PANTS, 1, 0, look='x')


def _bent_long_sleeves(count, bend=12.0):
    """(style, sample) of photo-look men_long items whose elbow bends by ≥ ``bend``°."""
    found = []
    for i in range(40):
        style, product = synthetic_tryon.item(0, i, spec.MEN_LONG, look=PHOTO)
        p = style.points
        angles = [np.degrees(np.arctan2(np.cross(p[e] - p[s], p[w] - p[e]),
                                        np.dot(p[e] - p[s], p[w] - p[e])))
                  for s, e, w in ((synthetic.R_SHOULDER, synthetic.R_ELBOW, synthetic.R_WRIST),
                                  (synthetic.L_SHOULDER, synthetic.L_ELBOW, synthetic.L_WRIST))]
        if max(abs(a) for a in angles) >= bend:
            found.append((style, product, synthetic_tryon.dress(style, product, spec.MEN_LONG)))
        if len(found) == count:
            return found
    raise AssertionError('too few bent elbows among 40 items')


def _covered(mask, points):
    ij = np.round(points).astype(int)
    inside = ((ij[:, 0] >= 0) & (ij[:, 0] < mask.shape[1]) & (ij[:, 1] >= 0)
              & (ij[:, 1] < mask.shape[0]))
    out = np.zeros(len(points), bool)
    out[inside] = mask[ij[inside, 1], ij[inside, 0]]
    return out


def test_a_bent_long_sleeve_follows_the_forearm_to_the_cuff_and_no_further():
    for style, product, sample in _bent_long_sleeves(4):
        mask = sample.parse == lip.UPPER_CLOTHES
        p = style.points
        for side, (sho, elb, wri) in (
                (-1, (synthetic.R_SHOULDER, synthetic.R_ELBOW, synthetic.R_WRIST)),
                (1, (synthetic.L_SHOULDER, synthetic.L_ELBOW, synthetic.L_WRIST))):
            end = synthetic_tryon._arm_point(p, sho, elb, wri, product.sleeve)
            forearm = end - p[elb]
            unit = forearm / np.linalg.norm(forearm)
            across = synthetic_tryon._outer(forearm, side)  # away from the torso
            t = np.linspace(0.05, 0.9, 18)[:, None]
            axis = p[elb] + t * forearm
            # The warped product covers the forearm's axis from the elbow to the cuff ...
            assert _covered(mask, axis).all()
            # ... and not the hand past the cuff, nor beside the forearm on its outer side
            # (2.5 cuff half-widths; the inner side may be the garment's body).
            assert not _covered(mask, end + np.array([6.0, 9.0, 12.0])[:, None] * unit).any()
            off = 2.5 * 6.5 * product.cut.cuff / 16
            assert not _covered(mask, axis[6:] + off * across).any()
        # The warp stays exact and unfolded where the garment lies.
        grid = sample.grid.astype(np.float64)
        dx = np.gradient(grid, axis=1)
        dy = np.gradient(grid, axis=0)
        det = dx[..., 0] * dy[..., 1] - dx[..., 1] * dy[..., 0]
        assert (det[mask] <= 0).mean() < 0.01
