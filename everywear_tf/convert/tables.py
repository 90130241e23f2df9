"""Declarative conversion tables with strict matching.

A table is a list of rules ``target weight path ← source tensor name (transform)`` plus regular
expressions of source tensors deliberately left out (optimizer slots, step counters...).
Applying a table checks everything before assigning anything: every source tensor is used or
excluded, every target weight is filled exactly once, shapes agree after the transform. All
mismatches are reported together, by name.
"""

import dataclasses
import re

import numpy as np

from everywear_tf import errors
from everywear_tf.models import blocks

NONE = 'none'
OIHW_TO_HWIO = 'oihw_to_hwio'  # torch conv weight → Keras kernel
TRANSPOSE = 'transpose'  # torch linear weight [out, in] → Keras kernel [in, out]
_TRANSFORMS = {
        NONE: lambda a: a,
        OIHW_TO_HWIO: lambda a: a.transpose(2, 3, 1, 0),
        TRANSPOSE: lambda a: a.T,
}


MAX_PROBLEMS = 12  # listed in one error; the count of the rest follows


class CheckpointError(errors.InputError):
    """A source checkpoint that does not match the target network."""


@dataclasses.dataclass(frozen=True)
class Rule:
    target: str
    source: str
    transform: str = NONE


@dataclasses.dataclass(frozen=True)
class Table:
    rules: tuple
    exclude: tuple = ()  # regular expressions, matched in full against source names

    def excluded(self, name):
        return any(re.fullmatch(pattern, name) for pattern in self.exclude)


def apply(table, source, model, source_path):
    """Assigns ``source`` ({name: array}) to ``model``'s weights by ``table``; strict."""
    targets = blocks.named_weights(model)
    problems = []
    used, attempted = set(), set()
    assignments = []
    filled = {}
    for rule in table.rules:
        if rule.target not in targets:
            problems.append(f'table targets unknown weight {rule.target!r}')
            continue
        if rule.target in filled:
            problems.append(f'{rule.target!r} filled twice ({filled[rule.target]!r}, '
                            f'{rule.source!r})')
            continue
        if rule.source not in source:
            problems.append(f'missing tensor {rule.source!r} (for {rule.target})')
            continue
        value = _TRANSFORMS[rule.transform](np.asarray(source[rule.source]))
        expected = tuple(targets[rule.target].shape)
        used.add(rule.source)  # matched by name: reported once, as a shape or dtype problem
        attempted.add(rule.target)
        if tuple(value.shape) != expected:
            problems.append(f'{rule.source!r} has shape {tuple(source[rule.source].shape)}, '
                            f'{rule.target} needs {expected} after {rule.transform}')
            continue
        if not np.issubdtype(value.dtype, np.floating):
            problems.append(f'{rule.source!r} is {value.dtype}, not floating point')
            continue
        filled[rule.target] = rule.source
        assignments.append((targets[rule.target], value))
    unknown = sorted(name for name in source if name not in used and not table.excluded(name))
    if unknown:
        problems.append(f'unexpected tensors {unknown}')
    unfilled = sorted(set(targets) - set(filled) - attempted)
    if unfilled:
        problems.append(f'weights left unfilled {unfilled}')
    if problems:
        shown = problems[:MAX_PROBLEMS]
        if len(problems) > MAX_PROBLEMS:
            shown.append(f'... and {len(problems) - MAX_PROBLEMS} more')
        message = '; '.join(shown)
        raise CheckpointError(source_path, f'does not match the network: {message}')
    for variable, value in assignments:
        variable.assign(value.astype(variable.dtype.as_numpy_dtype))
    return model
