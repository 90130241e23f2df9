"""The bundled demo: one drawn person and garments, made by make_demo.py beside this file."""

import os

DIRECTORY = os.path.dirname(os.path.abspath(__file__))

PERSON = os.path.join(DIRECTORY, 'person.png')
PERSON_PARSE = os.path.join(DIRECTORY, 'person_parse.png')
PERSON_POSE = os.path.join(DIRECTORY, 'person_keypoints.json')
TSHIRT = os.path.join(DIRECTORY, 'tshirt.png')
TSHIRT_MASK = os.path.join(DIRECTORY, 'tshirt_mask.png')
LONG_SLEEVE = os.path.join(DIRECTORY, 'long_sleeve.png')
LONG_SLEEVE_MASK = os.path.join(DIRECTORY, 'long_sleeve_mask.png')
PANTS = os.path.join(DIRECTORY, 'pants.png')
PANTS_MASK = os.path.join(DIRECTORY, 'pants_mask.png')
