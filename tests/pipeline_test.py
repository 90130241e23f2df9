"""The whole try-on on full photos of several sizes, in process and through the dev server."""

import numpy as np
import pytest

from everywear_tf import configs
from everywear_tf import errors
from everywear_tf import pipeline
from everywear_tf import spec
from everywear_tf import weights
from everywear_tf.data import synthetic
from everywear_tf.export import exporter
from everywear_tf.models import factory
from everywear_tf.serving import config as serving_config
from everywear_tf.serving import dev_server
from tests.models.randomize import randomize
from tests.preprocess_test import _photo

CATEGORIES = (spec.MEN_TSHIRTS, spec.MEN_PANTS)


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
    pants = synthetic.render_pants(rng, (30, 30, 90))
    return top, pants


@pytest.mark.parametrize('size', [(512, 384), (400, 700), (900, 300)])
def test_outfit_keeps_the_photo_outside_the_garments(weights_root, size):
    photo, parse, keypoints = _photo(*size, seed=1)
    top, pants = _garments()
    backend = pipeline.LocalBackend(str(weights_root))
    final, results = pipeline.outfit(backend, photo, parse, keypoints,
                                     top=(spec.MEN_TSHIRTS, top.image, top.mask),
                                     bottom=(spec.MEN_PANTS, pants.image, pants.mask))
    assert final.shape == photo.shape and final.dtype == np.uint8
    touched = (results['top'].alpha > 0) | (results['bottom'].alpha > 0)
    np.testing.assert_array_equal(final[~touched], photo[~touched])
    assert touched.mean() < 0.5
    names = results['top'].images()
    assert set(names) == {'_final', '_fg', '_bg', '_mask', '_sel_mask', '_tps', '_tps_mask'}
    assert names['_tps'].shape == spec.FRAME_SHAPE + (3,)


def test_server_backend_gives_identical_results(weights_root, tmp_path):
    base = tmp_path / 'exported'
    names = []
    for module in spec.MODULES:
        name = spec.model_name(module, spec.MEN_TSHIRTS)
        exporter.export(weights.load(weights_root / name), base, name)
        names.append(name)
    server = dev_server.DevServer(serving_config.serving_config(str(base), names),
                                  file_system_poll_seconds=0).start()
    try:
        photo, parse, keypoints = _photo(600, 450, seed=4)
        top, _ = _garments()
        local = pipeline.try_on(pipeline.LocalBackend(str(weights_root)), spec.MEN_TSHIRTS,
                                photo, parse, keypoints, top.image, top.mask)
        remote = pipeline.try_on(pipeline.ServerBackend(f'127.0.0.1:{server.grpc_port}'),
                                 spec.MEN_TSHIRTS, photo, parse, keypoints, top.image, top.mask)
    finally:
        server.stop()
    np.testing.assert_array_equal(local.final, remote.final)


def test_wrong_garment_slot_and_unknown_category(weights_root):
    photo, parse, keypoints = _photo(512, 384)
    top, _ = _garments()
    backend = pipeline.LocalBackend(str(weights_root))
    with pytest.raises(errors.EverywearError, match='not a lower garment'):
        pipeline.outfit(backend, photo, parse, keypoints,
                        bottom=(spec.MEN_TSHIRTS, top.image, top.mask))
    with pytest.raises(errors.EverywearError, match='unknown category'):
        pipeline.try_on(backend, 'women_dresses', photo, parse, keypoints, top.image)
