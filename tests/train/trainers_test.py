"""Trainer smoke tests: the loss goes down over a few steps, and a killed run resumes exactly."""

import numpy as np
import pytest
import tensorflow as tf

from everywear_tf import configs
from everywear_tf import evaluate
from everywear_tf import spec
from everywear_tf.data import datasets
from everywear_tf.data import lip
from everywear_tf.data import synthetic_tryon
from everywear_tf.train import loop
from everywear_tf.train import trainers

# Servers, subprocesses, exports or training: not in the fast loop (pytest -m 'not slow').
pytestmark = pytest.mark.slow


@pytest.fixture(scope='module')
def dataset():
    return synthetic_tryon.RenderedDataset(spec.MEN_TSHIRTS, size=6, seed=3)


def _losses(trainer, dataset, steps, path, log=None):
    """The total loss of every step of a run to ``steps`` (resuming from ``path`` if saved)."""
    config = loop.LoopConfig(steps=steps, batch_size=2, save_every=steps, log_every=1,
                             image_every=steps)
    history = []
    original = trainer.step

    def recording(batch):
        terms = original(batch)
        history.append(float(terms['total']))
        return terms

    trainer.step = recording
    trainers.train(trainer, dataset, str(path), config, log=log or (lambda m: None))
    return history


def _fixed_batch_losses(trainer, dataset, steps):
    """Repeated steps on one batch: the loss must fall (a test that can fail)."""
    batch = next(iter(loop.batches(dataset, 2, 0, 0, trainer.keys)))
    return [float(trainer.step(batch)['total']) for _ in range(steps)]


def test_gmm_loss_decreases(dataset):
    tf.keras.utils.set_random_seed(0)
    trainer = trainers.GmmTrainer(trainers.build(spec.GMM, ngf=4), spec.MEN_TSHIRTS)
    history = _fixed_batch_losses(trainer, dataset, 12)
    assert history[-1] < history[0] * 0.97, history


def test_gmm_plus_adds_the_grid_term(dataset):
    trainer = trainers.GmmTrainer(trainers.build(spec.GMM, variant=configs.CPVTON_PLUS, ngf=4),
                                  spec.MEN_TSHIRTS)
    batch = next(iter(loop.batches(dataset, 2, 0, 0, trainer.keys)))
    assert 'gic' in trainer.step(batch)


def test_the_supervised_grid_term_reads_the_true_grids_of_a_written_split(tmp_path):
    root = tmp_path / 'synthetic'
    synthetic_tryon.write_split(str(root), 'train', spec.MEN_TSHIRTS, 4, seed=2)
    dataset = synthetic_tryon.WithGridTargets(datasets.CpVtonDataset(str(root), 'train'),
                                              str(root), 'train')
    item = dataset.read(1)
    assert item[spec.GRID_TARGET].shape == spec.FRAME_SHAPE + (2,)
    # The true grid warps the product onto the person's garment (what the drawing did).
    warped = evaluate.warp_with(item[spec.GRID_TARGET][None], item[spec.CLOTH][None],
                                item[spec.CLOTH_MASK][None])[1][0] >= 128
    garment = np.isin(item[spec.PARSE], (lip.UPPER_CLOTHES,))
    assert (warped & garment).sum() / (warped | garment).sum() > 0.8
    tf.keras.utils.set_random_seed(0)
    trainer = trainers.GmmTrainer(trainers.build(spec.GMM, variant=configs.CPVTON_PLUS, ngf=4),
                                  spec.MEN_TSHIRTS, grid_weight=1.0)
    assert spec.GRID_TARGET in trainer.keys
    batch = next(iter(loop.batches(dataset, 2, 0, 0, trainer.keys)))
    history = [float(trainer.step(batch)['grid_l1']) for _ in range(10)]
    assert history[-1] < history[0], history


def test_edm_loss_decreases_and_needs_vgg_for_perceptual(dataset):
    with pytest.raises(ValueError, match='--perceptual_weight=0'):
        trainers.EdmTrainer(trainers.build(spec.EDM, ngf=4), spec.MEN_TSHIRTS)
    tf.keras.utils.set_random_seed(0)
    trainer = trainers.EdmTrainer(trainers.build(spec.EDM, ngf=4), spec.MEN_TSHIRTS,
                                  perceptual_weight=0.0)
    history = _fixed_batch_losses(trainer, dataset, 8)
    assert history[-1] < history[0] - 0.01, history


