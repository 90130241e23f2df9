"""The whole benchmark: every module and the try-on over every path, FLOPs against the measured
peak, payloads, the outfit's split, the bfloat16 variant and what each optimisation bought.

``run(settings)`` returns one JSON-ready dict; ``report.text`` prints it as tables. The networks
have random weights (``settings.config``, 'full' for the published figures); inputs are the
bundled demo frames.
"""

import dataclasses
import functools
import gc
import os
import shutil
import tempfile
import time

import numpy as np
import tensorflow as tf

from everywear_tf import configs
from everywear_tf import demo
from everywear_tf import demo_weights
from everywear_tf import spec
from everywear_tf import weights
from everywear_tf.data import images
from everywear_tf.data import keypoints as keypoint_files
from everywear_tf.data import parsing
from everywear_tf.export import modules as serving_modules
from everywear_tf.inference import chain as chain_lib
from everywear_tf.inference import pipeline
from everywear_tf.models import factory
from everywear_tf.ops import sampling
from everywear_tf.serving import client as client_lib
from everywear_tf.serving import dev_server

from bench import flops
from bench import inputs as bench_inputs
from bench import originals as originals_lib
from bench import outfit
from bench import paths
from bench import precision
from bench import timing
from tests import baselines

TRYON = 'tryon'  # the whole GMM → EDM → RM chain, beside the modules
CATEGORY = spec.MEN_TSHIRTS  # the module benchmarks' category; the outfit adds pants
OUTFIT_CATEGORIES = (spec.MEN_TSHIRTS, spec.MEN_PANTS)
BFLOAT16_PATHS = (paths.KERAS, paths.SAVED_MODEL, paths.GRPC)
ORIGINALS_BATCH = 8  # the originals' second batch size, whatever the run's throughput batch


@dataclasses.dataclass(frozen=True)
class Settings:
    """What ``run`` measures and how often; the defaults make the published figures."""
    config: str = configs.FULL
    runs: int = 20  # latency runs at batch 1, after warmup
    warmup: int = 3  # untimed calls before each timed series (throughput: at most 1)
    batch: int = 8  # throughput batch
    batch_runs: int = 5
    paths: tuple = paths.ALL
    bfloat16: bool = True
    outfit: bool = True
    outfit_runs: int = 5
    peak_size: int = 2048
    optimisations: bool = True
    demo_categories: tuple = spec.CATEGORIES  # bfloat16 against float32 on the demo set
    # One category's networks (CATEGORY's), exported once: the outfit's pants run on them too
    # (with the pants' category rule), and the server serves only CATEGORY's models.
    shared_networks: bool = False
    # Where the bfloat16 variant is timed beside float32 (those of ``paths`` only; all but
    # keras load its export).
    bfloat16_paths: tuple = BFLOAT16_PATHS
    # Freeze the objects alive after the set-up (networks, SavedModels, traces) out of the
    # garbage collector (gc.freeze), so that its collections stop scanning them: REST calls,
    # whose JSON bodies trigger many collections, are then several times faster than in a
    # caller's process, so their figures are not comparable. A smoke run's setting only.
    freeze_heap: bool = False
    # The user's checkouts of the originals (<dir>/VITON, <dir>/cp-vton), timed in turn with
    # our SavedModels (bench.originals); None: skipped with a message.
    originals_dir: str = None


# A smoke run of every path and table (the test runs it), not figures to publish: one
# category's lite networks exported once (float32 only: the bfloat16 variant in process), three
# timed calls at batch 1 and one at batch 2, no warm-up calls beyond the first calls that check
# each path's outputs, one outfit, the set-up's heap frozen.
QUICK = Settings(config=configs.LITE, runs=3, warmup=0, batch=2, batch_runs=1, outfit_runs=1,
                 peak_size=1024, demo_categories=(CATEGORY,), shared_networks=True,
                 bfloat16_paths=(paths.KERAS,), freeze_heap=True)


def _models(config_name, category):
    tf.keras.utils.set_random_seed(OUTFIT_CATEGORIES.index(category))
    return {module: factory.build(configs.get(module, config_name)) for module in spec.MODULES}


def _difference(a, b):
    """The largest difference over the outputs both give (the served try-on leaves GMM's grid
    on the server)."""
    return max(float(np.abs(np.asarray(a[k], np.float64) - np.asarray(b[k], np.float64)).max())
               for k in set(a) & set(b))


