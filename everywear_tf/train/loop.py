"""The training loop the three trainers share: deterministic data order, checkpoints with resume,
TensorBoard scalars and images, and a progress line.

Resuming continues from the last saved step with the same data order as an uninterrupted run:
batch k always holds the same items, because the item order of every epoch comes from
(seed, epoch) alone and the data stream is rebuilt starting at the resumed step.
"""

import dataclasses
import os
import sys
import time

import numpy as np
import tensorflow as tf

from everywear_tf import spec


@dataclasses.dataclass(frozen=True)
class LoopConfig:
    """How long to train and how often to log, write images and checkpoint (in steps)."""
    steps: int = 1000
    batch_size: int = 4
    seed: int = 0
    save_every: int = 200
    log_every: int = 20
    image_every: int = 200
    keep_checkpoints: int = 3


def epoch_order(num_items, seed, epoch):
    """The permutation of ``num_items`` item indices that epoch ``epoch`` reads, from
    (seed, epoch) alone."""
    return np.random.default_rng([seed, epoch]).permutation(num_items)


def batch_indices(num_items, batch_size, seed, step):
    """Item indices of batch ``step`` (0-based): epochs of permutations, the last partial batch
    dropped."""
    per_epoch = num_items // batch_size
    if per_epoch == 0:
        raise ValueError(f'{num_items} items cannot fill one batch of {batch_size}')
    epoch, position = divmod(step, per_epoch)
    order = epoch_order(num_items, seed, epoch)
    return order[position * batch_size:(position + 1) * batch_size]


def batches(dataset, batch_size, seed, start_step, keys):
    """tf.data batches of ``dataset.read(i)`` from ``start_step`` on, in the deterministic order."""
    num_items = len(dataset)
    batch_indices(num_items, batch_size, seed, 0)  # fails early on a too-small dataset
    specs = {**spec.INPUT_SPECS, **spec.TARGET_SPECS}
    dtypes = [tf.as_dtype(specs[key][0]) for key in keys]
    shapes = [(batch_size,) + specs[key][1][1:] for key in keys]

    def generate():
        step = start_step
        while True:
            yield batch_indices(num_items, batch_size, seed, step)
            step += 1

    def read(indices):
        items = [dataset.read(int(i)) for i in indices]
        return tuple(np.stack([item[key] for item in items]).astype(specs[key][0])
                     for key in keys)

    def load(indices):
        values = tf.numpy_function(read, [indices], dtypes)
        for value, shape in zip(values, shapes):
            value.set_shape(shape)
        return dict(zip(keys, values))

    indices = tf.data.Dataset.from_generator(
            generate, output_signature=tf.TensorSpec([batch_size], tf.int64))
    # Deterministic map: parallel reads, but batches come out in order.
    return indices.map(load, num_parallel_calls=2, deterministic=True).prefetch(2)


def _duration(seconds):
    seconds = int(seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    return f'{hours}h{minutes:02d}m' if hours else f'{minutes}m{seconds:02d}s'


class Progress:
    """A one-line progress report: step, losses, steps/s, ETA."""

    def __init__(self, total, start, stream=sys.stderr):
        self.total, self.start, self.stream = total, start, stream
        self.started = time.monotonic()

    def line(self, step, terms):
        """'step k/N <term> <value>... | <rate> steps/s ETA <time>' for ``step`` and its loss
        ``terms``; the rate counts from the step this run started at."""
        elapsed = time.monotonic() - self.started
        rate = (step - self.start) / elapsed if elapsed > 0 else 0.0
        eta = (self.total - step) / rate if rate > 0 else float('nan')
        losses = ' '.join(f'{k} {float(v):.4f}' for k, v in terms.items())
        eta_text = _duration(eta) if np.isfinite(eta) else '?'
        return f'step {step}/{self.total} {losses} | {rate:.2f} steps/s ETA {eta_text}'

    def report(self, step, terms):
        """Prints ``line(step, terms)`` to the stream, flushed."""
        print(self.line(step, terms), file=self.stream, flush=True)


def run(train_step, make_batches, trackables, output_dir, config, images=None, log=None):
    """Runs ``train_step(batch) -> {term: scalar}`` from the last checkpoint to ``config.steps``.

    Args:
        train_step: a tf.function doing one optimisation step.
        make_batches: start_step → an iterable of batches (so a resume starts where it stopped).
        trackables: {name: object} saved in the checkpoint (models, optimizer).
        output_dir: checkpoints under ``output_dir/train``, TensorBoard logs under ``logs``.
        config: a LoopConfig (steps, and how often to log, write images and save).
        images: optional batch → {name: uint8 [B,H,W,C]} for image summaries.
        log: called with each message (default: printed to stderr).

    Returns:
        The last step's loss terms as floats ({} when already trained to ``config.steps``).
    """
    log = log or (lambda message: print(message, file=sys.stderr, flush=True))
    step_var = tf.Variable(0, dtype=tf.int64, name='step')
    checkpoint = tf.train.Checkpoint(step=step_var, **trackables)
    manager = tf.train.CheckpointManager(checkpoint, os.path.join(output_dir, 'train'),
                                         max_to_keep=config.keep_checkpoints)
    if manager.latest_checkpoint:
        checkpoint.restore(manager.latest_checkpoint).expect_partial()
        log(f'resumed from {manager.latest_checkpoint} at step {int(step_var.numpy())}')
    start = int(step_var.numpy())
    writer = tf.summary.create_file_writer(os.path.join(output_dir, 'logs'))
    progress = Progress(config.steps, start)
    terms = {}
    if start >= config.steps:
        log(f'already trained to step {start}')
        return terms
    for batch in make_batches(start):
        terms = train_step(batch)
        step = int(step_var.assign_add(1).numpy())
        if step % config.log_every == 0 or step == config.steps:
            with writer.as_default(step=step):
                for name, value in terms.items():
                    tf.summary.scalar(f'loss/{name}', value)
            progress.report(step, terms)
        if images is not None and (step % config.image_every == 0 or step == config.steps):
            with writer.as_default(step=step):
                for name, value in images(batch).items():
                    tf.summary.image(name, value, max_outputs=4)
        if step % config.save_every == 0 or step == config.steps:
            manager.save(checkpoint_number=step)
        if step >= config.steps:
            break
    writer.flush()
    return {k: float(v) for k, v in terms.items()}
