"""One trainer per network, with the originals' optimiser settings as defaults.

- GMM (CP-VTON train.py): Adam lr 1e-4, β (0.5, 0.999), batch 4; L1 between the warped cloth and
  the person's garment region; CP-VTON+ adds 40 · grid regularisation.
- EDM (VITON stage 1): Adam lr 2e-4, β1 0.5, batch 16; mask L1 + content L1 + 3 · perceptual.
- RM (VITON stage 2): Adam lr 2e-4, β1 0.5, batch 16; 0.2 L1 + 0.8 perceptual − 0.1 mean α +
  5e-6 TV(α). Its coarse persons come from a trained EDM run as the original runs it (batch
  statistics and dropout, i.e. training mode, weights frozen); its warped garments come from a
  trained GMM, as in the try-on pipeline (the original used offline shape-context TPS warps).
"""

import dataclasses

import tensorflow as tf

from everywear_tf import configs
from everywear_tf import losses
from everywear_tf import spec
from everywear_tf.data import lip
from everywear_tf.data import representation
from everywear_tf.models import factory
from everywear_tf.ops import quantize
from everywear_tf.train import loop

GARMENT_LABELS = lip.CATEGORY_GARMENT
GIC_WEIGHT = 40.0


_NEEDS_VGG = ('{module} training with perceptual_weight {weight} needs VGG-19 weights: pass '
              '--vgg_weights=imagenet-vgg-verydeep-19.mat (MatConvNet) or the Keras '
              'vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5, or --perceptual_weight=0 to '
              'train without the perceptual loss')


class TrainingSetupError(ValueError):
    """A trainer asked for something it cannot do (e.g. a perceptual loss without VGG)."""


@dataclasses.dataclass(frozen=True)
class OptimizerConfig:
    """Adam's settings (β1 0.5 as the originals use it, TF1's ε)."""
    learning_rate: float
    beta_1: float = 0.5
    beta_2: float = 0.999
    epsilon: float = 1e-8  # TF1's AdamOptimizer default (Keras' is 1e-7)


DEFAULT_OPTIMIZERS = {spec.GMM: OptimizerConfig(1e-4), spec.EDM: OptimizerConfig(2e-4),
                      spec.RM: OptimizerConfig(2e-4)}
DEFAULT_BATCH_SIZES = {spec.GMM: 4, spec.EDM: 16, spec.RM: 16}


class LinearDecay(tf.keras.optimizers.schedules.LearningRateSchedule):
    """CP-VTON's schedule (train.py's LambdaLR with --keep_step and --decay_step): the rate
    stays at ``rate`` for ``keep`` steps, then falls linearly over ``decay`` steps,
    ``rate · (1 − max(0, step − keep) / (decay + 1))``, never below 0. The step is the
    optimizer's own count, which the checkpoint keeps, so a resumed run continues the schedule."""

    def __init__(self, rate, keep, decay):
        if keep < 0 or decay < 0:
            raise ValueError(f'keep and decay steps must be ≥ 0, got {keep} and {decay}')
        self.rate, self.keep, self.decay = float(rate), int(keep), int(decay)

    def __call__(self, step):
        """The rate at optimizer step ``step``."""
        past = tf.maximum(tf.cast(step, tf.float32) - self.keep, 0.0)
        return self.rate * tf.maximum(1.0 - past / (self.decay + 1.0), 0.0)

    def get_config(self):
        """The schedule's arguments (Keras serialisation)."""
        return {'rate': self.rate, 'keep': self.keep, 'decay': self.decay}


def make_optimizer(config, steps=None, decay_steps=0):
    """A Keras Adam optimizer with ``config``'s learning rate, betas and epsilon; with
    ``decay_steps`` > 0 the rate decays linearly over the last ``decay_steps`` of ``steps``
    (LinearDecay), as CP-VTON trains (the originals' constant rate otherwise)."""
    rate = config.learning_rate
    if decay_steps:
        if steps is None or decay_steps > steps:
            raise TrainingSetupError(f'the learning rate cannot decay over {decay_steps} steps '
                                     f'of a run of {steps}')
        rate = LinearDecay(rate, steps - decay_steps, decay_steps)
    return tf.keras.optimizers.Adam(rate, beta_1=config.beta_1, beta_2=config.beta_2,
                                    epsilon=config.epsilon)