def _throughput_warmup(settings):
    return min(settings.warmup, 1)


PEAK = '_peak'  # the matmul timed in turn with the runners


def _bench_runners(runners, settings, module_inputs, chain_inputs):
    """Latency (batch 1) and throughput (batch ``settings.batch``) of each module and the chain
    on every runner, the runners called in turn (timing.interleaved) so that they are compared
    under the same conditions, with the peak's matmul among them: each module's share of the
    peak is then measured over the same seconds, whatever else loads the machine.

    Returns {name: {module: {'latency', 'throughput'}}}, and under PEAK {module: {'latency',
    'throughput'}: {'gflops', 'seconds'}} (the best matmul of those rounds).
    """
    out = {name: {} for name in runners}
    out[PEAK] = {}
    peak_call, peak_flops = timing.matmul(settings.peak_size)
    peak_call()  # traced here, not in the first timed round
    for module in spec.MODULES + (TRYON,):
        for key, batch, runs in (('latency', 1, settings.runs),
                                 ('throughput', 2, settings.batch_runs)):
            if module == TRYON:
                calls = {name: functools.partial(chain_lib.run_chain, run, CATEGORY,
                                                 chain_inputs[batch])
                         for name, run in runners.items()}
            else:
                calls = {name: functools.partial(run, module, module_inputs[batch][module])
                         for name, run in runners.items()}
            calls[PEAK] = peak_call
            stats = timing.interleaved(
                    calls, runs, settings.warmup if batch == 1 else _throughput_warmup(settings),
                    None if batch == 1 else settings.batch)
            for name in runners:
                out[name].setdefault(module, {})[key] = stats[name]
            out[PEAK].setdefault(module, {})[key] = {
                    'gflops': peak_flops / stats[PEAK]['min'] / 1e9, 'seconds': stats[PEAK]}
    return out


def _inputs_for(reference_run, batch):
    chain_inputs = bench_inputs.demo_inputs(CATEGORY, batch)
    chain_outputs = chain_lib.run_chain(reference_run, CATEGORY, chain_inputs)
    return chain_inputs, {module: bench_inputs.module_inputs(module, chain_inputs, chain_outputs)
                          for module in spec.MODULES}


def _flops(models):
    out = {}
    for module, model in models.items():
        function = paths.keras_runner({module: model}).functions[module].python_function
        signature = [tf.TensorSpec((1,) + s.shape[1:], s.dtype)
                     for s in serving_modules.input_signature(module)]
        out[module] = flops.count_function(function, signature,
                                           [layer.name for layer in model.layers])
    out[TRYON] = {'total': sum(out[m]['total'] for m in spec.MODULES)}
    return out


def _efficiency(results, module_flops, peaks):
    """GFLOP/s of each module on each path and its fraction of the peak measured in turn with
    it (``peaks``: _bench_runners' PEAK entry)."""
    out = {}
    for path, path_modules in results.items():
        out[path] = {}
        for module, result in path_modules.items():
            if 'latency' not in result:
                continue
            total = module_flops[module]['total']
            one = total / result['latency']['median'] / 1e9
            many = total * result['throughput']['items_per_second'] / 1e9
            peak_one = peaks[module]['latency']['gflops']
            peak_many = peaks[module]['throughput']['gflops']
            out[path][module] = {'gflops_batch1': one, 'gflops_batch': many,
                                 'peak_batch1': peak_one, 'peak_batch': peak_many,
                                 'fraction_of_peak_batch1': one / peak_one,
                                 'fraction_of_peak_batch': many / peak_many}
    return out


def _saved_models(version_dirs, server, category, version):
    """{module: SavedModel}: the dev server's own when it runs (loaded once for both), else
    loaded here."""
    if server is None:
        return paths.load_saved_models(version_dirs)
    return {module: paths.served_saved_model(server, spec.model_name(module, category), version)
            for module in version_dirs}


def _float32_runners(settings, reference, models, version_dirs, server):
    saved_models = (_saved_models(version_dirs, server, CATEGORY, 1)
                    if set(settings.paths) & {paths.SAVED_MODEL, paths.SAVED_MODEL_XLA} else {})
    makers = {paths.KERAS: lambda: reference,
              paths.KERAS_XLA: lambda: paths.keras_runner(models, jit_compile=True),
              paths.SAVED_MODEL: lambda: paths.saved_model_runner(saved_models),
              paths.SAVED_MODEL_XLA: lambda: paths.saved_model_runner(saved_models, True)}
    if server is not None:
        clients = paths.clients(server)
        for transport in paths.SERVED:
            makers[transport] = functools.partial(paths.client_runner, clients[transport],
                                                  CATEGORY, 1)
    return {path: makers[path]() for path in settings.paths}