def test_rm_loss_decreases(dataset):
    tf.keras.utils.set_random_seed(0)
    trainer = trainers.RmTrainer(trainers.build(spec.RM), spec.MEN_TSHIRTS,
                                 gmm=trainers.build(spec.GMM, ngf=4),
                                 edm=trainers.build(spec.EDM, ngf=4), perceptual_weight=0.0)
    history = _fixed_batch_losses(trainer, dataset, 10)
    assert history[-1] < history[0], history


def test_kill_and_resume_continues_at_the_right_step_with_the_same_data(dataset, tmp_path):
    def trainer():
        tf.keras.utils.set_random_seed(1)
        return trainers.GmmTrainer(trainers.build(spec.GMM, ngf=4), spec.MEN_TSHIRTS)

    straight = _losses(trainer(), dataset, 6, tmp_path / 'straight')
    # "Killed" after step 3: only the checkpoint of step 3 survives.
    first = trainer()
    config = loop.LoopConfig(steps=3, batch_size=2, save_every=3, log_every=1, image_every=3)
    trainers.train(first, dataset, str(tmp_path / 'resumed'), config, log=lambda m: None)
    messages = []
    resumed_trainer = trainer()
    resumed = _losses(resumed_trainer, dataset, 6, tmp_path / 'resumed', messages.append)
    assert any('at step 3' in m for m in messages), messages
    assert len(resumed) == 3
    np.testing.assert_allclose(resumed, straight[3:], rtol=1e-4)


def test_linear_decay_matches_cpvtons_lambda_in_float64():
    rng = np.random.default_rng(0)
    for _ in range(4):
        rate = rng.uniform(1e-5, 1e-3)
        keep, decay = int(rng.integers(0, 50)), int(rng.integers(1, 50))
        schedule = trainers.LinearDecay(rate, keep, decay)
        steps = np.arange(0, keep + decay + 20)
        reference = rate * np.maximum(1.0 - np.maximum(0, steps - keep) / (decay + 1.0), 0.0)
        got = np.array([float(schedule(tf.constant(step, tf.int64))) for step in steps])
        np.testing.assert_allclose(got, reference, rtol=1e-5, atol=1e-12)
    assert float(trainers.LinearDecay(1e-4, 10, 0)(11)) == 0.0
    with pytest.raises(trainers.TrainingSetupError,
                       match='cannot decay over 9 steps of a run of 5'):
        trainers.make_optimizer(trainers.DEFAULT_OPTIMIZERS[spec.GMM], steps=5, decay_steps=9)


def test_a_resumed_run_continues_the_decaying_rate(dataset, tmp_path):
    def trainer():
        tf.keras.utils.set_random_seed(1)
        optimizer = trainers.make_optimizer(trainers.DEFAULT_OPTIMIZERS[spec.GMM], steps=6,
                                            decay_steps=4)
        return trainers.GmmTrainer(trainers.build(spec.GMM, ngf=4), spec.MEN_TSHIRTS, optimizer)

    straight = _losses(trainer(), dataset, 6, tmp_path / 'straight')
    first = trainer()
    config = loop.LoopConfig(steps=3, batch_size=2, save_every=3, log_every=1, image_every=3)
    trainers.train(first, dataset, str(tmp_path / 'resumed'), config, log=lambda m: None)
    resumed_trainer = trainer()
    resumed = _losses(resumed_trainer, dataset, 6, tmp_path / 'resumed')
    np.testing.assert_allclose(resumed, straight[3:], rtol=1e-4)
    assert int(resumed_trainer.optimizer.iterations) == 6
    # The decay is in effect: at a constant rate the losses part after the 2 kept steps.
    tf.keras.utils.set_random_seed(1)
    constant = _losses(trainers.GmmTrainer(trainers.build(spec.GMM, ngf=4), spec.MEN_TSHIRTS),
                       dataset, 6, tmp_path / 'constant')
    np.testing.assert_allclose(constant[:3], straight[:3], rtol=1e-5)
    assert not np.allclose(constant[3:], straight[3:], rtol=1e-4)


def test_batch_order_depends_only_on_seed_and_step():
    a = [loop.batch_indices(10, 3, 5, step).tolist() for step in range(7)]
    b = [loop.batch_indices(10, 3, 5, step).tolist() for step in range(7)]
    assert a == b
    epoch = sorted(sum(a[:3], []))
    assert len(set(epoch)) == 9  # no repeats within an epoch
    with pytest.raises(ValueError, match='cannot fill one batch'):
        loop.batch_indices(2, 3, 0, 0)


