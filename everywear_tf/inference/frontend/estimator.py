"""Pose and parse from the photo alone: the front end as one graph, and the ways to run it.

``FrontEndModule`` chains the pose, face, person-mask and parse graphs into the ``frontend``
model's two serving signatures (names in ``spec.py``): ``serving_default`` takes the decoded photo
(``image``, uint8 [1, H, W, 3]) and ``encoded`` takes its PNG or JPEG bytes (``image_bytes``,
string [1]); both return ``pose`` (float32 [1, 18, 3], COCO-18 in photo pixels, confidence 0 =
missing), ``parse`` (uint8 [1, H, W], LIP ids), ``people``, ``skin_split`` and ``face_found``.

``FrontEnd`` runs that graph in process (converted from mediapipe's model files, or loaded from
an exported SavedModel) or through TF Serving, and turns the outputs into an ``Estimate`` or a
clear error naming the photo: no person, or no shoulders to cut an upper-body crop from.
"""

import dataclasses

import numpy as np
import tensorflow as tf

from everywear_tf import errors
from everywear_tf import spec
from everywear_tf.data import keypoints as keypoint_files
from everywear_tf.inference.frontend import face as face_lib
from everywear_tf.inference.frontend import parse as parse_lib
from everywear_tf.inference.frontend import pose as pose_lib
from everywear_tf.inference.frontend import segmentation


class NoPersonError(errors.InputError):
    """The front end found nobody in the photo (or nobody with a visible upper body)."""


@dataclasses.dataclass(frozen=True)
class Estimate:
    """What the front end made of one photo."""
    keypoints: np.ndarray  # float32 [18, 3] COCO-18 in photo pixels; confidence 0 = missing
    parse: np.ndarray  # uint8 [H, W] LIP label ids at the photo's size
    people: int  # persons the detector found (the largest, most central one was taken)
    skin_split: bool  # False on greyscale photos: bare limbs are not told from sleeves
    face_found: bool  # False: the face is an ellipse from the head's landmarks


class FrontEndModule(tf.Module):
    """Pose → face → parse as one graph of core TF ops; what the ``frontend`` model serves."""

    def __init__(self, pose: pose_lib.PoseModel, face: face_lib.FaceModel,
                 parse: parse_lib.ParseModel, selfie: segmentation.SelfieModel):
        super().__init__(name=spec.FRONTEND)
        self.pose, self.face, self.parse, self.selfie = pose, face, parse, selfie
        self.serving_default = tf.function(self._estimate, input_signature=[
                tf.TensorSpec([1, None, None, 3], tf.uint8, name=spec.IMAGE)])
        self.encoded = tf.function(self._estimate_encoded, input_signature=[
                tf.TensorSpec([1], tf.string, name=spec.IMAGE_BYTES)])

    @classmethod
    def from_mediapipe(cls) -> 'FrontEndModule':
        """The graph over the models of the installed mediapipe wheel, converted here.

        Raises:
            tflite.MediapipeNotInstalledError: mediapipe is not installed (pip advice included).
        """
        return cls(pose_lib.PoseModel.from_mediapipe(), face_lib.FaceModel.from_mediapipe(),
                   parse_lib.ParseModel(), segmentation.SelfieModel.from_mediapipe())

    def _estimate(self, image):
        photo = image[0]
        pose = self.pose(photo)
        face = self.face(photo, pose['landmarks'])
        # The person: BlazePose's mask joined with the selfie model's inside the body box.
        size = tf.shape(photo)
        inside = segmentation.inside_box(pose['roi'], size[0], size[1])
        mask = tf.maximum(pose['mask'], tf.where(inside, self.selfie(photo), 0.0))
        parse = self.parse(photo, pose['landmarks'], mask, face['face_landmarks'], face['found'])
        return {spec.POSE: pose['keypoints'][None], spec.PARSE: parse['parse'][None],
                spec.PEOPLE: tf.reshape(pose['people'], [1]),
                spec.SKIN_SPLIT: tf.reshape(parse['skin_split'], [1]),
                spec.FACE_FOUND: tf.reshape(face['found'], [1])}

    def _estimate_encoded(self, image_bytes):
        photo = tf.io.decode_image(image_bytes[0], channels=3, expand_animations=False)
        return self._estimate(tf.ensure_shape(photo, [None, None, 3])[None])

    def signatures(self) -> dict:
        """The SavedModel's signatures, by the names in spec.py."""
        return {spec.SERVING_SIGNATURE: self.serving_default,
                spec.ENCODED_SIGNATURE: self.encoded}


def estimate_from_outputs(outputs: dict, path: str = '<memory>') -> Estimate:
    """An Estimate from the ``frontend`` signature's outputs (batch of 1), or NoPersonError /
    KeypointsError naming ``path`` when there is no person or no shoulders."""
    people = int(np.asarray(outputs[spec.PEOPLE]).reshape(-1)[0])
    if people == 0:
        raise NoPersonError(path, 'the front end found no person in the photo')
    keypoints = np.asarray(outputs[spec.POSE], np.float32)[0]
    if not all(keypoints[i, 2] > 0 for i in (keypoint_files.R_SHOULDER,
                                             keypoint_files.L_SHOULDER)):
        raise errors.KeypointsError(path, 'the front end found no shoulders (both are needed: '
                                          'photograph the upper body facing the camera)')
    return Estimate(keypoints=keypoints, parse=np.asarray(outputs[spec.PARSE], np.uint8)[0],
                    people=people,
                    skin_split=bool(np.asarray(outputs[spec.SKIN_SPLIT]).reshape(-1)[0]),
                    face_found=bool(np.asarray(outputs[spec.FACE_FOUND]).reshape(-1)[0]))


class FrontEnd:
    """Runs the front end on photos: ``front_end(photo, path) -> Estimate``.

    ``run`` maps the signature's inputs ({'image': uint8 [1, H, W, 3]}) to its outputs (numpy).
    """

    def __init__(self, run):
        self._run = run

    @classmethod
    def in_process(cls) -> 'FrontEnd':
        """Converted from the installed mediapipe wheel's model files (needs the frontend extra)."""
        module = FrontEndModule.from_mediapipe()
        return cls(lambda inputs: {key: value.numpy() for key, value in module.serving_default(
                tf.constant(inputs[spec.IMAGE])).items()})

    @classmethod
    def from_saved_model(cls, directory: str) -> 'FrontEnd':
        """An exported ``frontend`` version directory, loaded here (no mediapipe needed)."""
        function = tf.saved_model.load(directory).signatures[spec.SERVING_SIGNATURE]
        return cls(lambda inputs: {key: value.numpy() for key, value in function(
                **{spec.IMAGE: tf.constant(inputs[spec.IMAGE])}).items()})

    @classmethod
    def through(cls, client, label: str | None = None) -> 'FrontEnd':
        """Through TF Serving with a ``serving.client.Client`` (no mediapipe, no TensorFlow
        graph here)."""
        return cls(lambda inputs: client.predict(spec.FRONTEND_MODEL, inputs, label=label))

    def __call__(self, photo: np.ndarray, path: str = '<memory>') -> Estimate:
        """The pose and parse of ``photo`` (uint8 [H, W, 3]); errors name ``path``."""
        photo = np.asarray(photo)
        if photo.ndim != 3 or photo.shape[2] != 3 or photo.dtype != np.uint8:
            raise errors.ImageError(path, f'expected a uint8 RGB photo, got {photo.dtype} '
                                          f'{photo.shape}')
        return estimate_from_outputs(self._run({spec.IMAGE: photo[None]}), path)
