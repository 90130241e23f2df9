"""How good a set of weights is: paired SSIM, PSNR, L1 and warped-mask IoU, against baselines.

Metrics per item, averaged, for the networks' try-on (``model``) and for that try-on pasted
into the photo where the garment changes (``composited``, what the pipeline delivers):
- ``ssim``: Wang et al.'s SSIM (11×11 Gaussian window, σ 1.5, K1 0.01, K2 0.03, on 0..255, per
  channel then averaged), the setting the try-on literature reports; ``psnr`` in dB; ``l1``: mean
  absolute difference in [0, 1]; all between the try-on and the ground-truth person.
- ``warp_iou``: GMM's warped mask (≥ 128) against the ground-truth garment region of the parse.
Baselines: ``no_warp`` (the product mask left where it is, for the IoU) and ``person_unchanged``
(the input photo returned as the try-on). On a paired set (ground truth = the input photo) the
latter is trivially perfect; the synthetic test split's swapped pairs give it a real target.
"""

import json
import os

import numpy as np
import tensorflow as tf

from everywear_tf import fileio
from everywear_tf import spec
from everywear_tf.data import datasets
from everywear_tf.data import images
from everywear_tf.inference import categories

TARGET_PERSON = datasets.TARGET_PERSON
TARGET_PARSE = datasets.TARGET_PARSE
METRICS = ('ssim', 'psnr', 'l1', 'warp_iou')
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


def _grid_image(inputs, outputs, target):
    """person | cloth | warped | coarse | α | try-on | ground truth, per item, as one row."""
    def rgb(mask):
        return np.repeat(mask[..., None], 3, axis=-1)

    columns = [inputs[spec.PERSON], inputs[spec.CLOTH], outputs[spec.WARPED_CLOTH],
               outputs[spec.COARSE], rgb(outputs[spec.ALPHA]), outputs[spec.TRYON], target]
    return np.concatenate(columns, axis=2)


def evaluate(chain, dataset, output_dir=None, batch_size=8, limit=None, log=None):
    """Runs ``chain`` (an inference.chain.Chain) over ``dataset`` items; returns the summary.

    ``dataset`` has len() and read(i) giving the GMM signature inputs, optionally the ground
    truth under TARGET_PERSON / TARGET_PARSE (default: the input person and parse, i.e. paired),
    and 'person_id' / 'cloth_id'. With ``output_dir``, writes metrics.json and one grid PNG per
    item under grids/.
    """
    log = log or (lambda message: None)
    count = len(dataset) if limit is None else min(limit, len(dataset))
    labels = categories.GARMENT_LABELS[chain.category]
    scores = {'model': {m: [] for m in METRICS},
              'composited': {m: [] for m in ('ssim', 'psnr', 'l1')},
              'person_unchanged': {m: [] for m in ('ssim', 'psnr', 'l1')},
              'no_warp': {'warp_iou': []}}
    per_item = []
    for start in range(0, count, batch_size):
        items = [dataset.read(i) for i in range(start, min(start + batch_size, count))]
        inputs = {k: np.stack([item[k] for item in items]) for k in spec.MODULE_INPUTS[spec.GMM]}
        target = np.stack([item.get(TARGET_PERSON, item[spec.PERSON]) for item in items])
        target_parse = np.stack([item.get(TARGET_PARSE, item[spec.PARSE]) for item in items])
        region = np.isin(target_parse, labels)
        outputs = chain(inputs)
        model = {**image_metrics(outputs[spec.TRYON], target),
                 'warp_iou': iou(outputs[spec.WARPED_MASK] >= 128, region)}
        pasted = categories.composite(chain.category, inputs[spec.PERSON], inputs[spec.PARSE],
                                      outputs)
        for m, values in image_metrics(pasted, target).items():
            scores['composited'][m] += list(values)
        unchanged = image_metrics(inputs[spec.PERSON], target)
        no_warp = iou(inputs[spec.CLOTH_MASK] >= 128, region)
        for m in METRICS:
            scores['model'][m] += list(model[m])
        for m in unchanged:
            scores['person_unchanged'][m] += list(unchanged[m])
        scores['no_warp']['warp_iou'] += list(no_warp)
        grids = _grid_image(inputs, outputs, target)
        for k, item in enumerate(items):
            name = f"{item.get('person_id', start + k)}_{item.get('cloth_id', '')}".rstrip('_')
            per_item.append({'item': name, **{m: float(model[m][k]) for m in METRICS}})
            if output_dir:
                images.write_png(os.path.join(output_dir, 'grids', f'{name}.png'), grids[k])
        log(f'evaluated {min(start + batch_size, count)}/{count}')
    summary = {name: {m: float(np.mean(v)) for m, v in metrics.items()}
               for name, metrics in scores.items()}
    summary['count'] = count
    summary['category'] = chain.category
    if output_dir:
        fileio.atomic_write_bytes(os.path.join(output_dir, 'metrics.json'), json.dumps(
                {'summary': summary, 'items': per_item}, indent=1).encode())
    return summary


def table(summary):
    """A plain-text table of a summary (rows: model and baselines)."""
    lines = [f"{'':18} {'SSIM':>7} {'PSNR':>7} {'L1':>7} {'warp IoU':>9}"]
    for name in ('model', 'composited', 'person_unchanged', 'no_warp'):
        row = summary[name]

        def cell(metric, width, fmt, row=row):
            return format(row[metric], fmt).rjust(width) if metric in row else '-'.rjust(width)

        lines.append(f'{name:18} {cell("ssim", 7, ".4f")} {cell("psnr", 7, ".2f")} '
                     f'{cell("l1", 7, ".4f")} {cell("warp_iou", 9, ".4f")}')
    return '\n'.join(lines)
