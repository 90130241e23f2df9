"""Names shared by the exporter, the server config and the client.

Model names, signature keys, input/output keys, dtypes and shapes live here and nowhere else, so a
rename breaks tests rather than production. This module imports no TensorFlow: clients use it too.
"""

IMAGE_HEIGHT = 256
IMAGE_WIDTH = 192
FRAME_SHAPE = (IMAGE_HEIGHT, IMAGE_WIDTH)
NUM_KEYPOINTS = 18  # OpenPose COCO-18

# Garment categories; each has its own weights for each module.
MEN_TSHIRTS = 'men_tshirts'
MEN_LONG = 'men_long'
MEN_PANTS = 'men_pants'
CATEGORIES = (MEN_TSHIRTS, MEN_LONG, MEN_PANTS)
UPPER_CATEGORIES = (MEN_TSHIRTS, MEN_LONG)
LOWER_CATEGORIES = (MEN_PANTS,)

GMM = 'gmm'
EDM = 'edm'
RM = 'rm'
MODULES = (GMM, EDM, RM)

SERVING_SIGNATURE = 'serving_default'

# Signature inputs (DESIGN.md §4).
PERSON = 'person'
CLOTH = 'cloth'
CLOTH_MASK = 'cloth_mask'
PARSE = 'parse'
KEYPOINTS = 'keypoints'

# Signature outputs.
WARPED_CLOTH = 'warped_cloth'
WARPED_MASK = 'warped_mask'
THETA = 'theta'
GRID = 'grid'
COARSE = 'coarse'
MASK = 'mask'
TRYON = 'tryon'
ALPHA = 'alpha'
TPS_MASK = 'tps_mask'

# (dtype, shape) of every compact input; None is the dynamic batch dimension.
INPUT_SPECS = {
        PERSON: ('uint8', (None, IMAGE_HEIGHT, IMAGE_WIDTH, 3)),
        CLOTH: ('uint8', (None, IMAGE_HEIGHT, IMAGE_WIDTH, 3)),
        CLOTH_MASK: ('uint8', (None, IMAGE_HEIGHT, IMAGE_WIDTH)),
        PARSE: ('uint8', (None, IMAGE_HEIGHT, IMAGE_WIDTH)),
        KEYPOINTS: ('float32', (None, NUM_KEYPOINTS, 2)),
}

# A keypoint whose x or y is negative is missing (DESIGN.md §4).
MISSING_KEYPOINT = -1.0


def model_name(module: str, category: str) -> str:
    """Serving name of one module of one category, e.g. ``gmm_men_tshirts``."""
    if module not in MODULES:
        raise ValueError(f'unknown module {module!r}; expected one of {MODULES}')
    if category not in CATEGORIES:
        raise ValueError(f'unknown category {category!r}; expected one of {CATEGORIES}')
    return f'{module}_{category}'