def _signed_to_image(x):
    return quantize.signed_to_uint8(x)


def _mask_to_image(m):
    return tf.image.grayscale_to_rgb(quantize.unit_to_uint8(m))


def gmm_inputs(model, batch):
    """GMM's network inputs (agnostic, cloth_input, cloth, cloth_mask) from a batch of signature
    inputs, for ``model``'s variant."""
    variant = model.config.variant
    return (representation.gmm_agnostic(batch[spec.PERSON], batch[spec.PARSE],
                                        batch[spec.KEYPOINTS], variant),
            representation.gmm_cloth(batch[spec.CLOTH], batch[spec.CLOTH_MASK], variant),
            representation.to_signed(batch[spec.CLOTH]),
            representation.binary_cloth_mask(batch[spec.CLOTH_MASK]))


def truth_parse(batch):
    """The parse the targets are made from: the drawn one (``true_parse``) when the inputs are
    the front end's estimate, else the input parse."""
    return batch.get(spec.TRUE_PARSE, batch[spec.PARSE])


def edm_targets(batch, category):
    """(clothing mask [B,H,W,1] of the category's VITON garment labels, person in [-1, 1]): EDM's
    targets, also RM's clothing mask and target."""
    labels = GARMENT_LABELS[category][1]
    return (representation.label_mask(truth_parse(batch), labels),
            representation.to_signed(batch[spec.PERSON]))


GRID_REGIONS = ('frame', 'garment')  # where GMM's supervised grid term is counted


class GmmTrainer:
    """Trains a Gmm: L1 from the warped cloth to the person's garment (plus CP-VTON+'s grid
    regularisation)."""

    keys = spec.MODULE_INPUTS[spec.GMM]

    def __init__(self, model, category, optimizer=None, grid_weight=0.0, grid_on='frame'):
        """``grid_weight`` > 0 adds the supervised grid term (needs ``grid_target`` batches:
        synthetic data; this project's addition, off by default), over the whole frame
        (``grid_on='frame'``) or only where the person's garment is (``'garment'``)."""
        if grid_on not in GRID_REGIONS:
            raise ValueError(f'grid_on must be one of {GRID_REGIONS}, got {grid_on!r}')
        self.grid_on = grid_on
        self.model, self.category = model, category
        self.optimizer = optimizer or make_optimizer(DEFAULT_OPTIMIZERS[spec.GMM])
        self.gic_weight = GIC_WEIGHT if model.config.variant == configs.CPVTON_PLUS else 0.0
        self.grid_weight = float(grid_weight)
        if self.grid_weight:
            self.keys = self.keys + (spec.GRID_TARGET,)
        self.step = tf.function(self._step)

    def target(self, batch):
        """The person's garment region on white, [-1, 1] [B,H,W,3] (CP-VTON's ``im_c``)."""
        return representation.cloth_on_person(batch[spec.PERSON], truth_parse(batch),
                                              GARMENT_LABELS[self.category][0])

    def _step(self, batch):
        with tf.GradientTape() as tape:
            out = self.model(gmm_inputs(self.model, batch), training=True)
            mask = None
            if self.grid_weight and self.grid_on == 'garment':
                mask = tf.reduce_any(truth_parse(batch)[..., None] == tf.constant(
                        GARMENT_LABELS[self.category][0], tf.uint8), axis=-1)
            terms = losses.gmm_loss(out['warped_cloth'], self.target(batch), out['grid'],
                                    self.gic_weight, batch.get(spec.GRID_TARGET),
                                    self.grid_weight, mask)
        variables = self.model.trainable_variables
        self.optimizer.apply_gradients(zip(tape.gradient(terms['total'], variables), variables))
        return terms

    def images(self, batch):
        """{summary name: uint8 [B,H,4W,3]}: person, cloth, warped cloth and target side by side."""
        out = self.model(gmm_inputs(self.model, batch), training=False)
        return {'gmm/person_cloth_warped_target': tf.concat(
                [_signed_to_image(representation.to_signed(batch[spec.PERSON])),
                 _signed_to_image(representation.to_signed(batch[spec.CLOTH])),
                 _signed_to_image(out['warped_cloth']), _signed_to_image(self.target(batch))],
                axis=2)}

    def trackables(self):
        """What the checkpoint saves: the model and its optimizer."""
        return {'model': self.model, 'optimizer': self.optimizer}


