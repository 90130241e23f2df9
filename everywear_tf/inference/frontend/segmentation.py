"""The person mask of the whole photo: MediaPipe's selfie segmentation, in the graph.

BlazePose's own mask (``pose.py``) comes from its 256×256 body crop and misses strips along the
edges of the limbs and the torso; the selfie model (``selfie_segmentation.tflite``, the general
256×256 model, photo stretched to its input in [0, 1] as MediaPipe's ImageToTensor does without
keeping the aspect ratio) sees the whole photo. The front end joins the two inside the chosen
person's body box, so other people in the photo stay out of the mask.
"""

import tensorflow as tf

from everywear_tf.convert import tflite

INPUT_SIZE = 256


class SelfieModel(tf.Module):
    """``model(image uint8 [H, W, 3]) -> float32 [H, W]``: the probability of a person."""

    def __init__(self, segmenter: tflite.TFLiteGraph):
        """Wraps the converted ``selfie_segmentation`` model (256×256 in [0, 1] → [B,256,256,1])."""
        super().__init__(name='selfie_model')
        self.segmenter = segmenter
        self._output = next(iter(segmenter.output_specs))

    @classmethod
    def from_mediapipe(cls) -> 'SelfieModel':
        """Converts the installed mediapipe wheel's model (MediapipeNotInstalledError without)."""
        return cls(tflite.load(tflite.mediapipe_model_path('selfie_segmentation')))

    @tf.function(input_signature=[tf.TensorSpec([None, None, 3], tf.uint8, name='image')])
    def __call__(self, image):
        """The person probability of every pixel of ``image``."""
        size = tf.shape(image)[:2]
        pixels = tf.image.resize(tf.cast(image, tf.float32)[None], (INPUT_SIZE, INPUT_SIZE),
                                 method='area', antialias=True)
        probability = self.segmenter(pixels / 255.0)[self._output]
        return tf.image.resize(probability, size, method='bilinear')[0, ..., 0]


def inside_box(roi, height, width):
    """bool [H, W]: the pixels inside the rotated box ``roi`` (centre x, centre y, width,
    height in pixels, rotation in radians), pixel centres at integer coordinates."""
    x = tf.cast(tf.range(width), tf.float32)[None, :] - roi[0]
    y = tf.cast(tf.range(height), tf.float32)[:, None] - roi[1]
    cos, sin = tf.cos(roi[4]), tf.sin(roi[4])
    across = x * cos + y * sin
    along = -x * sin + y * cos
    return (tf.abs(across) <= roi[2] / 2) & (tf.abs(along) <= roi[3] / 2)
