"""The client's PNG files on the wire: lossless both ways on random frames (batch > 1), what the
models' encoded signatures decode to the same pixels, and a clear error for what the server never
writes."""

import cv2
import numpy as np
import pytest
import tensorflow as tf

from everywear_tf import spec
from everywear_tf.serving import client


@pytest.mark.parametrize('shape', [(3, 256, 192, 3), (2, 256, 192), (2, 7, 5, 3)])
def test_encode_then_decode_gives_the_same_pixels(shape):
    frames = np.random.default_rng(sum(shape)).integers(0, 256, shape, dtype=np.uint8)
    for frame in frames:
        data = client.encode_png(frame)
        assert data[:8] == b'\x89PNG\r\n\x1a\n'
        np.testing.assert_array_equal(client.decode_png(data), frame)
        # what the SavedModels' encoded signature does with the file (tf.io.decode_png)
        channels = 3 if frame.ndim == 3 else 1
        decoded = tf.io.decode_png(data, channels=channels).numpy()
        np.testing.assert_array_equal(decoded if frame.ndim == 3 else decoded[..., 0], frame)


def test_png_files_the_graph_writes_decode_to_its_pixels():
    frames = np.random.default_rng(1).integers(0, 256, (2, 256, 192, 3), dtype=np.uint8)
    for frame in frames:
        data = tf.io.encode_png(frame, compression=1).numpy()
        np.testing.assert_array_equal(client.decode_png(data), frame)
    mask = np.random.default_rng(2).integers(0, 256, (256, 192, 1), dtype=np.uint8)
    data = tf.io.encode_png(mask, compression=1).numpy()
    np.testing.assert_array_equal(client.decode_png(data), mask[..., 0])


def test_inputs_and_outputs_round_trip_under_the_signature_names():
    rng = np.random.default_rng(3)
    inputs = {spec.PERSON: rng.integers(0, 256, (2, 256, 192, 3), dtype=np.uint8),
              spec.PARSE: rng.integers(0, 20, (2, 256, 192), dtype=np.uint8),
              spec.KEYPOINTS: rng.random((2, 18, 2)).astype(np.float32)}
    encoded = client.encode_inputs(spec.GMM, inputs)
    assert set(encoded) == {'person_bytes', 'parse_bytes', spec.KEYPOINTS}
    assert encoded[spec.KEYPOINTS] is inputs[spec.KEYPOINTS]
    decoded = client.decode_outputs(encoded)
    assert set(decoded) == set(inputs)
    for key, value in inputs.items():
        np.testing.assert_array_equal(decoded[key], value)


def test_a_file_that_is_not_an_8_bit_grey_or_rgb_png_is_refused_by_name():
    with pytest.raises(ValueError, match='does not decode'):
        client.decode_png(b'not a png at all')
    deep = cv2.imencode('.png', np.zeros((4, 4), np.uint16))[1].tobytes()
    with pytest.raises(ValueError, match='uint16'):
        client.decode_png(deep)
    rgba = cv2.imencode('.png', np.zeros((4, 4, 4), np.uint8))[1].tobytes()
    with pytest.raises(ValueError, match=r'\(4, 4, 4\)'):
        client.decode_png(rgba)
