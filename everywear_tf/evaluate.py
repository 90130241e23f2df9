"""How good a set of weights is: paired SSIM, PSNR, L1 and warped-mask IoU, against baselines.

Metrics per item, averaged, for the networks' try-on (``model``) and for that try-on pasted
into the photo where the garment changes (``composited``), and that with the photo's shading and
the person's skin restored by ``inference.relight`` (``relit``, what the pipeline delivers):
- ``ssim``: Wang et al.'s SSIM (11×11 Gaussian window, σ 1.5, K1 0.01, K2 0.03, on 0..255, per
  channel then averaged), the setting the try-on literature reports; ``psnr`` in dB; ``l1``: mean
  absolute difference in [0, 1]; all between the try-on and the ground-truth person.
- ``warp_iou``: GMM's warped mask (≥ 128) against the ground-truth garment region of the parse;
  ``warp_l1``: the warped garment against the person's garment (white outside its region).
- ``mask_iou``: EDM's clothing mask (≥ 128) against the same region: whether the coarse stage
  follows the new garment's shape (long sleeves over the arms, short ones leaving them bare);
- ``fold_fraction``: the share of the warped garment's pixels where the sampling grid's Jacobian
  determinant is ≤ 0, i.e. where the TPS folded the garment over itself (a silhouette IoU does
  not show that); ``theta_spread``: how much the TPS varies across items (a GMM collapsed to one
  warp for every input has none).
Baselines: ``mean_warp`` (every garment warped by the training split's average grid: a GMM
that does not beat it has not learned to follow the body), ``no_warp`` (the product mask left
where it is, for the IoU) and ``person_unchanged`` (the input photo returned as the try-on). On a
paired set (ground truth = the input photo) the latter is trivially perfect; the synthetic test
split's swapped pairs give it a real target.
"""

import json
import os

import numpy as np
import tensorflow as tf

from everywear_tf import fileio
from everywear_tf import spec
from everywear_tf.data import datasets
from everywear_tf.data import frames
from everywear_tf.data import images
from everywear_tf.inference import categories
from everywear_tf.inference import relight
from everywear_tf.ops import sampling

TARGET_PERSON = datasets.TARGET_PERSON
TARGET_PARSE = datasets.TARGET_PARSE
METRICS = ('ssim', 'psnr', 'l1', 'warp_iou', 'warp_l1', 'fold_fraction', 'mask_iou')
def image_metrics(output, target):
    """{'ssim', 'psnr', 'l1'} per item for uint8 [B,H,W,3] images."""
    a = tf.constant(output, tf.float32)
    b = tf.constant(target, tf.float32)
    return {'ssim': tf.image.ssim(a, b, max_val=255.0).numpy(),
            'psnr': tf.image.psnr(a, b, max_val=255.0).numpy(),
            'l1': np.abs(np.asarray(output, np.float64) - target).mean(axis=(1, 2, 3)) / 255.0}


def iou(mask, region):
    """Per-item IoU of boolean [B,H,W] arrays (1 when both are empty)."""
    intersection = np.logical_and(mask, region).sum(axis=(1, 2))
    union = np.logical_or(mask, region).sum(axis=(1, 2))
    return np.where(union > 0, intersection / np.maximum(union, 1), 1.0)


def grid_determinant(grid: np.ndarray) -> np.ndarray:
    """Jacobian determinant of sampling grids [B,H,W,2] (x, y in [-1, 1]) per pixel [B,H,W].

    Central differences inside, one-sided at the borders (numpy.gradient), in grid units per
    pixel; a TPS that folds the garment over itself has a determinant ≤ 0 there.
    """
    grid = np.asarray(grid, np.float64)
    dx_dcol = np.gradient(grid[..., 0], axis=2)
    dx_drow = np.gradient(grid[..., 0], axis=1)
    dy_dcol = np.gradient(grid[..., 1], axis=2)
    dy_drow = np.gradient(grid[..., 1], axis=1)
    return dx_dcol * dy_drow - dx_drow * dy_dcol


def fold_fraction(grid: np.ndarray, warped_mask: np.ndarray) -> np.ndarray:
    """Per item, the share of the warped garment's pixels (warped mask ≥ 128) where the sampling
    grid folds (Jacobian determinant ≤ 0); 0 for an item with an empty warped mask."""
    garment = np.asarray(warped_mask) >= 128
    folded = (grid_determinant(grid) <= 0) & garment
    return folded.sum(axis=(1, 2)) / np.maximum(garment.sum(axis=(1, 2)), 1)


def theta_spread(thetas: np.ndarray) -> float:
    """How much GMM's TPS parameters vary across items: the mean over the 50 parameters of their
    standard deviation across items. A GMM that warps every input alike has a spread near 0."""
    thetas = np.asarray(thetas, np.float64)
    return float(thetas.std(axis=0).mean()) if len(thetas) > 1 else 0.0


