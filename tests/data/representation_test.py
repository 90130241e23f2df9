"""In-graph person representations against references that follow each original's own code path.

CP-VTON's reference is built with Pillow exactly as cp_dataset.py builds it (Image.resize,
ImageDraw.rectangle); VITON's with NumPy float64 as utils.py / the stage-1 scripts build it.
"""

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image
from PIL import ImageDraw

from everywear_tf import spec
from everywear_tf.data import lip
from everywear_tf.data import representation
from everywear_tf.data import synthetic

from tests import graph_ops

H, W = spec.IMAGE_HEIGHT, spec.IMAGE_WIDTH


def _batch(seed, batch=3):
    """Drawn persons (so parses have real structure) plus random keypoint edge cases."""
    rng = np.random.default_rng(seed)
    people = [synthetic.render_person(rng) for _ in range(batch)]
    person = np.stack([p.image for p in people])
    parse = np.stack([p.parse for p in people])
    keypoints = np.stack([p.keypoints[:, :2] for p in people]).astype(np.float32)
    keypoints += rng.uniform(-0.5, 0.5, keypoints.shape).astype(np.float32)
    # Missing points, points near the border and outside the frame, points in CP-VTON's x<=1 zone.
    edge_cases = {(0, 3): spec.MISSING_KEYPOINT, (1, 4): (0.5, 100.3), (1, 5): (190.7, 254.9),
                  (2, 6): (-30.0, 40.0), (2, 7): (250.0, 40.0), (2, 8): (1.0, 1.0),
                  (2, 9): (1.5, 3.7)}
    for (item, point), value in edge_cases.items():
        keypoints[item % batch, point] = value
    cloth = rng.integers(0, 256, (batch, H, W, 3), dtype=np.uint8)
    return person, parse, keypoints, cloth


