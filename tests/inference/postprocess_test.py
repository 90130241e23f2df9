"""Paste-back: untouched pixels stay bit for bit; islands go; the seam is feathered."""

import numpy as np

from everywear_tf import spec
from everywear_tf.data import frames
from everywear_tf.data import lip
from everywear_tf.inference import postprocess


def test_pixels_outside_the_region_are_the_photos_own():
    rng = np.random.default_rng(0)
    photo = rng.integers(0, 256, (700, 500, 3), dtype=np.uint8)
    transform = frames.box_transform(frames.letterbox_box(photo.shape[:2]))
    selection = np.zeros(spec.FRAME_SHAPE, np.uint8)
    selection[80:160, 60:130] = 255
    frame = np.full(spec.FRAME_SHAPE + (3,), 7, np.uint8)
    result, alpha = postprocess.paste(photo, frame, selection, transform)
    untouched = alpha == 0
    assert untouched.mean() > 0.7
    np.testing.assert_array_equal(result[untouched], photo[untouched])
    inside = alpha == 255
    assert inside.sum() > 1000 and np.all(result[inside] == 7)
    feathered = (alpha > 0) & (alpha < 255)
    assert feathered.any()  # a soft seam outside the region


def test_clean_mask_drops_islands_and_fills_holes():
    mask = np.zeros((100, 100), np.uint8)
    mask[20:80, 20:80] = 255
    mask[50, 50] = 0  # a pinhole
    mask[5, 5] = 255  # a speck
    cleaned = postprocess.clean_mask(mask)
    assert cleaned[50, 50] == 255 and cleaned[5, 5] == 0 and cleaned[30, 30] == 255


def test_selection_covers_old_garment_and_new_mask():
    parse = np.zeros(spec.FRAME_SHAPE, np.uint8)
    parse[60:140, 50:140] = lip.UPPER_CLOTHES
    parse[60:150, 30:50] = lip.LEFT_ARM
    mask = np.zeros(spec.FRAME_SHAPE, np.uint8)
    mask[70:160, 60:130] = 255
    selection = postprocess.selection_mask(spec.MEN_TSHIRTS, parse, mask)
    assert selection[100, 40] == 255 and selection[155, 100] == 255 and selection[10, 10] == 0
    pants = postprocess.selection_mask(spec.MEN_PANTS, parse, np.zeros_like(mask))
    assert pants.max() == 0


def test_protected_pixels_stay_even_inside_the_feather():
    rng = np.random.default_rng(1)
    photo = rng.integers(0, 256, (512, 384, 3), dtype=np.uint8)
    transform = frames.box_transform(frames.letterbox_box(photo.shape[:2]))
    selection = np.zeros(spec.FRAME_SHAPE, np.uint8)
    selection[80:160, 60:130] = 255
    protect = np.zeros(photo.shape[:2], bool)
    protect[150:170, :] = True  # a band crossing the region's top edge (frame row 80 = 160)
    frame = np.full(spec.FRAME_SHAPE + (3,), 7, np.uint8)
    result, alpha = postprocess.paste(photo, frame, selection, transform, protect=protect)
    np.testing.assert_array_equal(result[protect], photo[protect])
    assert not alpha[protect].any() and (alpha == 255).sum() > 1000
    np.testing.assert_array_equal(postprocess.compose(np.zeros_like(frame), frame, selection)
                                  [..., 0], np.where(selection > 0, 7, 0))


def test_the_head_is_never_selected():
    parse = np.zeros(spec.FRAME_SHAPE, np.uint8)
    parse[20:60, 70:120] = lip.FACE
    parse[60:140, 50:140] = lip.UPPER_CLOTHES
    parse[140:250, 50:140] = lip.PANTS
    mask = np.full(spec.FRAME_SHAPE, 255, np.uint8)  # a network mask over everything
    top = postprocess.selection_mask(spec.MEN_TSHIRTS, parse, mask)
    assert not top[parse == lip.FACE].any() and top[parse == lip.PANTS].all()
    pants = postprocess.selection_mask(spec.MEN_PANTS, parse, mask)
    assert not pants[np.isin(parse, (lip.FACE, lip.UPPER_CLOTHES))].any()
    assert pants[parse == lip.PANTS].all()


