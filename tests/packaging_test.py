"""pyproject.toml describes the package as it is: every subpackage listed, no benchmarks."""

import os
import tomllib

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _project():
    with open(os.path.join(_ROOT, 'pyproject.toml'), 'rb') as f:
        return tomllib.load(f)


def test_every_subpackage_is_listed_and_nothing_else():
    listed = set(_project()['tool']['setuptools']['packages'])
    found = {'everywear_tf.demo_weights'}
    for directory, _, files in os.walk(os.path.join(_ROOT, 'everywear_tf')):
        if '__init__.py' in files:
            found.add(os.path.relpath(directory, _ROOT).replace(os.sep, '.'))
    assert listed == found
    assert not any(name.startswith('everywear_tf.bench') for name in listed)


def test_the_version_has_one_source():
    import everywear_tf
    project = _project()['project']
    assert 'version' not in project and 'version' in project['dynamic']
    assert _project()['tool']['setuptools']['dynamic']['version'] == {
            'attr': 'everywear_tf.__version__'}
    assert everywear_tf.__version__


def test_the_beam_extra_is_pinned_and_the_tests_install_it():
    extras = _project()['project']['optional-dependencies']
    assert extras['beam'] == ['apache-beam==2.77.0']  # resolves with the pinned stack
    assert 'everywear-tf[beam]' in extras['test']  # tests/beam/ run, never skip
    assert _project()['project']['scripts']['everywear-beam'] == 'everywear_tf.beam.command:run'
