"""relight: the photo's shading on the new garment, the person's skin where it uncovers them."""

import numpy as np
import pytest

from everywear_tf import spec
from everywear_tf.data import frames
from everywear_tf.data import keypoints as kp
from everywear_tf.data import lip
from everywear_tf.inference import relight

H, W = spec.IMAGE_HEIGHT, spec.IMAGE_WIDTH
ORANGE = np.array([220.0, 110.0, 40.0])
RED = np.array([200.0, 40.0, 50.0])
SKIN = np.array([190.0, 140.0, 110.0])
BACKDROP = np.array([235.0, 235.0, 235.0])


def _frame(image, parse, joints):
    """A frame of ``image`` (float, rounded to uint8) and ``parse``, with ``joints`` {keypoint:
    (x, y)} found and the others not, at the photo's own scale."""
    keypoints = np.zeros((spec.NUM_KEYPOINTS, 3), np.float32)
    for joint, (x, y) in joints.items():
        keypoints[joint] = (x, y, 1)
    return frames.Frame(image=np.clip(np.round(image), 0, 255).astype(np.uint8), parse=parse,
                        keypoints=keypoints, transform=frames.scale_translate(1.0, 0.0, 0.0),
                        source_size=(H, W))


def _scene(shading=None):
    """A frame of a person in an orange long sleeve (torso rows 60..230, cols 50..142; arms down
    cols 20..50 and 142..172 from row 70), the face above; the new red garment covers the torso
    only. Returns (frame, tryon, clothing mask, warped mask, selection)."""
    parse = np.zeros((H, W), np.uint8)
    parse[60:230, 50:142] = lip.UPPER_CLOTHES
    parse[70:200, 20:50] = lip.UPPER_CLOTHES  # the sleeves cover both arms
    parse[70:200, 142:172] = lip.UPPER_CLOTHES
    parse[15:58, 76:116] = lip.FACE
    image = np.empty((H, W, 3))
    image[:] = BACKDROP
    image[parse == lip.FACE] = SKIN
    cloth = parse == lip.UPPER_CLOTHES
    light = np.ones((H, W)) if shading is None else shading
    image[cloth] = (ORANGE * light[..., None])[cloth]
    frame = _frame(image, parse, {kp.R_SHOULDER: (35, 75), kp.R_ELBOW: (35, 135),
                                  kp.R_WRIST: (35, 195), kp.L_SHOULDER: (157, 75),
                                  kp.L_ELBOW: (157, 135), kp.L_WRIST: (157, 195)})
    garment = np.zeros((H, W), np.uint8)
    garment[60:230, 50:142] = 255
    tryon = np.empty((H, W, 3), np.uint8)
    tryon[:] = (128, 128, 128)  # EDM's grey wherever RM did not put the garment
    tryon[garment > 0] = RED.astype(np.uint8)
    clothing = garment.copy()
    clothing[70:200, 20:50] = 255  # RM's mask reaching over the arms where no garment is warped
    selection = np.where((parse == lip.UPPER_CLOTHES) | (clothing > 0), 255, 0).astype(np.uint8)
    return frame, tryon, clothing, garment, selection


def _relit(scene):
    frame, tryon, clothing, warped, selection = scene
    return relight.relight(spec.MEN_LONG, frame, tryon, clothing, warped, selection)


def test_flat_light_leaves_the_garment_as_rm_made_it():
    out = _relit(_scene())
    inner = (slice(64, 226), slice(54, 138))
    np.testing.assert_array_equal(out[inner], np.broadcast_to(RED.astype(np.uint8),
                                                             out[inner].shape))


def test_the_photos_shading_carries_over_with_its_colour_divided_out():
    cols = np.arange(W)
    folds = 1.0 + 0.15 * np.sin(2 * np.pi * cols / 40.0)  # soft vertical folds, ±15%
    shading = np.broadcast_to(folds, (H, W))
    out = _relit(_scene(shading)).astype(np.float64)
    rows, columns = slice(80, 210), slice(64, 128)  # away from the region's edges
    gain = relight.luminance(out[rows, columns]) / relight.luminance(RED[None, None])
    expected = shading[rows, columns]
    assert np.corrcoef(gain.ravel(), expected.ravel())[0, 1] > 0.95
    # Band-passed: folds narrower than the coarse scale keep most of their depth.
    depth = np.sum((gain - 1) * (expected - 1)) / np.sum((expected - 1) ** 2)
    assert 0.5 < depth < 1.05
    # The garment keeps its own hue: shading scales its channels alike.
    ratio = out[rows, columns] / RED
    assert np.abs(ratio - ratio.mean(axis=-1, keepdims=True)).max() < 0.05


