"""A few GMM/EDM/RM steps on each public layout's fixture and on its TFRecord shards: the same
first-batch losses from folder and shards."""

import os

import numpy as np
import pytest
import tensorflow as tf

from everywear_tf import spec
from everywear_tf.data import dress_code
from everywear_tf.data import tfrecords
from everywear_tf.data import viton_hd
from everywear_tf.train import loop
from everywear_tf.train import trainers

pytestmark = pytest.mark.slow
TESTDATA = os.path.join(os.path.dirname(__file__), '..', 'testdata')
STEPS = 2


def _trainer(module, category):
    tf.keras.utils.set_random_seed(0)
    if module == spec.GMM:
        return trainers.GmmTrainer(trainers.build(spec.GMM, ngf=4), category)
    if module == spec.EDM:
        return trainers.EdmTrainer(trainers.build(spec.EDM, ngf=4), category,
                                   perceptual_weight=0.0)
    return trainers.RmTrainer(trainers.build(spec.RM), category,
                              gmm=trainers.build(spec.GMM, ngf=4),
                              edm=trainers.build(spec.EDM, ngf=4), perceptual_weight=0.0)


def _losses(module, category, dataset, path):
    trainer = _trainer(module, category)
    history = []
    original = trainer.step

    def recording(batch):
        terms = original(batch)
        history.append(float(terms['total']))
        return terms

    trainer.step = recording
    config = loop.LoopConfig(steps=STEPS, batch_size=2, save_every=STEPS, log_every=STEPS,
                             image_every=STEPS)
    trainers.train(trainer, dataset, str(path), config, log=lambda message: None)
    return history


@pytest.mark.parametrize('layout,category', [('viton_hd', spec.MEN_TSHIRTS),
                                             ('dress_code', spec.MEN_PANTS)])
def test_training_on_folder_and_shards(tmp_path, layout, category):
    if layout == 'viton_hd':
        folder = viton_hd.VitonHdDataset(os.path.join(TESTDATA, 'viton_hd'))
    else:
        folder = dress_code.DressCodeDataset(os.path.join(TESTDATA, 'dress_code'), category)
    items = [folder.read(i) for i in range(len(folder))]
    tfrecords.write_shard(tfrecords.shard_name(str(tmp_path / 's'), 0, 2), items[:1])
    tfrecords.write_shard(tfrecords.shard_name(str(tmp_path / 's'), 1, 2), items[1:])
    shards = tfrecords.TfRecordDataset(str(tmp_path / 's-*'))
    for module in spec.MODULES:
        on_folder = _losses(module, category, folder, tmp_path / f'{module}_folder')
        on_shards = _losses(module, category, shards, tmp_path / f'{module}_shards')
        assert len(on_folder) == STEPS and np.all(np.isfinite(on_folder)), (module, on_folder)
        assert on_folder[0] == on_shards[0], (module, on_folder, on_shards)
