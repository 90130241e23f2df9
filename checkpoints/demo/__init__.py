"""The demo weights, installed with the package as ``everywear_tf.demo_weights`` (setup.py maps
this directory there) so the demo runs from a plain ``pip install .``."""

import os

DIRECTORY = os.path.dirname(os.path.abspath(__file__))