def test_a_print_of_another_colour_is_not_taken_for_light():
    frame, tryon, clothing, warped, selection = _scene()
    image = frame.image.copy()
    image[110:150, 80:112] = (60, 60, 160)  # a blue patch on the orange garment
    frame = frames.Frame(image=image, parse=frame.parse, keypoints=frame.keypoints,
                         transform=frame.transform, source_size=frame.source_size)
    out = relight.relight(spec.MEN_LONG, frame, tryon, clothing, warped, selection)
    inner = out[64:226, 54:138].astype(np.float64)
    assert np.abs(inner - RED).max() <= 8


def test_a_black_garment_gives_no_shading():
    cols = np.arange(W)
    frame, tryon, clothing, warped, selection = _scene()
    image = frame.image.copy()
    cloth = frame.parse == lip.UPPER_CLOTHES
    noise = np.random.default_rng(0).uniform(0, 14, (H, W))
    image[cloth] = np.clip(6 + noise + 4 * np.sin(cols / 3.0), 0, 255)[cloth][:, None]
    frame = frames.Frame(image=image, parse=frame.parse, keypoints=frame.keypoints,
                         transform=frame.transform, source_size=frame.source_size)
    out = relight.relight(spec.MEN_LONG, frame, tryon, clothing, warped, selection)
    np.testing.assert_array_equal(out[64:226, 54:138],
                                  np.broadcast_to(RED.astype(np.uint8), (162, 84, 3)))


def test_uncovered_arms_get_the_persons_skin_not_edms_grey():
    out = _relit(_scene()).astype(np.float64)
    for columns in (slice(30, 41), slice(152, 163)):  # along both arm axes
        arm = out[90:190, columns]
        # The face's tone (no arm shows), darkened at most by the limb's rounding.
        assert np.abs(arm / SKIN - arm.mean(axis=(0, 1)) / SKIN).max() < 0.35
        assert np.all(np.abs(arm / arm[..., :1] - SKIN / SKIN[0]) < 0.02)
        assert np.abs(arm - (128, 128, 128)).max(axis=-1).min() > 20


def test_visible_skin_stays_the_photos_own():
    frame, tryon, clothing, warped, selection = _scene()
    parse = frame.parse.copy()
    parse[70:200, 142:172] = lip.LEFT_ARM  # this arm is bare in the photo
    image = frame.image.copy()
    image[parse == lip.LEFT_ARM] = (170, 120, 90)
    frame = frames.Frame(image=image, parse=parse, keypoints=frame.keypoints,
                         transform=frame.transform, source_size=frame.source_size)
    out = relight.relight(spec.MEN_LONG, frame, tryon, clothing, warped, selection)
    # (beyond the seam: the garment grown by two pixels, softened over one)
    np.testing.assert_array_equal(out[72:198, 146:170], image[72:198, 146:170])
    # The other (covered) arm takes its tone from the bare one, the median of visible skin.
    arm = out[100:180, 33:38].astype(np.float64)
    assert np.abs(arm / arm[..., :1] - np.array([170, 120, 90]) / 170).max() < 0.02


def test_visible_skin_stays_the_photos_own_where_edms_mask_covers_it():
    """EDM's clothing mask over a bare arm the warp leaves alone: the photo's arm, not a painted
    one."""
    frame, tryon, clothing, warped, selection = _scene()
    parse = frame.parse.copy()
    parse[70:200, 142:172] = lip.LEFT_ARM
    image = frame.image.copy()
    image[parse == lip.LEFT_ARM] = (170, 120, 90)
    frame = frames.Frame(image=image, parse=parse, keypoints=frame.keypoints,
                         transform=frame.transform, source_size=frame.source_size)
    clothing = clothing.copy()
    clothing[70:200, 142:172] = 255
    selection = np.maximum(selection, clothing)
    out = relight.relight(spec.MEN_LONG, frame, tryon, clothing, warped, selection)
    np.testing.assert_array_equal(out[72:198, 146:170], image[72:198, 146:170])


