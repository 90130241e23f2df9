"""Names shared by the exporter, the server config and the client.

Model names, signature keys, input/output keys, dtypes and shapes live here and nowhere else, so a
rename breaks tests rather than production. This module imports no TensorFlow: clients use it too.
"""

from everywear_tf import errors

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

# The two 256×192 frames a photo is cut into: the whole body (lower garments), and the
# upper-body crop (upper garments). The names are also the workspace's folder prefixes
# (``input/body_pose``, ``input/upper_pose``) and the bundles' ``frame`` value.
BODY_FRAME = 'body'
UPPER_FRAME = 'upper'
FRAMES = (BODY_FRAME, UPPER_FRAME)

GMM = 'gmm'
EDM = 'edm'
RM = 'rm'
MODULES = (GMM, EDM, RM)

SERVING_SIGNATURE = 'serving_default'

# Signature inputs (ARCHITECTURE.md §3).
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

# Outputs of the whole chain (in process or through the client), besides the modules' own.
EDM_MASK = 'edm_mask'  # EDM's mask, before the category rule
CLOTHING_MASK = 'clothing_mask'  # the mask RM was given (ARCHITECTURE.md §3's category rule)

_FRAME = (None, IMAGE_HEIGHT, IMAGE_WIDTH)

# (dtype, shape) of every signature input; None is the dynamic batch dimension.
INPUT_SPECS = {
        PERSON: ('uint8', _FRAME + (3,)),
        CLOTH: ('uint8', _FRAME + (3,)),
        CLOTH_MASK: ('uint8', _FRAME),
        PARSE: ('uint8', _FRAME),
        KEYPOINTS: ('float32', (None, NUM_KEYPOINTS, 2)),
        # RM's inputs: GMM's warped cloth, EDM's coarse person, and the clothing mask (the EDM
        # mask, or its union with the GMM mask for t-shirts: ARCHITECTURE.md §3's category rule).
        WARPED_CLOTH: ('uint8', _FRAME + (3,)),
        COARSE: ('uint8', _FRAME + (3,)),
        MASK: ('uint8', _FRAME),
}

# (dtype, shape) of every signature output.
OUTPUT_SPECS = {
        WARPED_CLOTH: ('uint8', _FRAME + (3,)),
        WARPED_MASK: ('uint8', _FRAME),
        THETA: ('float32', (None, 50)),
        GRID: ('float32', _FRAME + (2,)),
        COARSE: ('uint8', _FRAME + (3,)),
        MASK: ('uint8', _FRAME),
        TRYON: ('uint8', _FRAME + (3,)),
        ALPHA: ('uint8', _FRAME),
        TPS_MASK: ('uint8', _FRAME),
}

# Each module's serving signature, in argument order.
MODULE_INPUTS = {
        GMM: (PERSON, PARSE, KEYPOINTS, CLOTH, CLOTH_MASK),
        EDM: (PERSON, PARSE, KEYPOINTS, CLOTH),
        RM: (WARPED_CLOTH, COARSE, MASK),
}
MODULE_OUTPUTS = {
        GMM: (WARPED_CLOTH, WARPED_MASK, THETA, GRID),
        EDM: (COARSE, MASK),
        RM: (TRYON, ALPHA, TPS_MASK),
}

# Training targets the loop batches beside the signature inputs (not served).
GRID_TARGET = 'grid_target'  # float32 [B,256,192,2]: the ground-truth sampling grid (synthetic)
# uint8 [B,256,192]: the drawn parse, for the targets, when the inputs are the front end's estimate
TRUE_PARSE = 'true_parse'
TARGET_SPECS = {GRID_TARGET: ('float32', _FRAME + (2,)), TRUE_PARSE: ('uint8', _FRAME)}

# The photo front end (pose and human parsing estimated from the photo): one model for every
# category, served as ``frontend`` beside the nine try-on models.
FRONTEND = 'frontend'
FRONTEND_MODEL = FRONTEND
ENCODED_SIGNATURE = 'encoded'  # the front end's signature that takes PNG/JPEG bytes
IMAGE = 'image'  # uint8 [1,H,W,3]: the photo, any size
IMAGE_BYTES = 'image_bytes'  # string [1]: the photo's PNG or JPEG file
POSE = 'pose'  # float32 [1,18,3]: COCO-18 (x, y, confidence) in photo pixels, 0 = missing
PEOPLE = 'people'  # int32 [1]: persons detected (the largest, most central one is described)
SKIN_SPLIT = 'skin_split'  # bool [1]: bare skin told from sleeves (False on greyscale photos)
FACE_FOUND = 'face_found'  # bool [1]: the face landmarks were found (else a head ellipse)
INPUT_SPECS[IMAGE] = ('uint8', (1, None, None, 3))
INPUT_SPECS[IMAGE_BYTES] = ('string', (1,))
FRONTEND_OUTPUT_SPECS = {
        POSE: ('float32', (1, NUM_KEYPOINTS, 3)),
        PARSE: ('uint8', (1, None, None)),  # LIP ids at the photo's size
        PEOPLE: ('int32', (1,)),
        SKIN_SPLIT: ('bool', (1,)),
        FACE_FOUND: ('bool', (1,)),
}
MODULE_INPUTS[FRONTEND] = (IMAGE,)
MODULE_OUTPUTS[FRONTEND] = tuple(FRONTEND_OUTPUT_SPECS)

