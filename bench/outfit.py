"""Where a whole outfit's time goes: preprocessing, each network, transport, postprocessing.

``pipeline.outfit`` runs unchanged; the split comes from the outside. The pipeline's
``preprocess`` and ``postprocess`` modules are replaced, for the duration of a run, by proxies
that time every call the pipeline makes into them, and the backend times each module:
in process, a module's time is its network; through a server, the server's own time in
``manager.predict`` is the network and the rest of the call is transport (serialisation, the
socket and the client's decoding).
"""

import collections
import contextlib
import functools
import time

from everywear_tf.inference import pipeline
from everywear_tf.inference import chain as chain_lib
from everywear_tf.serving import manager

PREPROCESS = 'preprocess'
POSTPROCESS = 'postprocess'
TRANSPORT = 'transport'
RULE = 'category_rule'
OTHER = 'other'


class Stopwatch:
    """Seconds accumulated per part."""

    def __init__(self):
        self.seconds = collections.Counter()

    @contextlib.contextmanager
    def part(self, name):
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] += time.perf_counter() - start

    def timed(self, name, function):
        @functools.wraps(function)
        def wrapper(*args, **kwargs):
            with self.part(name):
                return function(*args, **kwargs)
        return wrapper


class _TimedModule:
    """A module whose functions are timed under one part name, and each under
    ``<part>.<function>`` in ``functions`` (classes and constants pass through)."""

    def __init__(self, module, stopwatch, name, functions):
        self._module, self._stopwatch, self._name = module, stopwatch, name
        self._functions = functions

    def __getattr__(self, attribute):
        value = getattr(self._module, attribute)
        if not callable(value) or isinstance(value, type):
            return value
        timed = self._functions.timed(f'{self._name}.{attribute}', value)
        return self._stopwatch.timed(self._name, timed)


@contextlib.contextmanager
def _timed_stages(stopwatch, functions):
    saved = pipeline.preprocess, pipeline.postprocess
    pipeline.preprocess = _TimedModule(saved[0], stopwatch, PREPROCESS, functions)
    pipeline.postprocess = _TimedModule(saved[1], stopwatch, POSTPROCESS, functions)
    try:
        yield
    finally:
        pipeline.preprocess, pipeline.postprocess = saved


@contextlib.contextmanager
def _timed_server(stopwatch):
    """Times the dev server's own work per model (it runs in this process)."""
    original = manager.predict

    def predict(saved_model, signature_name, inputs):
        with stopwatch.part('server'):
            return original(saved_model, signature_name, inputs)

    manager.predict = predict
    try:
        yield
    finally:
        manager.predict = original


class TimedBackend:
    """A pipeline backend over {category: run_module} (paths runners) timing each module."""

    def __init__(self, runners, stopwatch, served):
        self.runners, self.stopwatch, self.served = runners, stopwatch, served
        self._category = None

    def _module(self, module, inputs):
        run_module = self.runners[self._category]
        if not self.served:
            with self.stopwatch.part(module):
                return run_module(module, inputs)
        before = self.stopwatch.seconds['server']
        start = time.perf_counter()
        outputs = run_module(module, inputs)
        total = time.perf_counter() - start
        server = self.stopwatch.seconds['server'] - before
        self.stopwatch.seconds[module] += server
        self.stopwatch.seconds[TRANSPORT] += total - server
        return outputs

    def __call__(self, category, inputs):
        start = time.perf_counter()
        modules_before = sum(self.stopwatch.seconds[k] for k in (_MODULE_PARTS + (TRANSPORT,)))
        self._category = category
        outputs = chain_lib.run_chain(self._module, category, inputs)
        spent = sum(self.stopwatch.seconds[k] for k in (_MODULE_PARTS + (TRANSPORT,)))
        self.stopwatch.seconds[RULE] += time.perf_counter() - start - (spent - modules_before)
        return outputs


_MODULE_PARTS = ('gmm', 'edm', 'rm')


def run(runners, served, photo, parse, keypoints, top, bottom):
    """One outfit through ``pipeline.outfit`` with {category: run_module}; returns (final
    photo, {part: seconds}, {'preprocess.<function>' or 'postprocess.<function>': seconds}).

    Parts: preprocess, gmm, edm, rm, transport (served only), category_rule (the chain's own
    glue), postprocess, other (the pipeline's remaining work) and total.
    """
    stopwatch, functions = Stopwatch(), Stopwatch()
    backend = TimedBackend(runners, stopwatch, served)
    with _timed_stages(stopwatch, functions), (_timed_server(stopwatch) if served
                                               else contextlib.nullcontext()):
        start = time.perf_counter()
        final, _ = pipeline.outfit(backend, photo, parse, keypoints, top=top, bottom=bottom)
        total = time.perf_counter() - start
    parts = {name: stopwatch.seconds[name] for name in (PREPROCESS,) + _MODULE_PARTS + (
            TRANSPORT, RULE, POSTPROCESS)}
    parts[OTHER] = total - sum(parts.values())
    parts['total'] = total
    return final, parts, dict(functions.seconds)