def test_a_crop_fades_out_at_its_edge_instead_of_smearing():
    rng = np.random.default_rng(2)
    photo = rng.integers(0, 256, (800, 600, 3), dtype=np.uint8)
    box = (100.0, 50.0, 400.0, 450.0)  # a 4:3 crop well inside the photo
    transform = frames.box_transform(box)
    selection = np.zeros(spec.FRAME_SHAPE, np.uint8)
    selection[100:200, 100:] = 255  # touches the crop's right edge (photo x = 400)
    frame = np.full(spec.FRAME_SHAPE + (3,), 9, np.uint8)
    result, alpha = postprocess.paste(photo, frame, selection, transform)
    assert not alpha[:, 401:].any() and not alpha[:49].any()  # nothing outside the crop
    np.testing.assert_array_equal(result[alpha == 0], photo[alpha == 0])
    row = int(round(150 / transform[1, 1] + box[1]))  # a row through the region
    ramp = alpha[row, 360:401].astype(int)
    assert ramp[0] == 255 and ramp[-1] == 0 and np.all(np.diff(ramp) <= 0)
    assert (alpha == 255).sum() > 5000


def test_clean_mask_matches_a_scipy_reference_on_random_masks():
    import scipy.ndimage

    def reference(mask, min_fraction):
        binary = mask > 0
        out = binary.copy()
        limit = min_fraction * binary.size
        for target, value in ((binary, True), (~binary, False)):
            labels, count = scipy.ndimage.label(target, structure=np.ones((3, 3)))
            sizes = scipy.ndimage.sum(np.ones_like(labels), labels, range(1, count + 1))
            for component, size in enumerate(sizes, start=1):
                if size < limit:
                    out[labels == component] = not value
        return out.astype(np.uint8) * 255

    rng = np.random.default_rng(3)
    for _ in range(6):
        noise = scipy.ndimage.gaussian_filter(rng.normal(size=spec.FRAME_SHAPE), 1.5)
        mask = (noise > rng.uniform(-0.1, 0.1)).astype(np.uint8) * 255
        np.testing.assert_array_equal(postprocess.clean_mask(mask, 0.001),
                                      reference(mask, 0.001))


def test_pieces_join_without_a_seam():
    # The same bytes whatever the piece size: each pixel's value comes from its own position.
    rng = np.random.default_rng(4)
    photo = rng.integers(0, 256, (900, 700, 3), dtype=np.uint8)
    selection = np.zeros(spec.FRAME_SHAPE, np.uint8)
    selection[60:200, 40:150] = 255
    frame = rng.integers(0, 256, spec.FRAME_SHAPE + (3,), dtype=np.uint8)
    for box in (None, (100.0, 50.0, 400.0, 450.0)):
        transform = frames.box_transform(box or frames.letterbox_box(photo.shape[:2]))
        protect = np.zeros(photo.shape[:2], bool)
        protect[300:320] = True
        whole = postprocess.paste(photo, frame, selection, transform, protect=protect,
                                  tile=10 ** 6)
        pieces = postprocess.paste(photo, frame, selection, transform, protect=protect, tile=97)
        np.testing.assert_array_equal(whole[0], pieces[0])
        np.testing.assert_array_equal(whole[1], pieces[1])
        assert whole[1].dtype == np.uint8 and (whole[1] == 255).sum() > 1000


def test_pasting_into_a_big_photo_allocates_no_photo_sized_float_arrays():
    import tracemalloc
    photo = np.full((4000, 3000, 3), 120, np.uint8)
    transform = frames.box_transform(frames.letterbox_box(photo.shape[:2]))
    selection = np.zeros(spec.FRAME_SHAPE, np.uint8)
    selection[20:250, 10:180] = 255  # most of the photo
    frame = np.full(spec.FRAME_SHAPE + (3,), 7, np.uint8)
    tracemalloc.start()
    try:
        result, alpha = postprocess.paste(photo, frame, selection, transform)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    # The result and alpha themselves (48 MB), and pieces of 1024² plus a margin: well under
    # one float32 photo-sized array per channel (the whole-box version peaked at 800 MB).
    assert peak < result.nbytes + alpha.nbytes + 80 * 2 ** 20, peak / 2 ** 20
    assert np.all(result[2000, 1500] == 7) and alpha[2000, 1500] == 255
    assert np.all(result[0, 0] == 120) and alpha[0, 0] == 0


def test_an_empty_selection_leaves_the_photo():
    photo = np.random.default_rng(5).integers(0, 256, (300, 200, 3), dtype=np.uint8)
    transform = frames.box_transform(frames.letterbox_box(photo.shape[:2]))
    result, alpha = postprocess.paste(photo, np.zeros(spec.FRAME_SHAPE + (3,), np.uint8),
                                      np.zeros(spec.FRAME_SHAPE, np.uint8), transform)
    np.testing.assert_array_equal(result, photo)
    assert not alpha.any()
