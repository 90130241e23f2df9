"""The synthetic try-on data agrees with itself and is reproducible."""

import hashlib
import os

import numpy as np
import pytest

from everywear_tf import spec
from everywear_tf.data import frames
from everywear_tf.data import lip
from everywear_tf.data import synthetic_tryon
from everywear_tf.ops import sampling


@pytest.mark.parametrize('category', spec.CATEGORIES)
def test_labels_keypoints_masks_and_warp_agree(category):
    for seed in range(3):
        sample = synthetic_tryon.render_sample(np.random.default_rng([7, seed]), category)
        labels = lip.LOWER_CLOTH if category == spec.MEN_PANTS else (lip.UPPER_CLOTHES,)
        region = np.isin(sample.parse, labels)
        # The garment label is exactly where the product, warped by the stored grid, lands.
        warped_mask = sampling.grid_sample(
                (sample.cloth_mask[None, ..., None] / 255.0).astype(np.float32),
                sample.grid[None], 'zeros').numpy()[0, ..., 0] >= 0.5
        # Parts drawn over the garment: the head over tops; the top, arms and shoes over pants.
        occluders = (lip.FACE, lip.HAIR) + ((lip.UPPER_CLOTHES, lip.LEFT_ARM, lip.RIGHT_ARM,
                                             lip.LEFT_SHOE, lip.RIGHT_SHOE)
                                            if category == spec.MEN_PANTS else ())
        visible = region | ~np.isin(sample.parse, occluders)
        assert (warped_mask[visible] == region[visible]).mean() > 0.995
        # Garment pixels are the product's pixels at the warped positions.
        warped = sampling.grid_sample(sample.cloth[None].astype(np.float32), sample.grid[None],
                                      'border').numpy()[0]
        assert np.abs(warped[region] - sample.person[region]).mean() < 3.0
        # Keypoints fall on the body.
        for x, y, _ in sample.keypoints:
            assert sample.parse[int(round(y)), int(round(x))] != lip.BACKGROUND


@pytest.mark.parametrize('category', spec.UPPER_CATEGORIES)
def test_upper_frames_are_the_pipelines_crop_and_still_agree(category):
    assert synthetic_tryon.pipeline_frame(category) == spec.UPPER_FRAME
    assert synthetic_tryon.pipeline_frame(spec.MEN_PANTS) == spec.BODY_FRAME
    for i in range(2):
        sample = synthetic_tryon.framed_sample(4, i, category, spec.UPPER_FRAME)
        drawn = synthetic_tryon.dress(*synthetic_tryon.item(4, i, category, 512, 384), category)
        frame = frames.upper_frame(drawn.person, drawn.parse, drawn.keypoints)
        np.testing.assert_array_equal(sample.person, frame.image)
        np.testing.assert_array_equal(sample.parse, frame.parse)
        assert sample.cloth.shape == spec.FRAME_SHAPE + (3,)
        assert set(np.unique(sample.cloth_mask)) == {0, 255}
        region = sample.parse == lip.UPPER_CLOTHES
        warped_mask = sampling.grid_sample(
                (sample.cloth_mask[None, ..., None] / 255.0).astype(np.float32),
                sample.grid[None], 'zeros').numpy()[0, ..., 0] >= 0.5
        visible = region | ~np.isin(sample.parse, (lip.FACE, lip.HAIR))
        assert (warped_mask[visible] == region[visible]).mean() > 0.99
        warped = sampling.grid_sample(sample.cloth[None].astype(np.float32), sample.grid[None],
                                      'border').numpy()[0]
        assert np.abs(warped[region] - sample.person[region]).mean() < 4.0
        for x, y, _ in sample.keypoints[[0, 1, 2, 5, 8, 11]]:  # nose, neck, shoulders, hips
            assert 0 <= x < spec.IMAGE_WIDTH and 0 <= y < spec.IMAGE_HEIGHT


def test_same_seed_same_bytes(tmp_path):
    def digest(root):
        synthetic_tryon.write_split(str(root), 'test', spec.MEN_PANTS, 2, seed=5)
        h = hashlib.sha256()
        for directory, _, files in sorted(os.walk(root)):
            for name in sorted(files):
                with open(os.path.join(directory, name), 'rb') as f:
                    h.update(name.encode() + f.read())
        return h.hexdigest()

    assert digest(tmp_path / 'a') == digest(tmp_path / 'b')


def test_unpaired_ground_truth_is_the_same_person_in_the_other_product():
    dataset = synthetic_tryon.RenderedDataset(spec.MEN_LONG, size=3, seed=1, unpaired=True)
    item = dataset.read(0)
    other = dataset.read(1)
    np.testing.assert_array_equal(item[spec.CLOTH], synthetic_tryon.item(1, 1, spec.MEN_LONG)[1]
                                  .garment.image)
    target = item['target_person']
    head = np.isin(item[spec.PARSE], (lip.FACE, lip.HAIR))
    np.testing.assert_array_equal(target[head], item[spec.PERSON][head])  # same person
    assert not np.array_equal(target, item[spec.PERSON])  # other garment
    assert not np.array_equal(other[spec.PERSON], item[spec.PERSON])


def test_a_written_split_resumes(tmp_path):
    names = synthetic_tryon.write_split(str(tmp_path), 'train', spec.MEN_TSHIRTS, 2, seed=3)
    image = tmp_path / 'train' / 'image' / names[0][0]
    first = image.read_bytes()
    os.remove(tmp_path / 'train' / 'cloth' / names[1][1])
    synthetic_tryon.write_split(str(tmp_path), 'train', spec.MEN_TSHIRTS, 2, seed=3)
    assert image.read_bytes() == first
    assert (tmp_path / 'train' / 'cloth' / names[1][1]).exists()
