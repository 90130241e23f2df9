"""Evaluation on known pairs, and a lite try-on run end to end through it."""

import itertools
import json
import os

import numpy as np
import pytest

from everywear_tf import evaluate
from everywear_tf import spec
from everywear_tf.data import images
from everywear_tf.data import synthetic_tryon
from everywear_tf.inference import chain as chain_lib
from everywear_tf.train import loop
from everywear_tf.train import trainers


def test_identical_images_score_perfectly():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (3, 64, 48, 3), dtype=np.uint8)
    metrics = evaluate.image_metrics(images, images)
    np.testing.assert_allclose(metrics['ssim'], 1.0, atol=1e-6)
    assert np.all(np.isinf(metrics['psnr']))
    np.testing.assert_array_equal(metrics['l1'], 0.0)
    masks = rng.uniform(size=(3, 64, 48)) > 0.5
    np.testing.assert_array_equal(evaluate.iou(masks, masks), 1.0)


def test_known_differences():
    a = np.zeros((1, 32, 32, 3), np.uint8)
    b = np.full((1, 32, 32, 3), 51, np.uint8)
    metrics = evaluate.image_metrics(a, b)
    assert metrics['l1'][0] == pytest.approx(0.2)
    assert metrics['psnr'][0] == pytest.approx(20 * np.log10(255 / 51), rel=1e-4)
    assert metrics['ssim'][0] < 0.1
    left = np.zeros((1, 4, 4), bool)
    left[:, :, :2] = True
    top = np.zeros((1, 4, 4), bool)
    top[:, :2] = True
    assert evaluate.iou(left, top)[0] == pytest.approx(4 / 12)
    assert evaluate.iou(np.zeros((1, 2, 2), bool), np.zeros((1, 2, 2), bool))[0] == 1.0


@pytest.mark.slow
def test_lite_tryon_evaluates_with_baselines(tmp_path):
    dataset = synthetic_tryon.RenderedDataset(spec.MEN_TSHIRTS, size=3, seed=2, unpaired=True)
    chain = chain_lib.Chain.from_models(spec.MEN_TSHIRTS, trainers.build(spec.GMM),
                                        trainers.build(spec.EDM), trainers.build(spec.RM))
    summary = evaluate.evaluate(chain, dataset, output_dir=str(tmp_path), batch_size=2)
    assert summary['count'] == 3
    assert 0 < summary['person_unchanged']['ssim'] < 1  # swapped garment: a real target
    assert 0 <= summary['model']['warp_iou'] <= 1
    saved = json.loads((tmp_path / 'metrics.json').read_text())
    assert len(saved['items']) == 3 and saved['summary']['count'] == 3
    assert len(os.listdir(tmp_path / 'grids')) == 3
    # each grid: person | cloth | warped | coarse | α | try-on | relit | ground truth
    grid = images.read_image(str(tmp_path / 'grids' / sorted(os.listdir(tmp_path / 'grids'))[0]))
    assert grid.shape[:2] == (spec.IMAGE_HEIGHT, 8 * spec.IMAGE_WIDTH)
    assert all(0 < item['relit_ssim'] <= 1 for item in saved['items'])
    text = evaluate.table(summary)
    assert 'person_unchanged' in text and 'no_warp' in text and 'relit' in text
    # Relit differs from the plain composite only inside the replaced region, and is a score.
    assert 0 < summary['relit']['ssim'] <= 1 and summary['relit']['psnr'] > 0


def _identity_grid(batch, height, width):
    x, y = np.meshgrid(np.linspace(-1, 1, width), np.linspace(-1, 1, height))
    return np.broadcast_to(np.stack([x, y], -1), (batch, height, width, 2)).copy()


