"""The three resamplers against independent references: NumPy float64 and Pillow itself."""

import numpy as np
import PIL
import pytest
import tensorflow as tf
from PIL import Image

from everywear_tf.ops import resize

from tests import graph_ops


def _legacy_bilinear(image, out_h, out_w):
    """TF1 resize_bilinear, align_corners=False, no half-pixel centres: src = dst · in / out."""
    _, in_h, in_w, _ = image.shape

    def axis(n_out, n_in):
        src = np.arange(n_out) * (n_in / n_out)
        lo = np.floor(src).astype(int)
        hi = np.minimum(lo + 1, n_in - 1)
        return lo, hi, src - lo

    y0, y1, fy = axis(out_h, in_h)
    x0, x1, fx = axis(out_w, in_w)
    image = image.astype(np.float64)
    top = image[:, y0][:, :, x0] * (1 - fx)[:, None] + image[:, y0][:, :, x1] * fx[:, None]
    bottom = image[:, y1][:, :, x0] * (1 - fx)[:, None] + image[:, y1][:, :, x1] * fx[:, None]
    return top * (1 - fy)[:, None, None] + bottom * fy[:, None, None]


def _area(image, out_h, out_w):
    """Block means for integer factors."""
    b, h, w, c = image.shape
    return image.astype(np.float64).reshape(b, out_h, h // out_h, out_w, w // out_w, c).mean((2, 4))


@pytest.mark.parametrize('shape,size', [((2, 16, 12, 1), (256, 192)), ((3, 5, 7, 2), (11, 4)),
                                        ((2, 9, 9, 3), (9, 20))])
def test_legacy_bilinear_matches_reference(shape, size):
    image = np.random.default_rng(0).uniform(size=shape).astype(np.float32)
    got = resize.legacy_resize_bilinear(image, size).numpy()
    np.testing.assert_allclose(got, _legacy_bilinear(image, *size), atol=1e-5)


def test_legacy_bilinear_is_not_half_pixel():
    image = np.random.default_rng(1).uniform(size=(2, 16, 12, 1)).astype(np.float32)
    legacy = resize.legacy_resize_bilinear(image, (256, 192)).numpy()
    modern = tf.image.resize(image, (256, 192), 'bilinear').numpy()
    assert np.abs(legacy - modern).max() > 0.05


@pytest.mark.parametrize('shape,size', [((2, 256, 192, 1), (16, 12)), ((3, 12, 8, 2), (4, 2))])
def test_area_is_block_mean(shape, size):
    image = np.random.default_rng(2).uniform(size=shape).astype(np.float32)
    np.testing.assert_allclose(resize.resize_area(image, size), _area(image, *size), atol=1e-5)


PILLOW_13 = int(PIL.__version__.split('.')[0]) >= 13


def _pillow(batch, size):
    """Pillow's bilinear resize as Pillow 13 does it (the order the op follows, see its
    docstring). Pillow < 13 (apache-beam 2.77 needs it) always resized horizontally first, so
    there the reference is Pillow's two one-axis resizes in Pillow 13's order; each is a single
    pass, the same in every version."""
    out_h, out_w = size

    def resized(item):
        image = Image.fromarray(item[..., 0])
        if PILLOW_13:
            return np.asarray(image.resize((out_w, out_h), Image.BILINEAR))
        height, width = item.shape[:2]
        first = (width, out_h) if out_h * width < out_w * height else (out_w, height)
        return np.asarray(image.resize(first, Image.BILINEAR).resize((out_w, out_h),
                                                                    Image.BILINEAR))

    return np.stack([resized(item) for item in batch])[..., None]


@pytest.mark.parametrize('in_size,out_size', [((256, 192), (16, 12)), ((16, 12), (256, 192)),
                                              ((37, 53), (11, 70)), ((53, 37), (70, 11)),
                                              ((20, 30), (20, 7)), ((31, 17), (31, 17))])
def test_pil_bilinear_is_bit_exact(in_size, out_size):
    rng = np.random.default_rng(in_size[0])
    batch = rng.integers(0, 256, (3,) + in_size + (1,), dtype=np.uint8)
    batch[1] = (rng.uniform(size=in_size + (1,)) > 0.5) * 255  # silhouettes, as CP-VTON blurs
    batch[2] = 255
    got = resize.pil_resize_bilinear_uint8(tf.constant(batch, tf.float32), out_size).numpy()
    np.testing.assert_array_equal(got, _pillow(batch, out_size))


def test_dynamic_batch_and_core_ops_only():
    def blur(x):
        x = resize.pil_resize_bilinear_uint8(x, (16, 12))
        return resize.legacy_resize_bilinear(resize.resize_area(x, (4, 3)), (256, 192))

    concrete = tf.function(blur).get_concrete_function(
        tf.TensorSpec([None, 256, 192, 1], tf.float32))
    assert graph_ops.custom_ops(concrete) == []
    assert concrete(tf.zeros([3, 256, 192, 1])).shape == (3, 256, 192, 1)


@pytest.mark.parametrize('shape,size', [((3, 256, 192, 1), (16, 12)), ((2, 12, 8, 3), (4, 2)),
                                        ((2, 30, 20, 2), (7, 6))])
def test_area_equals_the_resize_area_kernel_and_compiles_under_xla(shape, size):
    from tests import baselines
    rng = np.random.default_rng(shape[1])
    image = rng.normal(size=shape).astype(np.float32)
    body = ((rng.uniform(size=shape) > 0.5) * 1.0 - (rng.uniform(size=shape) > 0.8)).astype(
            np.float32)  # VITON's body: foreground minus head, values in {-1, 0, 1}
    for x in (image, body):
        expected = baselines.resize_area(x, size).numpy()
        np.testing.assert_allclose(resize.resize_area(x, size), expected, rtol=0, atol=1e-6)
        if shape[1] % size[0] == 0 and shape[2] % size[1] == 0:  # else the kernel is kept
            compiled = tf.function(lambda v: resize.resize_area(v, size), jit_compile=True)
            np.testing.assert_allclose(compiled(x), expected, rtol=0, atol=1e-6)
    if shape[1:3] == (256, 192):  # 256-pixel blocks: sums of {-1, 0, 1} divide exactly
        np.testing.assert_array_equal(resize.resize_area(body, size),
                                      baselines.resize_area(body, size))