def _bfloat16_paths(settings, served):
    """The paths the bfloat16 variant is timed on (gRPC only with a server)."""
    return tuple(path for path in settings.bfloat16_paths
                 if path in settings.paths and (path != paths.GRPC or served))


def _bfloat16_runners(settings, models, version_dirs, server):
    makers = {paths.KERAS: lambda: paths.keras_runner(
                      {m: factory.with_precision(model, factory.BFLOAT16)
                       for m, model in models.items()}),
              paths.SAVED_MODEL: lambda: paths.saved_model_runner(
                      _saved_models(version_dirs, server, CATEGORY, 2)),
              paths.GRPC: lambda: paths.client_runner(paths.clients(server)[paths.GRPC],
                                                      CATEGORY, 2)}
    return {path: makers[path]() for path in _bfloat16_paths(settings, server is not None)}


def _check(runners, expected, module_inputs, chain_inputs, log):
    """Each runner's outputs against the keras path's: {name: {module: max abs}}, or an error
    (a path that cannot run, e.g. an op XLA cannot compile) that drops the runner. These first
    calls are every path's warm-up: they trace, compile and connect."""
    out = {}
    for name in list(runners):
        log(f'path {name}: first calls (traces, compiles) and outputs against keras')
        try:
            out[name] = {module: _difference(expected[module], runners[name](
                    module, module_inputs[1][module])) for module in spec.MODULES}
            out[name][TRYON] = _difference(expected[TRYON], chain_lib.run_chain(
                    runners[name], CATEGORY, chain_inputs[1]))
            if name in paths.XLA:  # and the throughput batch, so nothing compiles later
                for module in spec.MODULES:
                    runners[name](module, module_inputs[2][module])
        except (tf.errors.OpError, ValueError, client_lib.ServerError) as e:
            out[name] = {'error': str(e).splitlines()[0][:300]}
            del runners[name]
    return out


def _paths_and_bfloat16(settings, reference, models, version_dirs, reduced_dirs, server, log):
    """The float32 paths and the bfloat16 variant's, all timed in one interleaved pass.

    Returns (results by path, bfloat16 timings by path, the peak by module, module inputs
    {1: ..., 2: ...}, chain inputs {1: ..., 2: ...}, the bfloat16 runners).
    """
    single = _inputs_for(reference, 1)
    batched = _inputs_for(reference, settings.batch)
    module_inputs = {1: single[1], 2: batched[1]}
    chain_inputs = {1: single[0], 2: batched[0]}
    expected = {module: reference(module, module_inputs[1][module]) for module in spec.MODULES}
    expected[TRYON] = chain_lib.run_chain(reference, CATEGORY, chain_inputs[1])
    runners = _float32_runners(settings, reference, models, version_dirs, server)
    checks = _check(runners, expected, module_inputs, chain_inputs, log)
    reduced = {}
    if settings.bfloat16:
        reduced = _bfloat16_runners(settings, models, reduced_dirs, server)
        for name, run in reduced.items():  # first calls (traces) outside the timing
            log(f'path {name}_bf16: first calls')
            for module in spec.MODULES:
                run(module, module_inputs[1][module])
    if settings.freeze_heap:
        gc.freeze()  # what the first calls traced and compiled too
    log(f'timing {len(runners) + len(reduced)} paths in turn')
    timings = _bench_runners({**runners, **{f'{name}_bf16': run for name, run in reduced.items()}},
                             settings, module_inputs, chain_inputs)
    peaks = timings.pop(PEAK)
    results = {}
    for path in settings.paths:
        if 'error' in checks[path]:
            results[path] = checks[path]
            continue
        results[path] = timings[path]
        for module, difference in checks[path].items():
            results[path][module]['max_abs_vs_keras'] = difference
    bfloat16 = {name: timings[f'{name}_bf16'] for name in reduced}
    return results, bfloat16, peaks, module_inputs, chain_inputs, reduced