def _crossed_forearm_scene():
    """The scene's right arm bent at the elbow (35, 135), its forearm and hand lying across the
    torso to the wrist (110, 150), bare; the new garment's warp lies under it."""
    frame, tryon, clothing, warped, selection = _scene()
    parse = frame.parse.copy()
    parse[140:160, 36:118] = lip.RIGHT_ARM
    image = frame.image.copy()
    image[parse == lip.RIGHT_ARM] = (170, 120, 90)
    keypoints = frame.keypoints.copy()
    keypoints[kp.R_WRIST] = (110, 150, 1)
    frame = frames.Frame(image=image, parse=parse, keypoints=keypoints,
                         transform=frame.transform, source_size=frame.source_size)
    return frame, tryon, clothing, warped, selection


def test_a_forearm_across_the_chest_stays_in_front_of_a_t_shirt():
    frame, tryon, clothing, warped, selection = _crossed_forearm_scene()
    out = relight.relight(spec.MEN_TSHIRTS, frame, tryon, clothing, warped, selection)
    inner = (slice(142, 158), slice(56, 116))  # over the torso, beyond the seam
    np.testing.assert_array_equal(out[inner], frame.image[inner])
    # the garment round it is still the new one
    np.testing.assert_array_equal(out[100:130, 60:130],
                                  np.broadcast_to(RED.astype(np.uint8), (30, 70, 3)))


def test_a_long_sleeve_covers_the_forearm():
    frame, tryon, clothing, warped, selection = _crossed_forearm_scene()
    out = relight.relight(spec.MEN_LONG, frame, tryon, clothing, warped, selection)
    np.testing.assert_array_equal(out[142:158, 56:116],
                                  np.broadcast_to(RED.astype(np.uint8), (16, 60, 3)))


def _reference_forearms(parse, keypoints):
    """Pixel by pixel: an arm pixel goes with the forearm when its nearest elbow-wrist segment
    is nearer than its nearest shoulder-elbow one."""
    def distance(point, a, b):
        ab, ap = b - a, point - a
        t = min(1.0, max(0.0, float(ap @ ab) / float(ab @ ab))) if ab @ ab > 0 else 0.0
        return float(np.hypot(*(point - (a + t * ab))))

    arms = ((kp.R_SHOULDER, kp.R_ELBOW, kp.R_WRIST), (kp.L_SHOULDER, kp.L_ELBOW, kp.L_WRIST))
    out = np.zeros(parse.shape, bool)
    for y, x in zip(*np.nonzero(np.isin(parse, (lip.LEFT_ARM, lip.RIGHT_ARM)))):
        point = np.array([x, y], np.float64)
        fore, upper = np.inf, np.inf
        for shoulder, elbow, wrist in arms:
            if keypoints[elbow, 2] > 0 and keypoints[wrist, 2] > 0:
                fore = min(fore, distance(point, keypoints[elbow, :2], keypoints[wrist, :2]))
            if keypoints[shoulder, 2] > 0 and keypoints[elbow, 2] > 0:
                upper = min(upper, distance(point, keypoints[shoulder, :2], keypoints[elbow, :2]))
        out[y, x] = fore < upper
    return out


@pytest.mark.parametrize('seed', [0, 1, 2])
def test_forearms_match_a_pixel_loop(seed):
    rng = np.random.default_rng(seed)
    shape = (32, 24)
    parse = rng.choice([0, lip.UPPER_CLOTHES, lip.LEFT_ARM, lip.RIGHT_ARM], size=shape)
    keypoints = np.concatenate([rng.uniform(0, (shape[1], shape[0]), (spec.NUM_KEYPOINTS, 2)),
                                (rng.uniform(size=(spec.NUM_KEYPOINTS, 1)) > 0.2)], axis=1)
    got = relight.forearms(parse, keypoints)
    np.testing.assert_array_equal(got, _reference_forearms(parse, keypoints))
    if seed == 0:
        assert 0 < got.sum() < np.isin(parse, (lip.LEFT_ARM, lip.RIGHT_ARM)).sum()


def test_outside_the_selection_nothing_changes():
    frame, tryon, clothing, warped, selection = _scene(
            np.broadcast_to(1.0 + 0.1 * np.sin(np.arange(W) / 7.0), (H, W)))
    out = relight.relight(spec.MEN_LONG, frame, tryon, clothing, warped, selection)
    outside = selection < 128
    np.testing.assert_array_equal(out[outside], tryon[outside])


def test_no_pose_no_painted_limbs_but_no_grey_either():
    frame, tryon, clothing, warped, selection = _scene()
    frame = frames.Frame(image=frame.image, parse=frame.parse,
                         keypoints=np.zeros_like(frame.keypoints), transform=frame.transform,
                         source_size=frame.source_size)
    out = relight.relight(spec.MEN_LONG, frame, tryon, clothing, warped, selection)
    arm = out[90:190, 30:41].astype(np.float64)
    assert np.abs(arm - (128, 128, 128)).max(axis=-1).min() > 20  # the surroundings flow in