# The one-call model of a category, ``tryon_<category>``: GMM → EDM → category rule → RM in one
# graph with the three modules' weights, served beside them. Its outputs are the chain's
# (inference/chain.py) but GMM's grid, which the pipeline does not use.
CATEGORY_MODEL = 'tryon'
MODULE_INPUTS[CATEGORY_MODEL] = MODULE_INPUTS[GMM]
MODULE_OUTPUTS[CATEGORY_MODEL] = (WARPED_CLOTH, WARPED_MASK, THETA, COARSE, EDM_MASK,
                                  CLOTHING_MASK, TRYON, ALPHA, TPS_MASK)
OUTPUT_SPECS[EDM_MASK] = ('uint8', _FRAME)
OUTPUT_SPECS[CLOTHING_MASK] = ('uint8', _FRAME)

# Every module's and category model's second signature, ``encoded`` (ENCODED_SIGNATURE), takes
# each uint8 image or mask input as a PNG or JPEG file (``<key>_bytes``, string [B]; label maps
# and masks must be sent as PNG: a JPEG decodes, but changes label ids and mask edges) and
# answers each uint8 output as a PNG file (``<key>_bytes``: TF Serving's REST API writes string
# outputs named ``*_bytes`` as ``{"b64": ...}``); float32 tensors stay as they are and GMM's
# grid is left out. A caller over REST (no output filter there) pays for a few tens of
# kilobytes instead of megabytes of JSON.
BYTES_SUFFIX = '_bytes'
LOSSLESS_INPUTS = (PARSE, CLOTH_MASK, MASK)  # decoded as PNG (TF's decode_png also reads JPEG)


def encoded_key(key: str) -> str:
    """The ``encoded`` signature's name of a uint8 image tensor (``person`` → ``person_bytes``);
    other tensors keep their name."""
    dtype, shape = (INPUT_SPECS.get(key) or OUTPUT_SPECS[key])
    return key + BYTES_SUFFIX if dtype == 'uint8' and len(shape) in (3, 4) else key


def decoded_key(key: str) -> str:
    """The tensor an ``encoded`` signature name stands for (``person_bytes`` → ``person``)."""
    return key[:-len(BYTES_SUFFIX)] if key.endswith(BYTES_SUFFIX) else key


def encoded_inputs(module: str) -> tuple:
    """The ``encoded`` signature's input names of a module or category model, in order."""
    return tuple(encoded_key(key) for key in MODULE_INPUTS[module])


def encoded_outputs(module: str) -> tuple:
    """The ``encoded`` signature's output names (GMM's grid left out)."""
    return tuple(encoded_key(key) for key in MODULE_OUTPUTS[module] if key != GRID)


# Version labels the rollout tooling moves.
STABLE = 'stable'
CANARY = 'canary'

# GMM's warped mask, thresholded, joins the EDM mask for t-shirts ("gmmask", ARCHITECTURE.md §3).
GMM_MASK_THRESHOLD = 100

# A keypoint whose x or y is negative is missing (ARCHITECTURE.md §3).
MISSING_KEYPOINT = -1.0


def module_of(model_name_: str) -> tuple:
    """(module, category) of a serving model name such as ``gmm_men_tshirts``; the front end's
    ``frontend`` is (FRONTEND, None), a category model's ``tryon_men_tshirts`` (CATEGORY_MODEL,
    its category)."""
    if model_name_ == FRONTEND_MODEL:
        return FRONTEND, None
    module, _, category = model_name_.partition('_')
    if module == CATEGORY_MODEL:
        return module, check_category(category)
    model_name(module, category)  # validates both
    return module, category


def all_model_names():
    """The nine try-on model names, ``<module>_<category>``: category by category, GMM, EDM,
    RM within each."""
    return tuple(model_name(m, c) for c in CATEGORIES for m in MODULES)


def category_model_name(category: str) -> str:
    """Serving name of a category's one-call model, e.g. ``tryon_men_tshirts``."""
    return f'{CATEGORY_MODEL}_{check_category(category)}'


def category_model_names():
    """The three one-call models, ``tryon_<category>``, in category order."""
    return tuple(category_model_name(c) for c in CATEGORIES)


def served_model_names():
    """Every model a deployment serves: the nine try-on models, the three one-call models, then
    the front end."""
    return all_model_names() + category_model_names() + (FRONTEND_MODEL,)


def check_category(category: str) -> str:
    """``category`` itself, or errors.CategoryError (a ValueError) if it is not one of ours."""
    if category not in CATEGORIES:
        raise errors.CategoryError(f'unknown category {category!r}; expected one of {CATEGORIES}')
    return category


def frame_of(category: str) -> str:
    """The frame a category is tried on: UPPER_FRAME for tops, BODY_FRAME for pants."""
    return UPPER_FRAME if check_category(category) in UPPER_CATEGORIES else BODY_FRAME


def model_name(module: str, category: str) -> str:
    """Serving name of one module of one category, e.g. ``gmm_men_tshirts``."""
    if module not in MODULES:
        raise ValueError(f'unknown module {module!r}; expected one of {MODULES}')
    return f'{module}_{check_category(category)}'