def _bfloat16_differences(settings, models, chain_inputs, in_process, log):
    """bfloat16 against float32 on the demo set (demo weights) and on the random networks
    (``in_process``: (float32 keras runner, bfloat16 keras runner), whose traced functions
    are reused, or None)."""
    log('bfloat16 against float32: demo weights on the demo set, random weights')
    demo_set = {}
    for category in settings.demo_categories:
        trained = [weights.load(os.path.join(demo_weights.DIRECTORY,
                                             spec.model_name(module, category)), module)
                   for module in spec.MODULES]
        demo_set[category] = precision.compare(*precision.chains(category, trained),
                                               bench_inputs.demo_inputs(category))
    if in_process is None:
        chains = precision.chains(CATEGORY, [models[m] for m in spec.MODULES])
    else:
        chains = [chain_lib.Chain(CATEGORY, runner.functions) for runner in in_process]
    return {'demo_set': demo_set, 'random_weights': precision.compare(*chains, chain_inputs[1]),
            'random_config': settings.config}


def _outfit_inputs():
    """The demo photo (what ``everywear-tryon --demo`` dresses) and the demo garments."""
    photo = images.read_image(demo.PHOTO)
    parse = parsing.read_parse(demo.PHOTO_PARSE, image_size=photo.shape[:2])
    keypoints = keypoint_files.read_keypoints(demo.PHOTO_POSE)
    top = (spec.MEN_TSHIRTS, images.read_image(demo.TSHIRT), images.read_mask(demo.TSHIRT_MASK))
    bottom = (spec.MEN_PANTS, images.read_image(demo.PANTS), images.read_mask(demo.PANTS_MASK))
    return photo, parse, keypoints, top, bottom


def _outfits(settings, reference, models_by_category, server, log):
    """The outfit's split on each path (median of ``settings.outfit_runs``), each run checked
    equal to ``pipeline.outfit`` over the same modules, and served against in process
    (``reference``: CATEGORY's keras runner)."""
    photo, parse, keypoints, top, bottom = _outfit_inputs()
    # Whose networks each category runs (with shared_networks, CATEGORY's for both).
    networks = {c: c if c in models_by_category else CATEGORY for c in OUTFIT_CATEGORIES}
    in_process = {n: reference if n == CATEGORY else paths.keras_runner(models_by_category[n])
                  for n in set(networks.values())}
    backends = {paths.KERAS: ({c: in_process[n] for c, n in networks.items()}, None)}
    if server is not None:
        grpc_client = paths.clients(server)[paths.GRPC]
        backends[paths.GRPC] = (
                {c: paths.client_runner(grpc_client, n, 1) for c, n in networks.items()},
                {c: {m: paths.served_model(server, spec.model_name(m, n), 1)
                     for m in spec.MODULES} for c, n in networks.items()})
    out, finals = {'photo_size': list(photo.shape[:2]), 'equals_pipeline': {}}, {}
    for path, (runners, served) in backends.items():
        log(f'outfit {path}')
        expected = outfit.reference(runners, photo, parse, keypoints, top, bottom)  # warms up
        splits, details, equal = [], [], True
        for _ in range(settings.outfit_runs):
            final, parts, functions = outfit.run(runners, photo, parse, keypoints, top, bottom,
                                                 served)
            equal &= bool(np.array_equal(final, expected))
            splits.append(parts)
            details.append(functions)
        finals[path] = final
        out['equals_pipeline'][path] = equal
        out[path] = {part: float(np.median([s[part] for s in splits])) for part in splits[0]}
        out[path]['runs'] = settings.outfit_runs
        out.setdefault('functions', {})[path] = {
                name: float(np.median([d.get(name, 0.0) for d in details]))
                for name in sorted(details[0])}
    if len(finals) == 2:
        out['served_equals_in_process'] = bool(np.array_equal(*finals.values()))
    return out


def _before_after(before, after, inputs, settings):
    """``before(x)`` and ``after(x)`` timed in turn at batch 1 and at the throughput batch
    (``inputs`` {1: x, 2: x}), after one call of each at batch 1 whose outputs are compared:
    {'before': {'latency', 'throughput'}, 'after': ..., 'max_abs_difference'}."""
    out = {'before': {}, 'after': {},
           'max_abs_difference': _difference(before(inputs[1]), after(inputs[1]))}
    for key, x, runs, warmup, batch in (
            ('latency', inputs[1], settings.runs, settings.warmup, None),
            ('throughput', inputs[2], settings.batch_runs, _throughput_warmup(settings),
             settings.batch)):
        stats = timing.interleaved({'before': functools.partial(before, x),
                                    'after': functools.partial(after, x)}, runs, warmup, batch)
        for name in ('before', 'after'):
            out[name][key] = stats[name]
    return out


