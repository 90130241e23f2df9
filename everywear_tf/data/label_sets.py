"""Label sets of the public datasets' parses → the LIP ids the networks and rules use (lip.py).

One table per source label set, every source id listed with its LIP id; ids with no LIP
counterpart are listed in ``UNMAPPED`` with what they become, so nothing is dropped silently.

- ``CIHP_TO_LIP``: VITON-HD's ``image-parse-v3`` (CIHP's 20 labels). They are LIP's ids except
  10, which is torso skin (neck and bare chest) in CIHP and jumpsuits in LIP: VITON-HD's loader
  reads 10 as the neck (shadow2496/VITON-HD datasets.py, get_parse_agnostic: ``parse_neck =
  parse_array == 10``; its label groups put 10 with the background). Here it becomes CP-VTON+'s
  neck label (lip.NECK, 20): body for the body shape, neither head nor garment.
- ``ATR_TO_LIP``: Dress Code's ``label_maps/<id>_4.png`` (SCHP trained on ATR, 18 labels; ids as
  aimagelab/dress-code README.md "Human Label Map" and data/labelmap.py list them).
"""

import numpy as np

from everywear_tf import errors
from everywear_tf.data import lip

CIHP = 'cihp'
ATR = 'atr'

# source id: (source name, LIP id)
CIHP_TO_LIP = {
        0: ('background', lip.BACKGROUND), 1: ('hat', lip.HAT), 2: ('hair', lip.HAIR),
        3: ('glove', lip.GLOVE), 4: ('sunglasses', lip.SUNGLASSES),
        5: ('upper_clothes', lip.UPPER_CLOTHES), 6: ('dress', lip.DRESS), 7: ('coat', lip.COAT),
        8: ('socks', lip.SOCKS), 9: ('pants', lip.PANTS), 10: ('torso_skin', lip.NECK),
        11: ('scarf', lip.SCARF), 12: ('skirt', lip.SKIRT), 13: ('face', lip.FACE),
        14: ('left_arm', lip.LEFT_ARM), 15: ('right_arm', lip.RIGHT_ARM),
        16: ('left_leg', lip.LEFT_LEG), 17: ('right_leg', lip.RIGHT_LEG),
        18: ('left_shoe', lip.LEFT_SHOE), 19: ('right_shoe', lip.RIGHT_SHOE),
}

ATR_TO_LIP = {
        0: ('background', lip.BACKGROUND), 1: ('hat', lip.HAT), 2: ('hair', lip.HAIR),
        3: ('sunglasses', lip.SUNGLASSES), 4: ('upper_clothes', lip.UPPER_CLOTHES),
        5: ('skirt', lip.SKIRT), 6: ('pants', lip.PANTS), 7: ('dress', lip.DRESS),
        8: ('belt', lip.PANTS), 9: ('left_shoe', lip.LEFT_SHOE),
        10: ('right_shoe', lip.RIGHT_SHOE), 11: ('head', lip.FACE),
        12: ('left_leg', lip.LEFT_LEG), 13: ('right_leg', lip.RIGHT_LEG),
        14: ('left_arm', lip.LEFT_ARM), 15: ('right_arm', lip.RIGHT_ARM),
        16: ('bag', lip.BACKGROUND), 17: ('scarf', lip.SCARF),
}

TABLES = {CIHP: CIHP_TO_LIP, ATR: ATR_TO_LIP}

# (label set, source id): why it has no LIP counterpart and what it becomes.
UNMAPPED = {
        (CIHP, 10): 'torso skin: LIP has no skin label for the torso (its 10 is jumpsuits); '
                    'becomes the neck label 20 of CP-VTON+',
        (ATR, 8): 'belt: LIP has no belt; becomes pants 9 (it is worn at the lower garment\'s '
                  'waist, so a pants try-on replaces it)',
        (ATR, 11): 'head: ATR\'s head is LIP\'s face 13 (skin of the head; hair, hat and '
                   'sunglasses have their own ids in both)',
        (ATR, 16): 'bag: LIP has no bag; becomes background 0 (a carried bag is not the body)',
}
# LIP labels a source never produces (their regions carry the source's nearest label).
LIP_NOT_PRODUCED = {
        CIHP: (lip.JUMPSUITS,),
        ATR: (lip.GLOVE, lip.COAT, lip.SOCKS, lip.JUMPSUITS),
}


def lookup(label_set):
    """uint8 [256] table of ``label_set``: LIP id per source id, 255 for ids not in the set."""
    table = np.full(256, 255, np.uint8)
    for source, (_, target) in TABLES[label_set].items():
        table[source] = target
    return table


def to_lip(labels, label_set, path='<memory>'):
    """uint8 LIP ids of a label map in ``label_set`` ids; an id outside the set is a
    ParseMapError naming ``path``, the ids and the set."""
    labels = np.asarray(labels)
    table = TABLES[label_set]
    values = np.unique(labels)
    bad = [int(v) for v in values if int(v) not in table]
    if bad:
        shown = ', '.join(str(v) for v in bad[:10]) + (', ...' if len(bad) > 10 else '')
        raise errors.ParseMapError(path, f'labels [{shown}] are not {label_set.upper()} ids '
                                         f'(0..{max(table)})')
    return lookup(label_set)[labels.astype(np.intp)]