def test_progress_line_has_rate_and_eta():
    progress = loop.Progress(total=100, start=0)
    progress.started -= 10.0
    line = progress.line(20, {'total': 0.5})
    assert line.startswith('step 20/100 total 0.5000 |') and 'steps/s' in line and 'ETA' in line


def test_recalibrated_batch_norm_holds_the_mean_of_the_batch_statistics():
    model = tf.keras.Sequential([tf.keras.layers.BatchNormalization(momentum=0.999)])
    rng = np.random.default_rng(0)
    batches = [rng.normal(i, 1 + i, (8, 3)).astype(np.float32) for i in range(4)]
    trainers.recalibrate_batch_norm(model, batches)
    layer = model.layers[0]
    np.testing.assert_allclose(layer.moving_mean.numpy(),
                               np.mean([b.mean(0) for b in batches], axis=0), rtol=1e-5)
    # Non-fused batch norm (EDM's, like VITON's) averages the biased batch variance.
    np.testing.assert_allclose(layer.moving_variance.numpy(),
                               np.mean([b.var(0) for b in batches], axis=0), rtol=1e-4)
    assert layer.momentum == 0.999


def test_train_binary_runs_and_refuses_perceptual_without_vgg(tmp_path):
    import os
    import subprocess
    import sys
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    data = os.path.join(root, 'tests', 'testdata', 'cpvton')
    binary = os.path.join(root, 'train', 'train.py')
    common = ['--category=men_tshirts', f'--dataset_root={data}', '--mode=test',
              '--pairs=test_pairs.txt',
              '--config=lite', '--steps=2', '--batch_size=2', '--log_every=1']
    refused = subprocess.run([sys.executable, binary, '--module=edm', *common,
                              f'--output_dir={tmp_path / "edm"}'], capture_output=True, text=True,
                             timeout=300)
    assert refused.returncode == 1 and '--perceptual_weight=0' in refused.stderr
    run = tmp_path / 'run'
    ran = subprocess.run([sys.executable, binary, '--module=edm', '--perceptual_weight=0',
                          '--recalibrate_batch_norm=1', *common,
                          f'--output_dir={run}'], capture_output=True, text=True,
                         timeout=300)
    assert ran.returncode == 0, ran.stderr
    assert 'step 2/2' in ran.stderr
    from everywear_tf import weights
    # One layout with publish, evaluate and everywear-tryon: the run is a weights root.
    manifest = weights.read_manifest(run / 'edm_men_tshirts')
    assert manifest['module'] == 'edm' and manifest['trained']['steps'] == 2
    assert sorted(os.listdir(run)) == ['edm_men_tshirts', 'training']
    assert sorted(os.listdir(run / 'training' / 'edm_men_tshirts')) == ['logs', 'train']
    # RM takes the run's own GMM and EDM unless told otherwise; this run has no GMM yet.
    rm = subprocess.run([sys.executable, binary, '--module=rm', '--perceptual_weight=0', *common,
                         f'--output_dir={run}'], capture_output=True, text=True, timeout=300)
    assert rm.returncode == 1
    assert f'{run / "gmm_men_tshirts"}: no such weights directory; RM training needs' in rm.stderr


def test_runs_of_the_old_layout_are_recognised(tmp_path):
    from everywear_tf.inference import pipeline
    from everywear_tf.train import runs
    old = tmp_path / 'gmm_men_tshirts'
    (old / 'train').mkdir(parents=True)
    (old / 'weights').mkdir()
    (old / 'weights' / 'manifest.json').write_text('{}')
    assert runs.weights_dir(str(tmp_path), 'gmm', 'men_tshirts') == str(old)
    with pytest.raises(runs.LayoutError, match='a train.py run of the old layout .* To resume '
                                               'it, move train/ and logs/ into '):
        runs.check_output_dir(str(old), 'gmm', 'men_tshirts')
    runs.check_output_dir(str(tmp_path / 'new'), 'gmm', 'men_tshirts')  # nothing there: fine
    (old / 'training' / 'gmm_men_tshirts').mkdir(parents=True)
    runs.check_output_dir(str(old), 'gmm', 'men_tshirts')  # a run already moved: resumes
    # Given as a weights root, an old run says where its weights are.
    with pytest.raises(pipeline.SetupError, match=f'no such weights directory \\({old} is a '
                                                  f'train.py run of the old layout, its weights '
                                                  f'are {old}/weights'):
        pipeline.LocalBackend(str(old)).check(['men_tshirts'])
