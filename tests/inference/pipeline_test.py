"""The whole try-on on full photos of several sizes, in process and through the dev server."""

import numpy as np
import pytest

from everywear_tf import configs
from everywear_tf import errors
from everywear_tf import spec
from everywear_tf import weights
from everywear_tf.data import synthetic
from everywear_tf.export import exporter
from everywear_tf.inference import pipeline
from everywear_tf.models import factory
from everywear_tf.serving import config as serving_config
from everywear_tf.serving import dev_server

from tests.data.frames_test import _photo
from tests.models.randomize import randomize

# Servers, subprocesses, exports or training: not in the fast loop (pytest -m 'not slow').
pytestmark = pytest.mark.slow

CATEGORIES = spec.CATEGORIES


@pytest.fixture(scope='module')
def weights_root(tmp_path_factory):
    root = tmp_path_factory.mktemp('weights')
    for category in CATEGORIES:
        for module in spec.MODULES:
            model = factory.build(configs.get(module, configs.LITE))
            randomize(model, seed=5)
            weights.save(model, root / spec.model_name(module, category))
    return root


def _garments():
    rng = np.random.default_rng(2)
    top = synthetic.render_top(rng, (200, 40, 40), pattern='stripes')
    long_sleeve = synthetic.render_top(rng, (40, 120, 60), sleeve=1.0)
    pants = synthetic.render_pants(rng, (30, 30, 90))
    return top, long_sleeve, pants


# (top category, bottom?) per case: every category, alone and in an outfit.
CASES = [(spec.MEN_TSHIRTS, True), (spec.MEN_LONG, True), (spec.MEN_LONG, False), (None, True)]


def _outfit(backend, photo, parse, keypoints, top_category, with_bottom):
    top, long_sleeve, pants = _garments()
    garment = top if top_category == spec.MEN_TSHIRTS else long_sleeve
    return pipeline.outfit(
            backend, photo, parse, keypoints,
            top=(top_category, garment.image, garment.mask) if top_category else None,
            bottom=(spec.MEN_PANTS, pants.image, None) if with_bottom else None)


@pytest.mark.parametrize('size, case', [((512, 384), CASES[0]), ((400, 700), CASES[1]),
                                        ((900, 300), CASES[2]), ((333, 250), CASES[3])])
def test_outfit_keeps_the_photo_outside_the_garments(weights_root, size, case):
    photo, parse, keypoints = _photo(*size, seed=1)
    final, results = _outfit(pipeline.LocalBackend(str(weights_root)), photo, parse, keypoints,
                             *case)
    assert final.shape == photo.shape and final.dtype == np.uint8
    assert set(results) == {slot for slot, on in (('top', case[0]), ('bottom', case[1])) if on}
    touched = np.zeros(photo.shape[:2], bool)
    for result in results.values():
        touched |= result.alpha > 0
        names = result.images()
        assert set(names) == {'_final', '_fg', '_bg', '_mask', '_sel_mask', '_tps', '_tps_mask'}
        assert names['_tps'].shape == spec.FRAME_SHAPE + (3,)
    np.testing.assert_array_equal(final[~touched], photo[~touched])
    assert 0 < touched.mean() < 0.5
    assert not np.array_equal(final, photo)


def test_server_and_saved_model_backends_give_identical_results(weights_root, tmp_path):
    base = tmp_path / 'exported'
    names = [spec.model_name(module, category) for category in CATEGORIES
             for module in spec.MODULES]
    for name in names:
        exporter.export(weights.load(weights_root / name), base, name)
    server = dev_server.DevServer(serving_config.serving_config(str(base), names),
                                  file_system_poll_seconds=0).start()
    local_backend = pipeline.LocalBackend(str(weights_root))
    saved_backend = pipeline.make_backend(saved_models=str(base))
    assert isinstance(saved_backend, pipeline.SavedModelBackend)
    try:
        remote_backend = pipeline.make_backend(server=f'127.0.0.1:{server.grpc_port}')
        for seed, (size, case) in enumerate([((600, 450), CASES[0]), ((480, 640), CASES[1]),
                                             ((700, 350), CASES[3])]):
            photo, parse, keypoints = _photo(*size, seed=4 + seed)
            local, local_results = _outfit(local_backend, photo, parse, keypoints, *case)
            for backend in (remote_backend, saved_backend):
                other, other_results = _outfit(backend, photo, parse, keypoints, *case)
                np.testing.assert_array_equal(local, other)
                for slot, result in local_results.items():
                    for suffix, image in result.images().items():
                        np.testing.assert_array_equal(image, other_results[slot].images()[suffix])
    finally:
        server.stop()


def test_missing_saved_models_are_named(tmp_path):
    backend = pipeline.SavedModelBackend(str(tmp_path))
    with pytest.raises(errors.InputNotFoundError, match='gmm_men_tshirts: no SavedModel versions'):
        backend.chain(spec.MEN_TSHIRTS)


def test_wrong_garment_slot_and_unknown_category(weights_root):
    photo, parse, keypoints = _photo(512, 384)
    top, _, _ = _garments()
    backend = pipeline.LocalBackend(str(weights_root))
    with pytest.raises(errors.EverywearError, match='not a lower garment'):
        pipeline.outfit(backend, photo, parse, keypoints,
                        bottom=(spec.MEN_TSHIRTS, top.image, top.mask))
    with pytest.raises(errors.EverywearError, match='unknown category'):
        pipeline.try_on(backend, 'women_dresses', photo, parse, keypoints, top.image)