def warp_l1(warped_cloth: np.ndarray, person: np.ndarray, region: np.ndarray) -> np.ndarray:
    """Per item, mean |warped garment − the person's garment| in [0, 1], the person's garment
    being the person inside ``region`` and white outside (CP-VTON's GMM target)."""
    target = np.where(np.asarray(region)[..., None], person, 255).astype(np.float64)
    return np.abs(np.asarray(warped_cloth, np.float64) - target).mean(axis=(1, 2, 3)) / 255.0


def warp_with(grid: np.ndarray, cloth: np.ndarray, cloth_mask: np.ndarray) -> tuple:
    """(warped cloth uint8, warped mask uint8) of ``cloth`` [B,H,W,3] and ``cloth_mask`` [B,H,W]
    through ``grid`` [B,H,W,2], sampled as GMM samples (border for the cloth, zeros for the
    mask); for the mean-warp baseline."""
    grid = tf.constant(np.asarray(grid, np.float32))
    warped = sampling.grid_sample(tf.constant(cloth, tf.float32), grid, sampling.BORDER)
    mask = sampling.grid_sample(tf.constant(cloth_mask, tf.float32)[..., None], grid,
                                sampling.ZEROS)[..., 0]
    to_uint8 = lambda x: np.clip(np.round(x.numpy()), 0, 255).astype(np.uint8)  # noqa: E731
    return to_uint8(warped), to_uint8(mask)


def mean_grid(chain, dataset, limit=None, batch_size=8) -> np.ndarray:
    """The average GMM sampling grid [H,W,2] over ``dataset`` (the training split): every item
    warped by it is the mean-warp baseline a GMM that follows the body must beat."""
    count = len(dataset) if limit is None else min(limit, len(dataset))
    total, seen = None, 0
    for start in range(0, count, batch_size):
        items = [dataset.read(i) for i in range(start, min(start + batch_size, count))]
        inputs = {k: np.stack([item[k] for item in items]) for k in spec.MODULE_INPUTS[spec.GMM]}
        grids = chain.run_module(spec.GMM, inputs)[spec.GRID].astype(np.float64)
        total = grids.sum(axis=0) if total is None else total + grids.sum(axis=0)
        seen += len(items)
    if not seen:
        raise ValueError('mean_grid needs at least one item')
    return (total / seen).astype(np.float32)


def _grid_image(inputs, outputs, relit, target):
    """person | cloth | warped | coarse | α | try-on | relit | ground truth, per item, as one
    row."""
    def rgb(mask):
        return np.repeat(mask[..., None], 3, axis=-1)

    columns = [inputs[spec.PERSON], inputs[spec.CLOTH], outputs[spec.WARPED_CLOTH],
               outputs[spec.COARSE], rgb(outputs[spec.ALPHA]), outputs[spec.TRYON], relit, target]
    return np.concatenate(columns, axis=2)


def _relit(category, inputs, outputs):
    """The composited try-on with relight's shading and skin (what the pipeline pastes)."""
    region = categories.replaced_region(category, inputs[spec.PARSE], outputs[spec.CLOTHING_MASK])
    lit = []
    for k, person in enumerate(inputs[spec.PERSON]):
        points = np.asarray(inputs[spec.KEYPOINTS][k], np.float32)
        found = np.all(points >= 0, axis=-1, keepdims=True).astype(np.float32)
        frame = frames.Frame(image=person, parse=inputs[spec.PARSE][k],
                             keypoints=np.concatenate([points, found], axis=-1),
                             transform=frames.scale_translate(1.0, 0.0, 0.0),
                             source_size=person.shape[:2])
        lit.append(relight.relight(category, frame, outputs[spec.TRYON][k],
                                   outputs[spec.CLOTHING_MASK][k], outputs[spec.WARPED_MASK][k],
                                   np.where(region[k], 255, 0).astype(np.uint8),
                                   outputs[spec.WARPED_CLOTH][k]))
    return np.where(region[..., None], np.stack(lit), inputs[spec.PERSON])