def _determinant_reference(grid):
    """Central differences inside, one-sided at the edges, pixel by pixel in float64."""
    grid = np.asarray(grid, np.float64)
    batch, height, width, _ = grid.shape

    def derivative(b, i, j, channel, axis):
        size = (height, width)[axis]
        index = (i, j)[axis]
        lo, hi = max(index - 1, 0), min(index + 1, size - 1)
        at = (lambda k: grid[b, k, j, channel]) if axis == 0 else (lambda k: grid[b, i, k, channel])
        return (at(hi) - at(lo)) / (hi - lo)

    out = np.zeros((batch, height, width))
    for b in range(batch):
        for i in range(height):
            for j in range(width):
                out[b, i, j] = (derivative(b, i, j, 0, 1) * derivative(b, i, j, 1, 0)
                                - derivative(b, i, j, 0, 0) * derivative(b, i, j, 1, 1))
    return out


def test_grid_determinant_equals_a_pixel_by_pixel_reference():
    grid = np.random.default_rng(5).uniform(-1, 1, (3, 7, 5, 2))
    np.testing.assert_allclose(evaluate.grid_determinant(grid), _determinant_reference(grid),
                               rtol=1e-12, atol=1e-12)


def test_an_identity_grid_has_no_folds_and_a_mirrored_band_its_exact_share():
    height, width = 16, 12
    grid = _identity_grid(2, height, width)
    mask = np.full((2, height, width), 255, np.uint8)
    np.testing.assert_array_equal(evaluate.fold_fraction(grid, mask), 0.0)
    start, stop = 3, 9  # columns 3..8 mirrored: the inner columns 4..7 run backwards
    grid[1, :, start:stop, 0] = grid[1, :, start:stop, 0][:, ::-1]
    folds = evaluate.fold_fraction(grid, mask)
    assert folds[0] == 0.0
    assert folds[1] == pytest.approx((stop - start - 2) / width)
    # Only the garment's pixels count: without a garment there is nothing to fold.
    assert evaluate.fold_fraction(grid, np.zeros_like(mask))[1] == 0.0


def test_theta_spread_and_the_mean_warp():
    assert evaluate.theta_spread(np.ones((4, 50))) == 0.0
    thetas = np.random.default_rng(1).normal(size=(6, 50))
    assert evaluate.theta_spread(thetas) == pytest.approx(thetas.std(axis=0).mean())
    rng = np.random.default_rng(2)
    cloth = rng.integers(0, 256, (2, 8, 6, 3), dtype=np.uint8)
    mask = rng.integers(0, 256, (2, 8, 6), dtype=np.uint8)
    warped, warped_mask = evaluate.warp_with(_identity_grid(2, 8, 6), cloth, mask)
    np.testing.assert_array_equal(warped, cloth)  # align-corners identity samples the pixels
    np.testing.assert_array_equal(warped_mask, mask)
    region = np.zeros((2, 8, 6), bool)
    person = np.full((2, 8, 6, 3), 255, np.uint8)
    np.testing.assert_array_equal(evaluate.warp_l1(person, person, region), 0.0)


@pytest.mark.slow
def test_a_briefly_trained_gmm_reports_folds_spread_and_the_mean_warp_baseline():
    train_set = synthetic_tryon.RenderedDataset(spec.MEN_TSHIRTS, size=4, seed=3)
    test_set = synthetic_tryon.RenderedDataset(spec.MEN_TSHIRTS, size=3, seed=4, unpaired=True)
    gmm = trainers.build(spec.GMM, ngf=4)
    trainer = trainers.GmmTrainer(gmm, spec.MEN_TSHIRTS)
    for batch in itertools.islice(loop.batches(train_set, 2, 0, 0, trainer.keys), 24):
        trainer.step(batch)
    chain = chain_lib.Chain.from_models(spec.MEN_TSHIRTS, gmm, trainers.build(spec.EDM, ngf=4),
                                        trainers.build(spec.RM))
    average = evaluate.mean_grid(chain, train_set)
    assert average.shape == spec.FRAME_SHAPE + (2,)
    summary = evaluate.evaluate(chain, test_set, batch_size=2, average_grid=average)
    for value in (summary['model']['fold_fraction'], summary['theta_spread'],
                  summary['mean_warp']['warp_iou'], summary['mean_warp']['warp_l1']):
        assert np.isfinite(value)
    assert 0 <= summary['model']['fold_fraction'] <= 1 and summary['theta_spread'] > 0
    assert 'mean_warp' in evaluate.table(summary) and 'theta spread' in evaluate.table(summary)
