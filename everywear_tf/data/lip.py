"""LIP human-parsing labels (20 classes) and the label groups each original uses."""

from everywear_tf import spec

BACKGROUND = 0
HAT = 1
HAIR = 2
GLOVE = 3
SUNGLASSES = 4
UPPER_CLOTHES = 5
DRESS = 6
COAT = 7
SOCKS = 8
PANTS = 9
JUMPSUITS = 10
SCARF = 11
SKIRT = 12
FACE = 13
LEFT_ARM = 14
RIGHT_ARM = 15
LEFT_LEG = 16
RIGHT_LEG = 17
LEFT_SHOE = 18
RIGHT_SHOE = 19
NECK = 20  # CP-VTON+ image-parse-new only

NAMES = (
    'background', 'hat', 'hair', 'glove', 'sunglasses', 'upper_clothes', 'dress', 'coat', 'socks',
    'pants', 'jumpsuits', 'scarf', 'skirt', 'face', 'left_arm', 'right_arm', 'left_leg',
    'right_leg', 'left_shoe', 'right_shoe')
MAX_LABEL = 19
MAX_LABEL_CPVTON_PLUS = NECK

# The colours LIP's tools draw label maps with (RGB), used to read colour-rendered parses back.
PALETTE = (
    (0, 0, 0), (128, 0, 0), (255, 0, 0), (0, 85, 0), (170, 0, 51), (255, 85, 0), (0, 0, 85),
    (0, 119, 221), (85, 85, 0), (0, 85, 85), (85, 51, 0), (52, 86, 128), (0, 128, 0), (0, 0, 255),
    (51, 170, 221), (0, 255, 255), (85, 255, 170), (170, 255, 85), (255, 255, 0), (255, 170, 0))

# CP-VTON GMM (cp_dataset.py): head keeps RGB, cloth is the GMM target region.
CPVTON_HEAD = (HAT, HAIR, SUNGLASSES, FACE)
CPVTON_PLUS_HEAD = (HAT, SUNGLASSES, FACE)  # hair dropped to keep the collar shape
CPVTON_CLOTH = (UPPER_CLOTHES, DRESS, COAT)
# VITON (utils.extract_segmentation): body = foreground minus head; clothing = upper clothes only.
VITON_HEAD = (HAT, HAIR, SUNGLASSES, FACE)
VITON_CLOTH = (UPPER_CLOTHES,)
# Lower-garment region for the pants category (Everywear's own rule).
LOWER_CLOTH = (PANTS, SKIRT)

# Garment labels per category: (CP-VTON's im_c region, VITON's clothing mask).
CATEGORY_GARMENT = {
        spec.MEN_TSHIRTS: (CPVTON_CLOTH, VITON_CLOTH),
        spec.MEN_LONG: (CPVTON_CLOTH, VITON_CLOTH),
        spec.MEN_PANTS: (LOWER_CLOTH, LOWER_CLOTH),
}
