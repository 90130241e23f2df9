"""Declarative conversion tables, applied strictly.

A ``Table`` is a tuple of ``Rule``s, each ``target weight path ← source tensor name (transform)``,
plus regular expressions naming the source tensors left out on purpose (optimizer slots, step
counters...). Target paths are those of ``blocks.named_weights`` (``'<layer>/<weight>'``).

``apply_table`` checks everything before assigning anything: every source tensor is used by a
rule or excluded by a pattern, every target weight is filled exactly once, each tensor is floating
point, finite and of the right shape after its transform. All problems are reported together, by
name, in one ``CheckpointError``; the network is left untouched then.
"""

import dataclasses
import os
import re
from collections.abc import Iterable
from collections.abc import Mapping
from collections.abc import Sequence

import numpy as np
import tensorflow as tf

from everywear_tf.convert import errors
from everywear_tf.models import blocks

# Re-exported: converters and their callers catch it as ``tables.CheckpointError`` too.
CheckpointError = errors.CheckpointError

NONE = 'none'
OIHW_TO_HWIO = 'oihw_to_hwio'  # torch Conv2d weight [out, in, h, w] → Keras [h, w, in, out]
TRANSPOSE = 'transpose'  # torch Linear weight [out, in] → Keras Dense kernel [in, out]

# transform: the axis permutation it applies (target = source.transpose(permutation)).
_PERMUTATIONS = {NONE: None, OIHW_TO_HWIO: (2, 3, 1, 0), TRANSPOSE: (1, 0)}
TRANSFORMS = tuple(_PERMUTATIONS)


@dataclasses.dataclass(frozen=True)
class Rule:
    """``target`` (our weight path) ← ``source`` (the original's tensor name) by ``transform``."""
    target: str
    source: str
    transform: str = NONE

    def __post_init__(self):
        if self.transform not in _PERMUTATIONS:
            raise ValueError(f'unknown transform {self.transform!r} in the rule for '
                             f'{self.target!r}; known: {TRANSFORMS}')

    def source_shape(self, target_shape: Iterable[int]) -> tuple[int, ...] | None:
        """The shape the source tensor needs for a target weight of ``target_shape`` (None if the
        transform cannot produce that rank)."""
        target_shape = tuple(int(d) for d in target_shape)
        permutation = _PERMUTATIONS[self.transform]
        if permutation is None:
            return target_shape
        if len(target_shape) != len(permutation):
            return None
        source_shape = [0] * len(permutation)
        for axis, source_axis in enumerate(permutation):
            source_shape[source_axis] = target_shape[axis]
        return tuple(source_shape)

    def apply(self, value: np.ndarray) -> np.ndarray:
        """The source array in the target layout."""
        permutation = _PERMUTATIONS[self.transform]
        return value if permutation is None else value.transpose(permutation)


@dataclasses.dataclass(frozen=True)
class Table:
    """Rules plus ``exclude``: regular expressions, each matched in full against source names.

    A table is checked on construction: one rule per target, one rule per source, and no rule
    whose source an exclusion pattern would also swallow.
    """
    rules: tuple
    exclude: tuple = ()

    def __post_init__(self):
        object.__setattr__(self, 'rules', tuple(self.rules))
        object.__setattr__(self, 'exclude', tuple(self.exclude))
        for pattern in self.exclude:
            re.compile(pattern)
        problems = []
        for field in ('target', 'source'):
            seen = set()
            for rule in self.rules:
                value = getattr(rule, field)
                if value in seen:
                    problems.append(f'two rules with {field} {value!r}')
                seen.add(value)
        problems += [f'rule source {rule.source!r} is also excluded' for rule in self.rules
                     if self.excluded(rule.source)]
        if problems:
            raise ValueError(f'inconsistent conversion table: {"; ".join(problems)}')

    def excluded(self, name: str) -> bool:
        """Whether source tensor ``name`` is left out on purpose (an exclusion pattern matches it
        in full)."""
        return any(re.fullmatch(pattern, name) for pattern in self.exclude)

    @property
    def sources(self) -> tuple[str, ...]:
        """The source tensor names the rules read, in rule order."""
        return tuple(rule.source for rule in self.rules)

    @property
    def targets(self) -> tuple[str, ...]:
        """The target weight paths (``'<layer>/<weight>'``) the rules fill, in rule order."""
        return tuple(rule.target for rule in self.rules)

    def source_shapes(self, model: tf.keras.Model) -> dict[str, tuple[int, ...] | None]:
        """{source name: shape it needs} for ``model`` (checks a table without any weights)."""
        targets = blocks.named_weights(model)
        return {rule.source: rule.source_shape(targets[rule.target].shape)
                for rule in self.rules if rule.target in targets}


