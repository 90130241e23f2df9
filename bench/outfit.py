"""Where a whole outfit's time goes: preprocessing, each network, transport, postprocessing.

``run`` dresses the photo stage by stage with the library's public functions, making the calls
``pipeline.outfit`` makes in the same order (pants on the body frame, then the top on the upper
crop of that result: ``preprocess.frame_for`` and ``signature_inputs``, ``chain.run_chain``,
``postprocess.selection_mask``, ``relight.relight``, ``compose`` and ``paste`` with
``categories.protected``), each timed on its own; ``reference`` runs ``pipeline.outfit`` itself
over the same modules, and the benchmark checks the two final photos equal. Nothing in the
library is replaced.

In process, a module's time is its call. Through a server, the call is split: the server's own
work is the network (``served``: the dev server's ``manager.predict`` on the SavedModel it
serves, run again on each call's inputs once the outfit is done, so that the outfit's own timing
is undisturbed), and the rest of the call is transport (serialisation, the socket, the client's
decoding).
"""

import collections
import contextlib
import time

from everywear_tf import spec
from everywear_tf.inference import categories
from everywear_tf.inference import chain as chain_lib
from everywear_tf.inference import pipeline
from everywear_tf.inference import postprocess
from everywear_tf.inference import preprocess
from everywear_tf.inference import relight

PREPROCESS = 'preprocess'
POSTPROCESS = 'postprocess'
TRANSPORT = 'transport'
RULE = 'category_rule'
OTHER = 'other'
PARTS = (PREPROCESS,) + spec.MODULES + (TRANSPORT, RULE, POSTPROCESS)


class Stopwatch:
    """Seconds accumulated per part."""

    def __init__(self):
        self.seconds = collections.Counter()

    @contextlib.contextmanager
    def part(self, name):
        """Adds the time spent inside the block to ``name``."""
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] += time.perf_counter() - start


def _slots(top, bottom):
    """(category, garment image, garment mask) in pipeline.outfit's order: pants first."""
    return [garment for garment in (bottom, top) if garment is not None]


def reference(runners, photo, parse, keypoints, top, bottom):
    """The final photo of ``pipeline.outfit`` over {category: run_module} (``run``'s
    arguments)."""
    def backend(category, inputs):
        return chain_lib.run_chain(runners[category], category, inputs)

    final, _ = pipeline.outfit(backend, photo, parse, keypoints, top=top, bottom=bottom)
    return final


def run(runners, photo, parse, keypoints, top, bottom, served=None):
    """One outfit, stage by stage, over {category: run_module}.

    Args:
        runners: {category: run_module(module, inputs)} (bench.paths runners).
        photo: the person's photo (any size), as ``pipeline.outfit`` takes it.
        parse: its LIP parse, photo size.
        keypoints: its COCO-18 keypoints in photo pixels.
        top: (category, garment image, garment mask or None), or None.
        bottom: the same for the pants, or None.
        served: for a server's runners, {category: {module: run(inputs)}} running what the
            server itself runs (``paths.served_model``); None in process.

    Returns:
        (final photo, {part: seconds}, {function: seconds}). Parts: preprocess, gmm, edm, rm,
        transport (0 in process), category_rule (the chain's own work between the modules),
        postprocess, other (what is left of the total: the loop, the batch squeeze) and total.
        Functions: ``preprocess.<function>``, ``postprocess.<function>`` and
        ``categories.protected`` (part of postprocess), summed over both garments.
    """
    parts, functions = Stopwatch(), Stopwatch()
    calls = []  # (category, module, inputs, seconds) of every module call

    def timed_module(category):
        def run_module(module, inputs):
            start = time.perf_counter()
            outputs = runners[category](module, inputs)
            calls.append((category, module, inputs, time.perf_counter() - start))
            return outputs
        return run_module

    @contextlib.contextmanager
    def stage(part, function):
        with parts.part(part), functions.part(function):
            yield

    start = time.perf_counter()
    current = photo
    for category, image, mask in _slots(top, bottom):
        with stage(PREPROCESS, 'preprocess.frame_for'):
            frame = preprocess.frame_for(category, current, parse, keypoints)
        with stage(PREPROCESS, 'preprocess.signature_inputs'):
            inputs = preprocess.signature_inputs(frame, image, mask)
        modules_before = sum(call[3] for call in calls)
        chain_start = time.perf_counter()
        outputs = chain_lib.run_chain(timed_module(category), category, inputs)
        in_modules = sum(call[3] for call in calls) - modules_before
        parts.seconds[RULE] += time.perf_counter() - chain_start - in_modules
        outputs = {key: value[0] for key, value in outputs.items()}
        with stage(POSTPROCESS, 'postprocess.selection_mask'):
            selection = postprocess.selection_mask(category, frame.parse,
                                                   outputs[spec.CLOTHING_MASK])
        with stage(POSTPROCESS, 'relight.relight'):
            tryon = relight.relight(category, frame, outputs[spec.TRYON],
                                    outputs[spec.CLOTHING_MASK], outputs[spec.WARPED_MASK],
                                    selection, outputs[spec.WARPED_CLOTH])
        with stage(POSTPROCESS, 'postprocess.compose'):
            composed = postprocess.compose(frame.image, tryon, selection)
        with stage(POSTPROCESS, 'categories.protected'):
            protect = categories.protected(category, parse)
        with stage(POSTPROCESS, 'postprocess.paste'):
            current, _ = postprocess.paste(current, composed, selection, frame.transform,
                                           protect=protect)
    total = time.perf_counter() - start

    for category, module, inputs, seconds in calls:
        if served is None:
            parts.seconds[module] += seconds
            continue
        server_start = time.perf_counter()
        served[category][module](inputs)
        network = time.perf_counter() - server_start
        parts.seconds[module] += network
        parts.seconds[TRANSPORT] += seconds - network
    split = {name: parts.seconds[name] for name in PARTS}
    split[OTHER] = total - sum(split.values())
    split['total'] = total
    return current, split, dict(functions.seconds)