def _grid_sample(settings):
    """The previous sampler against the new one, alone, at batch 1 and the throughput batch."""
    out = {}
    rng = np.random.default_rng(0)
    for batch in sorted({1, settings.batch}):
        image = tf.constant(rng.uniform(size=(batch,) + spec.FRAME_SHAPE + (3,)), tf.float32)
        grid = tf.constant(rng.uniform(-1.1, 1.1, (batch,) + spec.FRAME_SHAPE + (2,)),
                           tf.float32)
        compiled = {name: tf.function(functools.partial(function, padding_mode=sampling.BORDER))
                    for name, function in (('before', baselines.grid_sample),
                                           ('after', sampling.grid_sample))}
        calls = {name: (lambda f=f, i=image, g=grid: f(i, g).numpy())
                 for name, f in compiled.items()}
        for call in calls.values():  # traced outside the timing
            call()
        out[f'batch{batch}'] = timing.interleaved(calls, settings.runs, settings.warmup)
    return out


def _gmm_graph_ops(settings, reference, models, module_inputs):
    """GMM's serving function with the previous sampler (tests.baselines.gmm_outputs) against
    the library's (``reference``'s). Returns (the comparison, the library's GMM outputs at
    batch 1)."""
    previous = tf.function(functools.partial(baselines.gmm_outputs, models[spec.GMM]),
                           input_signature=serving_modules.input_signature(spec.GMM))
    before = paths.function_runner({spec.GMM: previous})
    inputs = {batch: module_inputs[batch][spec.GMM] for batch in (1, 2)}
    comparison = _before_after(functools.partial(before, spec.GMM),
                               functools.partial(reference, spec.GMM), inputs, settings)
    return comparison, reference(spec.GMM, inputs[1])


def _grpc_transport(settings, server, module_inputs):
    """Each module over gRPC with the previous encoding (the baseline server, over the same
    manager) and decoding (the baseline client), against the dev server and client."""
    previous_server, address = paths.grpc_server(baselines.PredictionService(server.manager))
    previous_client = baselines.Client(address, timeout=300)
    try:
        before = paths.client_runner(previous_client, CATEGORY, 1)
        after = paths.client_runner(paths.clients(server)[paths.GRPC], CATEGORY, 1)
        out = {'before': {}, 'after': {}, 'max_abs_difference': {}}
        for module in spec.MODULES:
            pair = _before_after(functools.partial(before, module),
                                 functools.partial(after, module),
                                 {batch: module_inputs[batch][module] for batch in (1, 2)},
                                 settings)
            for name in ('before', 'after', 'max_abs_difference'):
                out[name][module] = pair[name]
        return out
    finally:
        previous_client.close()
        previous_server.stop(None)


def _rest_gmm(settings, server, module_inputs):
    """GMM over REST with the previous client (the collector running through the JSON)
    against the client, which pauses it; the outputs of their last timed calls compared."""
    address = f'127.0.0.1:{server.rest_port}'
    before = paths.client_runner(baselines.Client(address, transport=client_lib.REST,
                                                  timeout=300), CATEGORY, 1)
    after = paths.client_runner(paths.clients(server)[paths.REST], CATEGORY, 1)
    x = module_inputs[1][spec.GMM]
    last = {}

    def keep(name, run):
        def call():
            last[name] = run(spec.GMM, x)
        return call

    out = timing.interleaved({'before': keep('before', before), 'after': keep('after', after)},
                             settings.runs, settings.warmup)
    out['max_abs_difference'] = _difference(last['before'], last['after'])
    return out


def _grpc_tryon(settings, server, chain_inputs):
    """The served try-on with GMM and EDM one after the other, against pipeline.ServerBackend,
    which sends them together; both through the backend's client, label stable."""
    backend = pipeline.ServerBackend(f'127.0.0.1:{server.grpc_port}', timeout=300)
    try:
        def run_module(module, inputs):
            return backend.client.predict(spec.model_name(module, CATEGORY), inputs,
                                          label=spec.STABLE)

        return _before_after(lambda x: chain_lib.run_chain(run_module, CATEGORY, x),
                             lambda x: backend(CATEGORY, x, label=spec.STABLE), chain_inputs,
                             settings)
    finally:
        backend.close()


