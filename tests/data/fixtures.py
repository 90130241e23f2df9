"""Paths of the committed fixtures (tests/testdata, made by make_fixtures.py)."""

import os

DIRECTORY = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'testdata')


def path(*parts):
    return os.path.join(DIRECTORY, *parts)
