"""Imports inside everywear_tf run one way, from the run-time stages down to the numerics.

The layers, lowest first (ARCHITECTURE.md §2); a module may import its own layer and those below
it, never one above. Every import statement counts, including those inside functions.
"""

import ast
import os

import pytest

_PACKAGE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                        'everywear_tf')

# Each layer: the top-level names under everywear_tf/ (subpackages or modules) it holds.
LAYERS = (
        ('base', {'__init__', 'spec', 'errors', 'fileio', 'configs', 'hardware'}),
        ('ops', {'ops'}),
        ('data', {'data'}),
        ('models', {'models', 'losses'}),
        ('weights', {'weights', 'convert', 'train'}),
        ('export', {'export'}),
        ('serving', {'serving'}),
        ('inference', {'inference'}),
        ('evaluate', {'evaluate'}),
        ('cli', {'cli', 'demo', 'demo_weights', 'beam'}),
)
_LAYER_OF = {name: index for index, (_, names) in enumerate(LAYERS) for name in names}


def _modules():
    for directory, _, files in os.walk(_PACKAGE):
        for name in files:
            if name.endswith('.py'):
                path = os.path.join(directory, name)
                relative = os.path.relpath(path, _PACKAGE)
                yield relative, relative.split(os.sep)[0].removesuffix('.py')


def _imported(path):
    """Top-level names under everywear_tf that ``path`` imports."""
    with open(path, encoding='utf-8') as f:
        tree = ast.parse(f.read(), path)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = ([f'{node.module}.{alias.name}' for alias in node.names]
                     if node.module == 'everywear_tf' else [node.module])
        else:
            continue
        for name in names:
            parts = name.split('.')
            if parts[0] == 'everywear_tf' and len(parts) > 1:
                yield parts[1], node.lineno


def test_every_module_has_a_layer():
    unknown = sorted({top for _, top in _modules()} - set(_LAYER_OF))
    assert not unknown, f'add these to LAYERS in tests/layers_test.py: {unknown}'


@pytest.mark.parametrize('relative,top', sorted(_modules()))
def test_imports_run_downwards(relative, top):
    own = _LAYER_OF[top]
    upward = [f'line {line}: everywear_tf.{name} ({LAYERS[_LAYER_OF[name]][0]})'
              for name, line in _imported(os.path.join(_PACKAGE, relative))
              if _LAYER_OF.get(name, own) > own]
    assert not upward, f'everywear_tf/{relative} ({LAYERS[own][0]}) imports upwards: {upward}'


def test_the_check_catches_an_upward_import(tmp_path):
    module = tmp_path / 'bad.py'
    module.write_text('def f():\n    from everywear_tf.inference import pipeline\n')
    assert list(_imported(module)) == [('inference', 2)]
    assert _LAYER_OF['inference'] > _LAYER_OF['data']
