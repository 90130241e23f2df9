"""TF Serving warmup files: ``assets.extra/tf_serving_warmup_requests``, a TFRecord of
PredictionLog records replayed when a version loads, so the first user request does not pay for
graph initialisation. One bad record fails the whole load, so records are built from the signature
itself and checked by running them in tests."""

import os

import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import model_pb2
from tensorflow_serving.apis import predict_pb2
from tensorflow_serving.apis import prediction_log_pb2

from everywear_tf import spec
from everywear_tf.data import synthetic

WARMUP_DIRECTORY = 'assets.extra'
WARMUP_FILE = 'tf_serving_warmup_requests'
_SEED = 7


def realistic_inputs(module, batch=1, seed=_SEED):
    """A drawn person and garment in the module's signature layout (numpy, batch first)."""
    rng = np.random.default_rng(seed)
    items = []
    for _ in range(batch):
        person = synthetic.render_person(rng)
        garment = synthetic.render_top(rng, tuple(int(c) for c in rng.integers(30, 220, 3)),
                                       sleeve=0.45)
        keypoints = np.where(person.keypoints[:, 2:] > 0, person.keypoints[:, :2],
                             spec.MISSING_KEYPOINT).astype(np.float32)
        values = {spec.PERSON: person.image, spec.PARSE: person.parse,
                  spec.KEYPOINTS: keypoints, spec.CLOTH: garment.image,
                  spec.CLOTH_MASK: garment.mask,
                  # RM: the garment and the person stand in for GMM's and EDM's outputs.
                  spec.WARPED_CLOTH: garment.image, spec.COARSE: person.image,
                  spec.MASK: garment.mask,
                  # The front end: the drawn person as a photo.
                  spec.IMAGE: person.image}
        items.append({key: values[key] for key in spec.MODULE_INPUTS[module]})
    return {key: np.stack([item[key] for item in items]).astype(spec.INPUT_SPECS[key][0])
            for key in spec.MODULE_INPUTS[module]}


def predict_request(model_name, inputs, version=None, label=None):
    """A PredictRequest for ``serving_default`` holding numpy ``inputs``."""
    request = predict_pb2.PredictRequest(model_spec=model_pb2.ModelSpec(
            name=model_name, signature_name=spec.SERVING_SIGNATURE))
    if version is not None:
        request.model_spec.version.value = int(version)
    if label is not None:
        request.model_spec.version_label = label
    for key, value in inputs.items():
        request.inputs[key].CopyFrom(tf.make_tensor_proto(value))
    return request


def write_warmup(version_dir, model_name, module):
    """Writes one realistic batch-1 request into ``version_dir``; returns the file's path."""
    directory = os.path.join(version_dir, WARMUP_DIRECTORY)
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, WARMUP_FILE)
    request = predict_request(model_name, realistic_inputs(module))
    log = prediction_log_pb2.PredictionLog(
            predict_log=prediction_log_pb2.PredictLog(request=request))
    with tf.io.TFRecordWriter(path) as writer:
        writer.write(log.SerializeToString())
    return path


def read_warmup(version_dir):
    """The PredictRequests of a version's warmup file."""
    path = os.path.join(version_dir, WARMUP_DIRECTORY, WARMUP_FILE)
    requests = []
    for record in tf.data.TFRecordDataset(path):
        log = prediction_log_pb2.PredictionLog.FromString(record.numpy())
        requests.append(log.predict_log.request)
    return requests