def slots(sources: Iterable[str], suffixes: Sequence[str], separator: str = '/') -> tuple[str, ...]:
    """Exclusion patterns naming exactly ``<source><separator><suffix>`` for each pair (a TF1
    Adam optimizer's ``<variable>/Adam`` and ``<variable>/Adam_1``, a torch batch norm's
    ``<module>.num_batches_tracked``...)."""
    return tuple(re.escape(f'{source}{separator}{suffix}')
                 for source in sources for suffix in suffixes)


def _fmt(shape):
    return str(tuple(int(d) for d in shape))


def check_table(table: Table, source: Mapping[str, np.ndarray], model: tf.keras.Model
                ) -> tuple[list[str], list[tuple[tf.Variable, np.ndarray]]]:
    """Every problem in applying ``table`` to ``source`` and ``model``, as strings (empty: fits),
    and the assignments [(variable, float array)] it would make."""
    targets = blocks.named_weights(model)
    missing, unknown_targets, shapes, dtypes, nonfinite = [], [], [], [], []
    assignments = []
    for rule in table.rules:
        variable = targets.get(rule.target)
        if variable is None:
            unknown_targets.append(rule.target)
            continue
        if rule.source not in source:
            missing.append(f'{rule.source!r} (for {rule.target})')
            continue
        value = np.asarray(source[rule.source])
        needed = rule.source_shape(variable.shape)
        if needed is None:
            unknown_targets.append(f'{rule.target} (a {variable.shape.rank}-d weight cannot come '
                                   f'from {rule.transform})')
            continue
        if value.shape != needed:
            shapes.append(f'{rule.source!r} has shape {_fmt(value.shape)}, {rule.target} needs '
                          f'{_fmt(needed)}')
            continue
        if not (np.issubdtype(value.dtype, np.floating) and value.dtype.itemsize <= 8):
            dtypes.append(f'{rule.source!r} is {value.dtype}')
            continue
        bad = int(np.size(value) - np.count_nonzero(np.isfinite(value)))
        if bad:
            nonfinite.append(f'{rule.source!r} ({bad} of {value.size})')
            continue
        assignments.append((variable, rule.apply(value)))
    mapped = set(table.sources)
    unexpected = sorted(name for name in source if name not in mapped and not table.excluded(name))
    unfilled = sorted(set(targets) - set(table.targets))
    problems = []
    for label, names in (('missing tensors', missing),
                         ('unexpected tensors (neither converted nor excluded)',
                          [repr(n) for n in unexpected]),
                         ('wrong shapes', shapes),
                         ('not floating point', dtypes),
                         ('non-finite values', nonfinite),
                         ('network weights no rule fills', unfilled),
                         ('rules for weights the network lacks', unknown_targets)):
        problems += [f'{label}: {name}' for name in names]
    return problems, assignments


def summarize(problems: Sequence[str], limit: int | None = None) -> str:
    """``problems`` grouped by kind: "missing tensors: 'a' (for x); 'b' (for y). wrong shapes:
    ..."; with ``limit``, only the first ``limit`` problems, then '... and N more'."""
    shown = problems if limit is None else problems[:limit]
    groups = {}
    for problem in shown:
        label, _, name = problem.partition(': ')
        groups.setdefault(label, []).append(name)
    text = '. '.join(f'{label}: {"; ".join(names)}' for label, names in groups.items())
    if len(shown) < len(problems):
        text += f'. ... and {len(problems) - len(shown)} more'
    return text


def apply_table(table: Table, source: Mapping[str, np.ndarray], model: tf.keras.Model,
                source_path: os.PathLike | str) -> tf.keras.Model:
    """Assigns ``source`` ({name: array}) to ``model``'s weights by ``table``; returns ``model``.

    Raises CheckpointError naming ``source_path`` and listing every problem (nothing is assigned
    then).
    """
    problems, assignments = check_table(table, source, model)
    if problems:
        raise errors.CheckpointError(
                source_path, f'does not match the network ({len(problems)} problem'
                             f'{"s" if len(problems) > 1 else ""}): {summarize(problems)}',
                problems)
    for variable, value in assignments:
        variable.assign(value.astype(variable.dtype.as_numpy_dtype))
    return model


apply = apply_table  # the earlier name