def evaluate(chain, dataset, output_dir=None, batch_size=8, limit=None, log=None,
             average_grid=None):
    """Runs ``chain`` (an inference.chain.Chain) over ``dataset`` items; returns the summary.

    ``dataset`` has len() and read(i) giving the GMM signature inputs, optionally the ground
    truth under TARGET_PERSON / TARGET_PARSE (default: the input person and parse, i.e. paired),
    and 'person_id' / 'cloth_id'. With ``output_dir``, writes metrics.json and one grid PNG per
    item under grids/. With ``average_grid`` (``mean_grid`` of the training split), the
    mean-warp baseline is scored too: every item's garment warped by that one grid.
    The summary's ``theta_spread`` says how much the warp depends on the input.
    """
    log = log or (lambda message: None)
    count = len(dataset) if limit is None else min(limit, len(dataset))
    labels = categories.GARMENT_LABELS[chain.category]
    scores = {'model': {m: [] for m in METRICS},
              'composited': {m: [] for m in ('ssim', 'psnr', 'l1')},
              'relit': {m: [] for m in ('ssim', 'psnr', 'l1')},
              'person_unchanged': {m: [] for m in ('ssim', 'psnr', 'l1')},
              'no_warp': {'warp_iou': []}}
    if average_grid is not None:
        scores['mean_warp'] = {'warp_iou': [], 'warp_l1': []}
    per_item, thetas = [], []
    for start in range(0, count, batch_size):
        items = [dataset.read(i) for i in range(start, min(start + batch_size, count))]
        inputs = {k: np.stack([item[k] for item in items]) for k in spec.MODULE_INPUTS[spec.GMM]}
        target = np.stack([item.get(TARGET_PERSON, item[spec.PERSON]) for item in items])
        target_parse = np.stack([item.get(TARGET_PARSE, item.get(spec.TRUE_PARSE, item[spec.PARSE]))
                                 for item in items])
        region = np.isin(target_parse, labels)
        outputs = chain(inputs)
        model = {**image_metrics(outputs[spec.TRYON], target),
                 'warp_iou': iou(outputs[spec.WARPED_MASK] >= 128, region),
                 'warp_l1': warp_l1(outputs[spec.WARPED_CLOTH], target, region),
                 'fold_fraction': fold_fraction(outputs[spec.GRID], outputs[spec.WARPED_MASK]),
                 'mask_iou': iou(outputs[spec.EDM_MASK] >= 128, region)}
        thetas += list(outputs[spec.THETA])
        if average_grid is not None:
            grids = np.broadcast_to(average_grid, outputs[spec.GRID].shape)
            cloth, mask = warp_with(grids, inputs[spec.CLOTH], inputs[spec.CLOTH_MASK])
            scores['mean_warp']['warp_iou'] += list(iou(mask >= 128, region))
            scores['mean_warp']['warp_l1'] += list(warp_l1(cloth, target, region))
        pasted = categories.composite(chain.category, inputs[spec.PERSON], inputs[spec.PARSE],
                                      outputs)
        for m, values in image_metrics(pasted, target).items():
            scores['composited'][m] += list(values)
        lit = _relit(chain.category, inputs, outputs)
        relit_metrics = image_metrics(lit, target)
        for m, values in relit_metrics.items():
            scores['relit'][m] += list(values)
        unchanged = image_metrics(inputs[spec.PERSON], target)
        no_warp = iou(inputs[spec.CLOTH_MASK] >= 128, region)
        for m in METRICS:
            scores['model'][m] += list(model[m])
        for m in unchanged:
            scores['person_unchanged'][m] += list(unchanged[m])
        scores['no_warp']['warp_iou'] += list(no_warp)
        grids = _grid_image(inputs, outputs, lit, target)
        for k, item in enumerate(items):
            name = f"{item.get('person_id', start + k)}_{item.get('cloth_id', '')}".rstrip('_')
            per_item.append({'item': name, **{m: float(model[m][k]) for m in METRICS},
                             'relit_ssim': float(relit_metrics['ssim'][k])})
            if output_dir:
                images.write_png(os.path.join(output_dir, 'grids', f'{name}.png'), grids[k])
        log(f'evaluated {min(start + batch_size, count)}/{count}')
    summary = {name: {m: float(np.mean(v)) for m, v in metrics.items()}
               for name, metrics in scores.items()}
    summary['count'] = count
    summary['category'] = chain.category
    summary['theta_spread'] = theta_spread(thetas)
    if output_dir:
        fileio.atomic_write_bytes(os.path.join(output_dir, 'metrics.json'), json.dumps(
                {'summary': summary, 'items': per_item}, indent=1).encode())
    return summary


def table(summary):
    """A plain-text table of a summary (rows: model and baselines), then the theta spread."""
    lines = [f"{'':18} {'SSIM':>7} {'PSNR':>7} {'L1':>7} {'warp IoU':>9} {'warp L1':>8} "
             f"{'folded':>7} {'mask IoU':>9}"]
    for name in ('model', 'composited', 'relit', 'person_unchanged', 'no_warp', 'mean_warp'):
        if name not in summary:
            continue
        row = summary[name]

        def cell(metric, width, fmt, row=row):
            return format(row[metric], fmt).rjust(width) if metric in row else '-'.rjust(width)

        lines.append(f'{name:18} {cell("ssim", 7, ".4f")} {cell("psnr", 7, ".2f")} '
                     f'{cell("l1", 7, ".4f")} {cell("warp_iou", 9, ".4f")} '
                     f'{cell("warp_l1", 8, ".4f")} {cell("fold_fraction", 7, ".2%")} '
                     f'{cell("mask_iou", 9, ".4f")}')
    if 'theta_spread' in summary:
        lines.append(f"theta spread across items: {summary['theta_spread']:.4f}")
    return '\n'.join(lines)