class EdmTrainer:
    """Trains an Edm: mask L1, content L1 and (with VGG-19 weights) the perceptual loss."""

    keys = spec.MODULE_INPUTS[spec.EDM]

    def __init__(self, model, category, vgg=None, perceptual_weight=3.0, optimizer=None):
        if perceptual_weight > 0 and vgg is None:
            raise TrainingSetupError(_NEEDS_VGG.format(module='EDM', weight=perceptual_weight))
        self.model, self.category, self.vgg = model, category, vgg
        self.perceptual_weight = perceptual_weight
        self.optimizer = optimizer or make_optimizer(DEFAULT_OPTIMIZERS[spec.EDM])
        self.step = tf.function(self._step)

    def _step(self, batch):
        target_mask, target_image = edm_targets(batch, self.category)
        x = representation.edm_input(batch[spec.PERSON], batch[spec.PARSE],
                                     batch[spec.KEYPOINTS], batch[spec.CLOTH])
        with tf.GradientTape() as tape:
            out = self.model(x, training=True)
            terms = losses.edm_loss(out['mask'], out['image'], target_mask, target_image,
                                    self.vgg, perceptual_weight=self.perceptual_weight)
        variables = self.model.trainable_variables
        self.optimizer.apply_gradients(zip(tape.gradient(terms['total'], variables), variables))
        return terms

    def images(self, batch):
        """{summary name: uint8 [B,H,4W,3]}: coarse person, mask, target person and target mask
        side by side."""
        x = representation.edm_input(batch[spec.PERSON], batch[spec.PARSE],
                                     batch[spec.KEYPOINTS], batch[spec.CLOTH])
        out = self.model(x, training=False)
        target_mask, target_image = edm_targets(batch, self.category)
        return {'edm/coarse_mask_target': tf.concat(
                [_signed_to_image(out['image']), _mask_to_image(out['mask']),
                 _signed_to_image(target_image), _mask_to_image(target_mask)], axis=2)}

    def trackables(self):
        """What the checkpoint saves: the model and its optimizer."""
        return {'model': self.model, 'optimizer': self.optimizer}