def _response_codec(settings, gmm_outputs):
    """A GMM batch-1 response encoded (server) and decoded (client), before and after."""
    codec = {'before': {}, 'after': {}}
    protos = [baselines.typed_fields(v) for v in gmm_outputs.values()]
    steps = {'encode': {'before': lambda: [baselines.typed_fields(v)
                                           for v in gmm_outputs.values()],
                        'after': lambda: [dev_server._typed_fields(v)
                                          for v in gmm_outputs.values()]},
             'decode': {'before': lambda: [baselines.from_typed_fields(p) for p in protos],
                        'after': lambda: [client_lib._from_proto(p) for p in protos]}}
    for step, functions in steps.items():
        stats = timing.interleaved(functions, settings.runs, max(settings.warmup, 1))
        for name in codec:
            codec[name][step] = stats[name]
    return codec


def _originals(settings, models, version_dirs, work, log):
    """The originals found under ``settings.originals_dir`` timed in turn with our SavedModel
    of the same network (the same weights, loaded into theirs) at batch 1 and ORIGINALS_BATCH,
    at the full config's size, the original's (a full RM exported as version 3 into ``work``
    when the run's networks are smaller); {'timed': {name: ...}, 'skipped': {name: why}}."""
    found, skipped = originals_lib.find(settings.originals_dir)
    out = {'timed': {}, 'skipped': dict(skipped)}
    if originals_lib.CPVTON in found:
        out['skipped'][originals_lib.CPVTON] = ('found, but this version times only VITON '
                                                'stage 2 against RM (CP-VTON needs torch)')
    if originals_lib.VITON not in found:
        return out
    out['skipped']['VITON stage 1'] = 'not timed by this version (only stage 2 against RM)'
    log('originals: VITON stage 2 against our RM SavedModel, in turn')
    model, rm_dir = models[spec.RM], version_dirs[spec.RM]
    if settings.config != configs.FULL:  # the original's refiner has 64 filters, hard-coded
        tf.keras.utils.set_random_seed(0)
        model = factory.build(configs.get(spec.RM, configs.FULL))
        rm_dir = paths.export_all({CATEGORY: {spec.RM: model}}, work, 3)[CATEGORY][spec.RM]
    signature = tf.saved_model.load(rm_dir).signatures[spec.SERVING_SIGNATURE]
    entry = {}
    for key, batch, runs in (('batch1', 1, settings.runs),
                             ('batch', ORIGINALS_BATCH, max(settings.batch_runs, 2))):
        floats, compact = originals_lib.rm_inputs(batch)
        theirs, source = originals_lib.viton_stage2(
                found[originals_lib.VITON], batch, weights=originals_lib.rm_weights(model))
        feed = {k: tf.constant(v) for k, v in compact.items()}

        def ours(feed=feed):
            return {k: v.numpy() for k, v in signature(**feed).items()}

        if key == 'batch1':
            got, expected = ours(), theirs(*floats)
            entry['max_abs_tryon'] = float(np.abs(
                    np.clip(np.floor((expected[0] + 1) / 2 * 255 + 0.5), 0, 255)
                    - got[spec.TRYON]).max())
            entry['max_abs_alpha'] = float(np.abs(
                    np.clip(np.floor(expected[1][..., 0] * 255 + 0.5), 0, 255)
                    - got[spec.ALPHA]).max())
            entry['source'] = source
        stats = timing.interleaved({'ours': ours,
                                    'theirs': functools.partial(theirs, *floats)},
                                   runs, max(settings.warmup, 1), batch)
        entry[key] = {'batch': batch, **stats}
        theirs.session.close()
    out['timed']['RM vs VITON stage 2'] = entry
    return out


def _optimisations(settings, reference, models, server, module_inputs, chain_inputs, log):
    """Before/after of each change, measured now, in turn: the previous code is in
    tests/baselines.py, called beside the library's on the same inputs."""
    log('optimisations: grid_sample alone; GMM with the previous sampler')
    out = {'grid_sample': _grid_sample(settings)}
    out['gmm_graph_ops'], gmm_outputs = _gmm_graph_ops(settings, reference, models,
                                                       module_inputs)
    if server is None:
        return out
    log('optimisations: gRPC with the previous typed-field encoding and decoding')
    out['grpc_transport'] = _grpc_transport(settings, server, module_inputs)
    log('optimisations: REST with the collector running through the JSON, and paused')
    out['rest_gmm'] = _rest_gmm(settings, server, module_inputs)
    log('optimisations: the served try-on with GMM and EDM one after the other, and together')
    out['grpc_tryon'] = _grpc_tryon(settings, server, chain_inputs)
    out['gmm_response_codec'] = _response_codec(settings, gmm_outputs)
    return out


