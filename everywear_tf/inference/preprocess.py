"""The preprocessing stage: a full photo (any size) and a product photo → the networks' inputs.

The frame geometry (letterbox, upper-body crop, garment frame, the recorded transforms) lives in
``everywear_tf.data.frames``; this stage chooses the frame a category is tried on and assembles
the serving signature's inputs for one item.
"""

import numpy as np

from everywear_tf import spec
from everywear_tf.data import frames
from everywear_tf.data import keypoints as keypoint_files


def frame_for(category: str, photo: np.ndarray, parse: np.ndarray | None,
              keypoints: np.ndarray, path: str = '<memory>') -> frames.Frame:
    """The frame ``category`` is tried on: the upper-body crop for tops, the body for pants.

    ``path`` names the pose file in errors (a crop needs both shoulders and a hip or the neck).
    """
    if spec.frame_of(category) == spec.UPPER_FRAME:
        return frames.upper_frame(photo, parse, keypoints, path)
    return frames.body_frame(photo, parse, keypoints, path)


def signature_inputs(frame: frames.Frame, garment: np.ndarray,
                     garment_mask: np.ndarray | None = None) -> dict:
    """GMM's signature inputs (batch of 1) for ``garment`` (a product photo, any size) on
    ``frame``; the garment's mask is computed when none is given."""
    cloth, cloth_mask = frames.garment_frame(garment, garment_mask)
    return {spec.PERSON: frame.image[None], spec.PARSE: frame.parse[None],
            spec.KEYPOINTS: keypoint_files.to_signature(frame.keypoints)[None],
            spec.CLOTH: cloth[None], spec.CLOTH_MASK: cloth_mask[None]}