@pytest.mark.parametrize('shape', [(7, 5), (256, 192)])
def test_masked_blur_is_normalised_convolution(shape):
    rng = np.random.default_rng(1)
    values = rng.uniform(0, 255, shape)
    weight = rng.uniform(size=shape) > 0.3
    blurred = relight.masked_blur(values, weight, 1.5)
    constant = relight.masked_blur(np.full(shape, 42.0), weight, 1.5)
    np.testing.assert_allclose(constant[constant != 0], 42.0, rtol=1e-9)
    assert blurred.min() >= values[weight].min() - 1e-9
    assert blurred.max() <= values[weight].max() + 1e-9


def _grey_backend(category, inputs):
    """Stands in for the networks: the new garment is a red box on the torso, RM paints the rest
    of its clothing mask EDM's grey, the clothing mask covers the old garment and the arms."""
    batch = len(inputs[spec.PERSON])
    parse = inputs[spec.PARSE]
    garment = np.zeros(parse.shape, np.uint8)
    garment[:, 90:230, 55:137] = 255
    clothing = np.where(np.isin(parse, (lip.UPPER_CLOTHES, lip.LEFT_ARM, lip.RIGHT_ARM))
                        | (garment > 0), 255, 0).astype(np.uint8)
    tryon = np.where(garment[..., None] > 0, np.uint8(200), np.uint8(128)).astype(np.uint8)
    tryon = np.broadcast_to(tryon, parse.shape + (3,)).copy()
    tryon[garment > 0] = RED.astype(np.uint8)
    return {spec.TRYON: tryon, spec.CLOTHING_MASK: clothing, spec.WARPED_MASK: garment,
            spec.WARPED_CLOTH: tryon, spec.TPS_MASK: garment,
            spec.THETA: np.zeros((batch, 50), np.float32)}


def test_try_on_pastes_the_relit_try_on_and_can_leave_it_as_rm_made_it():
    from everywear_tf import demo
    from everywear_tf.data import images
    from everywear_tf.data import keypoints as keypoint_files
    from everywear_tf.data import parsing
    from everywear_tf.inference import pipeline
    photo = images.read_image(demo.PERSON)
    parse = parsing.read_parse(demo.PERSON_PARSE, photo.shape[:2])
    points = keypoint_files.read_keypoints(demo.PERSON_POSE)
    garment = images.read_image(demo.TSHIRT)
    mask = images.read_mask(demo.TSHIRT_MASK)
    lit = pipeline.try_on(_grey_backend, spec.MEN_TSHIRTS, photo, parse, points, garment, mask)
    plain = pipeline.try_on(_grey_backend, spec.MEN_TSHIRTS, photo, parse, points, garment, mask,
                            relit=False)
    assert plain.tryon is None and lit.tryon is not None
    np.testing.assert_array_equal(lit.composed()[lit.selection > 0],
                                  lit.tryon[lit.selection > 0])
    np.testing.assert_array_equal(lit.images()['_fg'][lit.selection > 0],
                                  lit.tryon[lit.selection > 0])
    # Outside what was pasted, both are the photo's own pixels.
    untouched = (lit.alpha == 0) & (plain.alpha == 0)
    np.testing.assert_array_equal(lit.final[untouched], photo[untouched])
    np.testing.assert_array_equal(plain.final[untouched], photo[untouched])
    # RM's grey where the arms are: pasted as is without relight, the person's skin with it.
    grey = np.all(plain.final == 128, axis=-1)
    assert grey.sum() > 500
    assert np.all(lit.final == 128, axis=-1).sum() < 0.05 * grey.sum()


def _reference_limb_distance(keypoints, frame, shape):
    """Pixel by pixel: the nearest point of each limb segment, found by a dense sampling of it;
    behind a chain's first joint (shoulder, hip) no corridor."""
    chains, (a, b), share = relight._LIMBS[frame]
    radius = share * np.hypot(*(keypoints[a, :2] - keypoints[b, :2]))
    out = np.full(shape, np.inf)
    steps = np.linspace(0.0, 1.0, 4001)
    for chain in chains:
        for start, end in zip(chain[:-1], chain[1:]):
            p, q = keypoints[start, :2], keypoints[end, :2]
            samples = p + steps[:, None] * (q - p)
            axis = (q - p) / np.hypot(*(q - p))
            for y in range(shape[0]):
                for x in range(shape[1]):
                    point = np.array([x, y], np.float64)
                    if start == chain[0] and (point - p) @ axis < 0:
                        continue
                    d = np.hypot(*(samples - point).T).min() / radius
                    out[y, x] = min(out[y, x], d)
    return out