def run(settings=None, log=None, work_dir=None):
    """Runs the benchmark.

    Args:
        settings: what to measure (default ``Settings()``: the published figures; ``QUICK``:
            a smoke run).
        log: called with a line of progress now and then.
        work_dir: where the exported models go (default: a temporary directory, removed).

    Returns:
        The results, JSON-ready (see the module docstring; ``report.text`` prints them).
    """
    settings = settings or Settings()
    log = log or (lambda message: None)
    started = time.perf_counter()
    results = {'settings': dataclasses.asdict(settings), 'machine': timing.machine()}
    log(f'peak: {settings.peak_size}³ float32 matmul')
    results['peak'] = timing.peak_gflops(settings.peak_size)
    categories = (CATEGORY,) if settings.shared_networks else OUTFIT_CATEGORIES
    models_by_category = {c: _models(settings.config, c) for c in categories}
    models = models_by_category[CATEGORY]
    results['flops'] = _flops(models)
    reference = paths.keras_runner(models)  # the keras path, and every check's reference
    served = any(path in paths.SERVED for path in settings.paths)
    # The bfloat16 variant is exported (version 2) only for the paths that load it.
    reduced_exported = settings.bfloat16 and any(
            path != paths.KERAS for path in _bfloat16_paths(settings, served))
    work = work_dir or tempfile.mkdtemp(prefix='everywear-bench-')
    server = None
    try:
        log(f'export {len(categories) * len(spec.MODULES)} float32 modules (version 1)'
            + (f', {len(spec.MODULES)} bfloat16 (version 2)' if reduced_exported else '')
            + ('; start the dev server' if served else ''))
        version_dirs = paths.export_all(models_by_category, work)
        versions = [1]
        reduced_dirs = {CATEGORY: None}
        if reduced_exported:
            reduced_dirs = paths.export_all({CATEGORY: models}, work, 2, factory.BFLOAT16)
            versions.append(2)
        if served:
            # The bfloat16 variant is version 2 and the canary, as a rollout would serve it.
            labels = {spec.STABLE: 1, spec.CANARY: 2} if reduced_exported else {spec.STABLE: 1}
            server = paths.start_server(work, {
                    spec.model_name(module, category): versions if category == CATEGORY else [1]
                    for category in categories for module in spec.MODULES},
                    {spec.model_name(module, CATEGORY): labels for module in spec.MODULES})
        if settings.freeze_heap:
            gc.collect()
            gc.freeze()
        (results['paths'], bfloat16_timings, results['peak_by_module'], module_inputs,
         chain_inputs, reduced) = _paths_and_bfloat16(
                settings, reference, models, version_dirs[CATEGORY], reduced_dirs[CATEGORY],
                server, log)
        if server is not None:
            results['payload_bytes'] = {
                    module: paths.payload_bytes(server, spec.model_name(module, CATEGORY),
                                                module_inputs[1][module])
                    for module in spec.MODULES}
        results['efficiency'] = _efficiency(results['paths'], results['flops'],
                                            results['peak_by_module'])
        if settings.bfloat16:
            in_process = (reference, reduced[paths.KERAS]) if paths.KERAS in reduced else None
            results['bfloat16'] = {'timings': bfloat16_timings, **_bfloat16_differences(
                    settings, models, chain_inputs, in_process, log)}
        if settings.outfit:
            results['outfit'] = _outfits(settings, reference, models_by_category, server, log)
        if settings.originals_dir:
            results['originals'] = _originals(settings, models, version_dirs[CATEGORY],
                                              work, log)
        if settings.optimisations:
            results['optimisations'] = _optimisations(settings, reference, models, server,
                                                      module_inputs, chain_inputs, log)
    finally:
        if settings.freeze_heap:
            gc.unfreeze()
        if server is not None:
            server.stop()
        if work_dir is None:
            shutil.rmtree(work, ignore_errors=True)
    log('peak again, at the end')
    results['peak_end'] = timing.peak_gflops(settings.peak_size)
    results['machine']['load_average_end'] = list(os.getloadavg())
    results['seconds'] = time.perf_counter() - started
    return results
