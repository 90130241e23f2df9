"""Evaluation on known pairs, and a lite try-on run end to end through it."""

import json
import os

import numpy as np
import pytest

from everywear_tf import evaluate
from everywear_tf import spec
from everywear_tf.data import synthetic_tryon
from everywear_tf.inference import chain as chain_lib
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
    text = evaluate.table(summary)
    assert 'person_unchanged' in text and 'no_warp' in text