@pytest.mark.parametrize('frame', [spec.UPPER_FRAME, spec.BODY_FRAME])
def test_limb_distance_matches_numpy(frame):
    rng = np.random.default_rng(7)
    shape = (24, 18)
    for _ in range(3):  # a few random poses, every joint found
        keypoints = np.concatenate([rng.uniform(0, (shape[1], shape[0]), (spec.NUM_KEYPOINTS, 2)),
                                    np.ones((spec.NUM_KEYPOINTS, 1))], axis=1)
        got = relight.limb_distance(keypoints, frame, shape)
        want = _reference_limb_distance(keypoints, frame, shape)
        assert np.array_equal(np.isinf(got), np.isinf(want))
        finite = np.isfinite(want)
        assert finite.mean() > 0.2
        # the reference samples each segment every 1/4000 of its length
        np.testing.assert_allclose(got[finite], want[finite], atol=2e-3)


def test_the_arm_corridor_ends_square_at_the_shoulder():
    """What a narrower garment uncovers beyond the shoulder is the old garment's outline (a puffy
    shoulder), not an arm: no skin is painted there."""
    frame, *_ = _scene()
    distance = relight.limb_distance(frame.keypoints, spec.UPPER_FRAME, (H, W))
    assert (distance[60:75, 25:46] > 1).all()  # above the right shoulder (35, 75)
    assert (distance[76:80, 30:41] < 1).all()  # just below it, on the arm
    assert (distance[100, 30:41] < 1).all()


NAVY = np.array([40.0, 50.0, 90.0])
DARK_GREY = np.array([70.0, 65.0, 60.0])


def _pants_scene(old_hem):
    """A body frame of a person in dark grey trousers down to row ``old_hem`` (legs at cols
    60..90 and 102..132 from the hips at row 130), shoes below them; the new navy pants' warp
    ends at row 215 and RM faded its last three rows into the coarse person's grey. Returns
    (frame, tryon, clothing mask, warped mask, selection, warped cloth)."""
    parse = np.zeros((H, W), np.uint8)
    for cols in (slice(60, 90), slice(102, 132)):
        parse[130:old_hem + 1, cols] = lip.PANTS
        parse[old_hem + 1:old_hem + 10, cols] = lip.LEFT_SHOE
        parse[140:old_hem + 1, cols.start - 10:cols.start] = lip.LEFT_LEG  # a bare calf
    image = np.empty((H, W, 3))
    image[:] = BACKDROP
    image[parse == lip.PANTS] = DARK_GREY
    image[parse == lip.LEFT_LEG] = SKIN
    frame = _frame(image, parse, {kp.R_HIP: (75, 130), kp.R_KNEE: (75, 175),
                                  kp.R_ANKLE: (75, 220), kp.L_HIP: (117, 130),
                                  kp.L_KNEE: (117, 175), kp.L_ANKLE: (117, 220)})
    warped = np.zeros((H, W), np.uint8)
    warped[130:216, 60:90] = 255
    warped[130:216, 102:132] = 255
    cloth = np.full((H, W, 3), 255, np.uint8)
    cloth[warped > 0] = NAVY.astype(np.uint8)
    tryon = np.empty((H, W, 3), np.uint8)
    tryon[:] = (128, 128, 128)
    tryon[warped > 0] = NAVY.astype(np.uint8)
    tryon[213:216] = (128, 128, 128)
    selection = np.where(np.isin(parse, (lip.PANTS, lip.LEFT_LEG)) | (warped > 0), 255,
                         0).astype(np.uint8)
    return frame, tryon, warped.copy(), warped, selection, cloth


