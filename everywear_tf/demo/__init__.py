"""The bundled demo, made by make_demo.py beside this file: a drawn person as a 256×192 frame
(``PERSON``: the ``everywear`` representation command), the same kind of person as a 720×720
photo (``PHOTO``: ``everywear-tryon --demo``), and garments."""

import os

DIRECTORY = os.path.dirname(os.path.abspath(__file__))

PERSON = os.path.join(DIRECTORY, 'person.png')
PERSON_PARSE = os.path.join(DIRECTORY, 'person_parse.png')
PERSON_POSE = os.path.join(DIRECTORY, 'person_keypoints.json')
PHOTO = os.path.join(DIRECTORY, 'photo.jpg')
PHOTO_PARSE = os.path.join(DIRECTORY, 'photo_parse.png')
PHOTO_POSE = os.path.join(DIRECTORY, 'photo_keypoints.json')
TSHIRT = os.path.join(DIRECTORY, 'tshirt.png')
TSHIRT_MASK = os.path.join(DIRECTORY, 'tshirt_mask.png')
LONG_SLEEVE = os.path.join(DIRECTORY, 'long_sleeve.png')
LONG_SLEEVE_MASK = os.path.join(DIRECTORY, 'long_sleeve_mask.png')
PANTS = os.path.join(DIRECTORY, 'pants.png')
PANTS_MASK = os.path.join(DIRECTORY, 'pants_mask.png')
