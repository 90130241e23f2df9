"""The originals' training losses, term by term
(VITON stage 1 and 2 training, CP-VTON / CP-VTON+ GMM training).

Each function returns a dict of named scalar terms plus ``'total'``, so trainers log exactly what
they optimise.
"""

import tensorflow as tf

# VITON's per-layer normalisers (model_zalando_mask_content.py L198-216).
PERCEPTUAL_LAYERS = {
        'conv1_2': 1.0 / 5.3 * 2.5,
        'conv2_2': 1.0 / 2.7 / 1.2,
        'conv3_2': 1.0 / 1.35 / 2.3,
        'conv4_2': 1.0 / 0.67 / 8.2,
        'conv5_2': 1.0 / 0.16,
}
STAGE2_PERCEPTUAL_LAYERS = ('conv3_2', 'conv4_2', 'conv5_2')


def l1(a, b):
    """Mean absolute difference of ``a`` and ``b`` over every element (a scalar)."""
    return tf.reduce_mean(tf.abs(a - b))


def grid_interval_consistency(grid):
    """CP-VTON+'s GicLoss: Σ over the interior of ||Δx left| − |Δx right|| + ||Δy up| − |Δy down||.

    Not normalised; the trainer divides by B·H·W as CP-VTON+'s train.py does.
    """
    gx, gy = grid[..., 0], grid[..., 1]
    centre_x = gx[:, 1:-1, 1:-1]
    left = tf.abs(gx[:, 1:-1, :-2] - centre_x)
    right = tf.abs(gx[:, 1:-1, 2:] - centre_x)
    centre_y = gy[:, 1:-1, 1:-1]
    up = tf.abs(gy[:, :-2, 1:-1] - centre_y)
    down = tf.abs(gy[:, 2:, 1:-1] - centre_y)
    return tf.reduce_sum(tf.abs(left - right)) + tf.reduce_sum(tf.abs(up - down))


def gmm_loss(warped_cloth, target, grid=None, gic_weight=0.0, grid_target=None,
             grid_weight=0.0, grid_mask=None):
    """L1(warped cloth, person's cloth region im_c) [+ gic_weight · Lgic / (B·H·W); CP-VTON+: 40]
    [+ grid_weight · L1(grid, grid_target)].

    The last term is this project's addition, not the originals': with synthetic data the true
    sampling grid is known, and pulling GMM's grid towards it teaches warps that follow the body
    without folding (off unless ``grid_weight``). With ``grid_mask`` ([B,H,W], 1 where the
    garment lands) the L1 is the mean over those pixels only: the drawn spline's extrapolation
    far outside the garment, which a 5×5 TPS cannot follow, then does not count.
    """
    terms = {'l1': l1(warped_cloth, target)}
    total = terms['l1']
    if gic_weight:
        shape = tf.cast(tf.shape(grid), tf.float32)
        terms['gic'] = grid_interval_consistency(grid) / (shape[0] * shape[1] * shape[2])
        total += gic_weight * terms['gic']
    if grid_weight:
        if grid_mask is None:
            terms['grid_l1'] = l1(grid, grid_target)
        else:
            weights = tf.cast(grid_mask, grid.dtype)[..., None]
            terms['grid_l1'] = (tf.reduce_sum(tf.abs(grid - grid_target) * weights)
                                / tf.maximum(2 * tf.reduce_sum(weights), 1))
        total += grid_weight * terms['grid_l1']
    terms['total'] = total
    return terms


def perceptual(vgg, real, fake, layers):
    """Σ normaliser · mean|VGG(real) − VGG(fake)| over ``layers``, / len(layers) / 128."""
    real_features = vgg(real, outputs=tuple(layers))
    fake_features = vgg(fake, outputs=tuple(layers))
    total = tf.add_n([PERCEPTUAL_LAYERS[name] * l1(real_features[name], fake_features[name])
                      for name in layers])
    return total / float(len(layers)) / 128.0


def edm_loss(mask, image, target_mask, target_image, vgg=None, mask_weight=1.0,
             content_weight=1.0, perceptual_weight=3.0):
    """VITON stage 1: mask L1 + content L1 + 3 · perceptual (conv1_2..conv5_2, /5/128)."""
    terms = {'mask_l1': l1(mask, target_mask), 'content_l1': l1(image, target_image)}
    total = mask_weight * terms['mask_l1'] + content_weight * terms['content_l1']
    if perceptual_weight > 0:
        if vgg is None:
            raise ValueError('a perceptual weight > 0 needs VGG-19 weights')
        terms['perceptual'] = perceptual(vgg, target_image, image, tuple(PERCEPTUAL_LAYERS))
        total += perceptual_weight * terms['perceptual']
    terms['total'] = total
    return terms


def total_variation(alpha):
    """tf.image.total_variation: a per-image *sum* of |vertical| + |horizontal| differences."""
    vertical = tf.reduce_sum(tf.abs(alpha[:, 1:] - alpha[:, :-1]), axis=[1, 2, 3])
    horizontal = tf.reduce_sum(tf.abs(alpha[:, :, 1:] - alpha[:, :, :-1]), axis=[1, 2, 3])
    return vertical + horizontal


def rm_loss(tryon, target_image, alpha, vgg=None, content_weight=0.2, perceptual_weight=0.8,
            alpha_weight=0.1, tv_weight=5e-6):
    """VITON stage 2: 0.2·L1 + 0.8·perceptual(conv3_2..5_2, /3/128) − 0.1·mean α + 5e-6·TV(α).

    ``alpha`` is the masked α (after multiplying by the clothing mask), as the original's losses.
    """
    terms = {'content_l1': l1(tryon, target_image), 'alpha_mean': tf.reduce_mean(alpha),
             'tv': tf.reduce_mean(total_variation(alpha))}
    total = (content_weight * terms['content_l1'] - alpha_weight * terms['alpha_mean']
             + tv_weight * terms['tv'])
    if perceptual_weight > 0:
        if vgg is None:
            raise ValueError('a perceptual weight > 0 needs VGG-19 weights')
        terms['perceptual'] = perceptual(vgg, target_image, tryon, STAGE2_PERCEPTUAL_LAYERS)
        total += perceptual_weight * terms['perceptual']
    terms['total'] = total
    return terms