def test_full_length_pants_fall_to_the_old_hem_in_the_garments_colour():
    frame, tryon, clothing, warped, selection, cloth = _pants_scene(old_hem=226)
    out = relight.relight(spec.MEN_PANTS, frame, tryon, clothing, warped, selection, cloth)
    # from two rows inside the warp down to the old hem, beyond the one-pixel seam
    np.testing.assert_array_equal(out[205:226, 62:88],
                                  np.broadcast_to(NAVY.astype(np.uint8), (21, 26, 3)))
    # without the warped cloth, the hem takes the try-on's own colour at the source row
    out = relight.relight(spec.MEN_PANTS, frame, tryon, clothing, warped, selection)
    np.testing.assert_array_equal(out[205:212, 62:88],
                                  np.broadcast_to(NAVY.astype(np.uint8), (7, 26, 3)))
    np.testing.assert_array_equal(out[214:226, 62:88],
                                  np.broadcast_to(np.uint8(128), (12, 26, 3)))


def test_a_hem_far_above_the_old_one_is_left_alone():
    old_hem = 240
    assert old_hem - 213 > relight.HEM_REACH * H
    frame, tryon, clothing, warped, selection, cloth = _pants_scene(old_hem)
    out = relight.relight(spec.MEN_PANTS, frame, tryon, clothing, warped, selection, cloth)
    legs = out[225:old_hem, 62:88].astype(np.float64)
    assert np.abs(legs - NAVY).max(axis=-1).min() > 40  # painted skin, not the garment


def _reference_hem_drop(core, new, old, reach):
    height, width = core.shape
    drop = np.zeros(core.shape, bool)
    source = np.full(width, -1)
    for c in range(width):
        rows = np.nonzero(core[:, c])[0]
        if not len(rows):
            continue
        s = rows.max()
        end = s
        while end + 1 < height and (new[end + 1, c] or old[end + 1, c] or core[end + 1, c]):
            end += 1
        new_rows = np.nonzero(new[:, c] | core[:, c])[0]
        if end > new_rows.max() and end - s <= reach:
            drop[s:end + 1, c] = True
            source[c] = s
    return drop, source


@pytest.mark.parametrize('seed', range(4))
def test_hem_drop_matches_a_column_loop(seed):
    rng = np.random.default_rng(seed)
    shape = (64, 48)
    core = np.zeros(shape, bool)
    new = np.zeros(shape, bool)
    old = np.zeros(shape, bool)
    for c in range(shape[1]):  # a garment per column ending at a random row, old hems around it
        if rng.random() < 0.8:
            end = rng.integers(5, 60)
            core[rng.integers(0, end):end, c] = True
            new[:min(end + rng.integers(0, 3), 64), c] = core[:, c].any()
            new[:, c] &= np.arange(64) >= np.nonzero(core[:, c])[0].min()
            old[rng.integers(0, 64):rng.integers(0, 65), c] = True
    old |= rng.random(shape) < 0.05
    got = relight.hem_drop(core, new, old, reach=8)
    want = _reference_hem_drop(core, new, old, 8)
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_array_equal(got[1], want[1])
    assert got[0].any() and not got[0].all()


@pytest.mark.parametrize('seed', range(3))
def test_fill_from_nearest_matches_brute_force(seed):
    rng = np.random.default_rng(seed)
    shape = (40, 30)
    image = rng.integers(0, 256, shape + (3,), dtype=np.uint8)
    source = rng.random(shape) < 0.1
    target = rng.random(shape) < 0.5
    got = relight.fill_from_nearest(image, source, target)
    rows, cols = np.nonzero(source)
    for r, c in zip(*np.nonzero(target & ~source)):
        d = (rows - r) ** 2 + (cols - c) ** 2
        ties = np.nonzero(d == d.min())[0]  # equidistant sources: any of them
        assert any(np.array_equal(got[r, c], image[rows[t], cols[t]]) for t in ties)
    np.testing.assert_array_equal(got[~target | source], image[~target | source])
    np.testing.assert_array_equal(relight.fill_from_nearest(image, np.zeros(shape, bool), target),
                                  image)


def test_the_light_seam_round_the_warp_takes_the_garments_colour():
    """RM blends the product photo's white into the warp's soft edge and the two pixels the
    garment is grown by; relight gives them the garment's colour."""
    frame, tryon, clothing, warped, selection = _scene()
    warped = warped.copy()
    warped[60:230, 140:142] = 110  # the warp's soft right edge (above the 100/255 threshold)
    tryon = tryon.copy()
    tryon[60:230, 140:145] = 250  # white seam: the soft edge and the grown ring
    out = relight.relight(spec.MEN_LONG, frame, tryon, clothing, warped, selection)
    # beside the arm, where the selection goes on past the grown garment (beyond it: the seam)
    np.testing.assert_array_equal(out[72:198, 138:143],
                                  np.broadcast_to(RED.astype(np.uint8), (126, 5, 3)))
