"""The one-call category model (tryon_<category>) against the three-call chain, bit for bit, and
the ``encoded`` signatures (PNG/JPEG files in, PNG files out) against ``serving_default``."""

import io
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from everywear_tf import configs
from everywear_tf import spec
from everywear_tf.export import exporter
from everywear_tf.export import modules
from everywear_tf.export import warmup
from everywear_tf.inference import categories
from everywear_tf.inference import chain as chain_lib
from everywear_tf.models import factory
from everywear_tf.serving import client as client_lib

from tests.models.randomize import randomize

pytestmark = pytest.mark.slow  # exports

CATEGORY = spec.MEN_TSHIRTS  # the category whose rule unites two masks


@pytest.fixture(scope='module')
def exported(tmp_path_factory):
    """Lite GMM, EDM and RM of one category, exported as modules and as the one-call model."""
    base = tmp_path_factory.mktemp('serving')
    networks = {}
    for seed, module in enumerate(spec.MODULES):
        networks[spec.model_name(module, CATEGORY)] = factory.build(
                configs.get(module, configs.LITE))
        randomize(networks[spec.model_name(module, CATEGORY)], seed)
    return base, exporter.export_all(networks, base)


def _inputs(batch=2):
    return warmup.realistic_inputs(spec.GMM, batch=batch, seed=3)


def _equal(expected, got, keys):
    for key in keys:
        assert got[key].dtype == expected[key].dtype, key
        np.testing.assert_array_equal(got[key], expected[key], err_msg=key)


def test_export_all_writes_the_category_model_beside_the_modules(exported):
    _, written = exported
    assert sorted(written) == sorted([spec.model_name(m, CATEGORY) for m in spec.MODULES]
                                     + [spec.category_model_name(CATEGORY)])
    manifest = exporter.read_manifest(written[spec.category_model_name(CATEGORY)])
    assert manifest['module'] == spec.CATEGORY_MODEL and set(manifest['config']) == set(
            spec.MODULES)


def test_the_category_model_equals_the_three_call_chain_bit_for_bit(exported):
    _, written = exported
    inputs = _inputs()
    three = chain_lib.Chain.from_saved_models(CATEGORY, {
            module: written[spec.model_name(module, CATEGORY)] for module in spec.MODULES})(inputs)
    one = chain_lib.CategoryModel.from_saved_model(written[spec.category_model_name(CATEGORY)])(
            inputs)
    assert sorted(one) == sorted(spec.MODULE_OUTPUTS[spec.CATEGORY_MODEL])
    _equal(three, one, spec.MODULE_OUTPUTS[spec.CATEGORY_MODEL])
    # The rule made a difference here, so a model without it would fail the comparison.
    assert not np.array_equal(one[spec.CLOTHING_MASK], one[spec.EDM_MASK])


@pytest.mark.parametrize('category', spec.CATEGORIES)
def test_the_graph_rule_equals_the_category_rule(category):
    rng = np.random.default_rng(1)
    edm_mask, warped_mask = rng.integers(0, 256, (2, 3, 8, 6), dtype=np.uint8)
    got = modules.clothing_mask(category, tf.constant(edm_mask), tf.constant(warped_mask))
    np.testing.assert_array_equal(got.numpy(), categories.clothing_mask(category, edm_mask,
                                                                        warped_mask))


def _jpeg(image):
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, 'JPEG', quality=95)
    return buffer.getvalue()


@pytest.mark.parametrize('model', [spec.GMM, spec.CATEGORY_MODEL])
def test_the_encoded_signature_equals_serving_default(exported, model):
    _, written = exported
    name = (spec.category_model_name(CATEGORY) if model == spec.CATEGORY_MODEL
            else spec.model_name(model, CATEGORY))
    saved = tf.saved_model.load(written[name])
    inputs = _inputs()
    # A JPEG person: serving_default gets TF's own decode of it (Pillow's libjpeg rounds some
    # pixels otherwise).
    jpegs = [_jpeg(p) for p in inputs[spec.PERSON]]
    inputs[spec.PERSON] = np.stack([tf.io.decode_jpeg(j).numpy() for j in jpegs])
    files = client_lib.encode_inputs(model, inputs)
    files[spec.encoded_key(spec.PERSON)] = np.array(jpegs, dtype=object)
    plain = saved.signatures[spec.SERVING_SIGNATURE](**{k: tf.constant(v)
                                                        for k, v in inputs.items()})
    encoded = saved.signatures[spec.ENCODED_SIGNATURE](**{k: tf.constant(list(v)) if
                                                          v.dtype == object else tf.constant(v)
                                                          for k, v in files.items()})
    assert sorted(encoded) == sorted(spec.encoded_outputs(model))
    decoded = client_lib.decode_outputs({k: v.numpy() for k, v in encoded.items()})
    _equal({k: v.numpy() for k, v in plain.items()}, decoded,
           [k for k in spec.MODULE_OUTPUTS[model] if k != spec.GRID])


def test_the_encoded_signature_refuses_a_file_of_another_size(exported):
    _, written = exported
    function = tf.saved_model.load(written[spec.model_name(spec.GMM, CATEGORY)]).signatures[
            spec.ENCODED_SIGNATURE]
    files = {k: tf.constant(list(v)) if v.dtype == object else tf.constant(v)
             for k, v in client_lib.encode_inputs(spec.GMM, _inputs(batch=1)).items()}
    small = client_lib.encode_png(np.zeros((100, 80, 3), np.uint8))
    with pytest.raises(tf.errors.InvalidArgumentError, match='person_bytes: every file must be'):
        function(**{**files, 'person_bytes': tf.constant([small])})


_LOAD = '''
import sys
import numpy as np
import tensorflow as tf
from everywear_tf import spec
from everywear_tf.export import opcheck, warmup
assert opcheck.main(['', sys.argv[1]]) == 0
saved = tf.saved_model.load(sys.argv[1])
out = saved.signatures[spec.SERVING_SIGNATURE](**{
        k: tf.constant(v) for k, v in warmup.realistic_inputs(spec.CATEGORY_MODEL).items()})
assert sorted(out) == sorted(spec.MODULE_OUTPUTS[spec.CATEGORY_MODEL])
assert 'tensorflow_addons' not in sys.modules
'''


def test_the_category_model_loads_in_a_fresh_process_with_core_ops_only(exported):
    _, written = exported
    result = subprocess.run([sys.executable, '-c', _LOAD, written[spec.category_model_name(
            CATEGORY)]], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