class RmTrainer:
    """Trains an Rm on the outputs of a trained GMM and EDM (both frozen): L1, perceptual, α's
    mean and total variation."""

    keys = spec.MODULE_INPUTS[spec.GMM]

    def __init__(self, model, category, gmm, edm, vgg=None, perceptual_weight=0.8,
                 optimizer=None, edm_training_mode=True):
        if perceptual_weight > 0 and vgg is None:
            raise TrainingSetupError(_NEEDS_VGG.format(module='RM', weight=perceptual_weight))
        self.model, self.category, self.gmm, self.edm, self.vgg = model, category, gmm, edm, vgg
        self.perceptual_weight = perceptual_weight
        self.edm_training_mode = edm_training_mode
        self.optimizer = optimizer or make_optimizer(DEFAULT_OPTIMIZERS[spec.RM])
        self.step = tf.function(self._step)

    def _inputs(self, batch):
        warped = self.gmm(gmm_inputs(self.gmm, batch), training=False)['warped_cloth']
        x = representation.edm_input(batch[spec.PERSON], batch[spec.PARSE],
                                     batch[spec.KEYPOINTS], batch[spec.CLOTH])
        coarse = self.edm(x, training=self.edm_training_mode)['image']
        clothing_mask, target = edm_targets(batch, self.category)
        return tf.stop_gradient(warped), tf.stop_gradient(coarse), clothing_mask, target

    def _step(self, batch):
        warped, coarse, clothing_mask, target = self._inputs(batch)
        with tf.GradientTape() as tape:
            out = self.model((warped, coarse, clothing_mask), training=True)
            terms = losses.rm_loss(out['tryon'], target, out['alpha'], self.vgg,
                                   perceptual_weight=self.perceptual_weight)
        variables = self.model.trainable_variables
        self.optimizer.apply_gradients(zip(tape.gradient(terms['total'], variables), variables))
        return terms

    def images(self, batch):
        """{summary name: uint8 [B,H,5W,3]}: warped cloth, coarse person, α, try-on and target
        side by side."""
        warped, coarse, clothing_mask, target = self._inputs(batch)
        out = self.model((warped, coarse, clothing_mask), training=False)
        return {'rm/warped_coarse_alpha_tryon_target': tf.concat(
                [_signed_to_image(warped), _signed_to_image(coarse),
                 _mask_to_image(out['alpha']), _signed_to_image(out['tryon']),
                 _signed_to_image(target)], axis=2)}

    def trackables(self):
        """What the checkpoint saves: the model and its optimizer."""
        return {'model': self.model, 'optimizer': self.optimizer}


def train(trainer, dataset, output_dir, loop_config, log=None):
    """Runs ``trainer`` over ``dataset`` (anything with len() and read(i)) to loop_config.steps.

    A dataset whose items hold ``true_parse`` (inputs estimated by the photo front end) has the
    targets made from it."""
    keys = trainer.keys
    if len(dataset) and spec.TRUE_PARSE in dataset.read(0):
        keys = keys + (spec.TRUE_PARSE,)

    def make_batches(start):
        return loop.batches(dataset, loop_config.batch_size, loop_config.seed, start, keys)

    return loop.run(trainer.step, make_batches, trainer.trackables(), output_dir, loop_config,
                    images=trainer.images, log=log)


def build(module, config_name=configs.LITE, **overrides):
    """A freshly initialised network of ``module`` from the named config (lite by default) with
    field overrides."""
    return factory.build(configs.get(module, config_name, **overrides))


def recalibrate_batch_norm(model, inputs):
    """Replaces every BatchNormalization's moving statistics by exact averages over ``inputs``.

    EDM's batch norms use momentum 0.999, as VITON's: after a short run (a few thousand steps)
    the moving averages still remember their initial values, and inference (which uses them)
    drifts from training. Each layer's momentum is set so that the k-th of n batches is weighed
    1/k, giving the plain mean of the batch statistics; momenta are restored afterwards.
    ``inputs``: an iterable of network inputs (batches).
    """
    layers = [layer for layer in model.layers
              if isinstance(layer, tf.keras.layers.BatchNormalization)]
    momenta = [layer.momentum for layer in layers]
    try:
        for count, batch in enumerate(inputs):
            for layer in layers:
                layer.momentum = count / (count + 1.0)
            model(batch, training=True)
    finally:
        for layer, momentum in zip(layers, momenta):
            layer.momentum = momentum
    return model


def edm_batches(dataset, batch_size, count, seed=0):
    """EDM inputs for ``recalibrate_batch_norm``: ``count`` batches from ``dataset``."""
    stream = iter(loop.batches(dataset, batch_size, seed, 0, spec.MODULE_INPUTS[spec.EDM]))
    for _ in range(count):
        batch = next(stream)
        yield representation.edm_input(batch[spec.PERSON], batch[spec.PARSE],
                                       batch[spec.KEYPOINTS], batch[spec.CLOTH])