def _cpvton_reference(person, parse, keypoints, head_labels):
    """cp_dataset.py's agnostic for one item, [H,W,22] float64."""
    def normalise(a):
        return (np.asarray(a, np.float64) / 255.0 - 0.5) / 0.5

    shape = Image.fromarray(((parse > 0) * 255).astype(np.uint8))
    shape = shape.resize((W // 16, H // 16), Image.BILINEAR).resize((W, H), Image.BILINEAR)
    head = np.isin(parse, head_labels).astype(np.float64)[..., None]
    im = normalise(person)
    channels = [normalise(shape)[..., None], im * head - (1 - head)]
    for x, y in keypoints:
        one = Image.new('L', (W, H))
        if x > 1 and y > 1:
            ImageDraw.Draw(one).rectangle((x - 5, y - 5, x + 5, y + 5), 'white', 'white')
        channels.append(normalise(one)[..., None])
    return np.concatenate(channels, axis=-1)


def _legacy_bilinear_np(image, out_h, out_w):
    in_h, in_w = image.shape[:2]
    out = np.zeros((out_h, out_w) + image.shape[2:])
    for i in range(out_h):
        sy = i * in_h / out_h
        y0 = int(np.floor(sy))
        y1, fy = min(y0 + 1, in_h - 1), sy - y0
        for j in range(out_w):
            sx = j * in_w / out_w
            x0 = int(np.floor(sx))
            x1, fx = min(x0 + 1, in_w - 1), sx - x0
            top = image[y0, x0] * (1 - fx) + image[y0, x1] * fx
            bottom = image[y1, x0] * (1 - fx) + image[y1, x1] * fx
            out[i, j] = top * (1 - fy) + bottom * fy
    return out


def _viton_reference(person, parse, keypoints, cloth):
    """VITON stage 1's 25-channel input for one item, [H,W,25] float64."""
    def signed(a):
        return (np.asarray(a, np.float64) / 255.0 - 0.5) * 2.0

    head = np.isin(parse, lip.VITON_HEAD).astype(np.float64)
    body = (parse != 0).astype(np.float64) - head
    small = body.reshape(16, H // 16, 12, W // 12).mean(axis=(1, 3))
    body = _legacy_bilinear_np(small, H, W)
    pose = np.zeros((H, W, 18))
    for i, (x, y) in enumerate(keypoints):
        if x < 0 or y < 0:
            continue
        x, y = int(x), int(y)
        t, b = max(y - 5, 0), min(y + 5, H - 1)
        left, right = max(x - 5, 0), min(x + 5, W - 1)
        pose[t:b + 1, left:right + 1, i] = 1.0
    return np.concatenate(
        [signed(cloth), body[..., None], signed(person) * head[..., None], pose], axis=-1)


@pytest.mark.parametrize('variant,head_labels', [
    (representation.CPVTON, lip.CPVTON_HEAD),
    (representation.CPVTON_PLUS, lip.CPVTON_PLUS_HEAD),
])
def test_gmm_agnostic_matches_cp_dataset(variant, head_labels):
    person, parse, keypoints, _ = _batch(seed=1)
    got = representation.gmm_agnostic(person, parse, keypoints, variant=variant).numpy()
    assert got.shape == (3, H, W, representation.GMM_AGNOSTIC_CHANNELS)
    for b in range(len(person)):
        want = _cpvton_reference(person[b], parse[b], keypoints[b], head_labels)
        np.testing.assert_allclose(got[b], want, atol=2e-6, err_msg=f'item {b}')


def test_gmm_agnostic_channel_layout_and_ranges():
    person, parse, keypoints, _ = _batch(seed=2)
    agnostic = representation.gmm_agnostic(person, parse, keypoints).numpy()
    assert agnostic.min() >= -1.0 and agnostic.max() <= 1.0
    shape, head, pose = agnostic[..., :1], agnostic[..., 1:4], agnostic[..., 4:]
    # The blurred shape is soft, so it has values strictly between the extremes.
    assert np.any((shape > -0.9) & (shape < 0.9))
    # Head channels carry RGB only on head labels and -1 elsewhere.
    on_head = np.isin(parse, lip.CPVTON_HEAD)
    np.testing.assert_allclose(head[~on_head], -1.0)
    np.testing.assert_allclose(head[on_head], person[on_head] / 127.5 - 1.0, atol=1e-6)
    # Pose channels are exactly +-1.
    assert set(np.unique(pose)) <= {-1.0, 1.0}


def test_pose_squares_are_11x11_and_skip_missing():
    keypoints = np.full((2, 18, 2), spec.MISSING_KEYPOINT, np.float32)
    keypoints[0, 0] = (50.7, 60.2)     # square columns 45..55, rows 55..65
    keypoints[1, 17] = (3.0, 100.0)    # clipped on the left: columns 0..8
    keypoints[1, 2] = (80.0, -3.0)     # negative y: missing
    for min_coordinate in (1.0, None):
        squares = representation.pose_squares(keypoints, H, W, min_coordinate).numpy()
        assert squares.shape == (2, H, W, 18)
        ys, xs = np.nonzero(squares[0, :, :, 0])
        assert (ys.min(), ys.max(), xs.min(), xs.max()) == (55, 65, 45, 55)
        assert squares[0, :, :, 0].sum() == 121
        ys, xs = np.nonzero(squares[1, :, :, 17])
        assert (ys.min(), ys.max(), xs.min(), xs.max()) == (95, 105, 0, 8)
        # Nothing anywhere else: every other keypoint is missing.
        assert squares[0, :, :, 1:].sum() == 0
        assert squares[1, :, :, :17].sum() == 0


def test_pose_rules_differ_only_where_the_originals_do():
    keypoints = np.full((1, 18, 2), spec.MISSING_KEYPOINT, np.float32)
    keypoints[0, 0] = (0.5, 40.0)  # CP-VTON skips x <= 1; VITON draws it
    cpvton = representation.pose_squares(keypoints, H, W, 1.0).numpy()
    viton = representation.pose_squares(keypoints, H, W, None).numpy()
    assert cpvton.sum() == 0
    assert viton[0, :, :, 0].sum() == 11 * 6


def test_edm_input_matches_viton():
    person, parse, keypoints, cloth = _batch(seed=3)
    got = representation.edm_input(person, parse, keypoints, cloth).numpy()
    assert got.shape == (3, H, W, representation.EDM_INPUT_CHANNELS)
    for b in range(len(person)):
        want = _viton_reference(person[b], parse[b], keypoints[b], cloth[b])
        np.testing.assert_allclose(got[b], want, atol=2e-6, err_msg=f'item {b}')


def test_edm_input_channel_layout_and_ranges():
    person, parse, keypoints, cloth = _batch(seed=4)
    x = representation.edm_input(person, parse, keypoints, cloth).numpy()
    product, body, head, pose = x[..., :3], x[..., 3:4], x[..., 4:7], x[..., 7:]
    np.testing.assert_allclose(product, cloth / 127.5 - 1.0, atol=1e-6)
    assert body.min() >= 0.0 and body.max() <= 1.0
    off_head = ~np.isin(parse, lip.VITON_HEAD)
    assert np.all(head[off_head] == 0.0)
    assert head.min() >= -1.0 and head.max() <= 1.0
    assert set(np.unique(pose)) <= {0.0, 1.0}


def test_gmm_cloth_inputs():
    rng = np.random.default_rng(5)
    cloth = rng.integers(0, 256, (2, H, W, 3), dtype=np.uint8)
    mask = rng.integers(0, 256, (2, H, W), dtype=np.uint8)
    rgb = representation.gmm_cloth(cloth, mask, representation.CPVTON).numpy()
    np.testing.assert_allclose(rgb, cloth / 127.5 - 1.0, atol=1e-6)
    binary = representation.gmm_cloth(cloth, mask, representation.CPVTON_PLUS).numpy()
    np.testing.assert_array_equal(binary[..., 0], (mask >= 128).astype(np.float32))
    with pytest.raises(ValueError, match='unknown GMM variant'):
        representation.gmm_cloth(cloth, mask, 'viton')


def test_cloth_on_person_is_white_outside_the_garment():
    person, parse, _, _ = _batch(seed=6, batch=2)
    im_c = representation.cloth_on_person(person, parse).numpy()
    region = np.isin(parse, lip.CPVTON_CLOTH)
    np.testing.assert_allclose(im_c[~region], 1.0)
    np.testing.assert_allclose(im_c[region], person[region] / 127.5 - 1.0, atol=1e-6)


def test_builders_trace_with_dynamic_batch_and_core_ops_only():
    specs = {key: tf.TensorSpec(shape, dtype) for key, (dtype, shape) in spec.INPUT_SPECS.items()}

    @tf.function(input_signature=[specs[spec.PERSON], specs[spec.PARSE], specs[spec.KEYPOINTS],
                                  specs[spec.CLOTH], specs[spec.CLOTH_MASK]])
    def build(person, parse, keypoints, cloth, cloth_mask):
        return (representation.gmm_agnostic(person, parse, keypoints),
                representation.gmm_cloth(cloth, cloth_mask, representation.CPVTON_PLUS),
                representation.edm_input(person, parse, keypoints, cloth))

    assert graph_ops.custom_ops(build.get_concrete_function()) == []
    for batch in (1, 2):
        person, parse, keypoints, cloth = _batch(seed=7, batch=batch)
        mask = np.zeros((batch, H, W), np.uint8)
        agnostic, cm, edm = build(person, parse, keypoints, cloth, mask)
        assert agnostic.shape == (batch, H, W, 22)
        assert cm.shape == (batch, H, W, 1)
        assert edm.shape == (batch, H, W, 25)
