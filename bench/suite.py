"""The whole benchmark: every module and the try-on over every path, FLOPs against the measured
peak, payloads, the outfit's split, the bfloat16 variant and what each optimisation bought.

``run(settings)`` returns one JSON-ready dict; ``report.text`` prints it as tables. The networks
have random weights (``settings.config``, 'full' for the published figures); inputs are the
bundled demo frames.
"""

import dataclasses
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
from everywear_tf.inference import chain as chain_lib
from everywear_tf import weights
from tests import baselines
from bench import flops
from bench import inputs as bench_inputs
from bench import outfit
from bench import paths
from bench import precision
from bench import timing
from everywear_tf.data import images
from everywear_tf.data import keypoints as keypoint_files
from everywear_tf.data import parsing
from everywear_tf.models import factory
from everywear_tf.ops import sampling
from everywear_tf.serving import client as client_lib
from everywear_tf.serving import dev_server

TRYON = 'tryon'  # the whole GMM → EDM → RM chain, beside the modules
CATEGORY = spec.MEN_TSHIRTS  # the module benchmarks' category; the outfit adds pants
OUTFIT_CATEGORIES = (spec.MEN_TSHIRTS, spec.MEN_PANTS)


@dataclasses.dataclass(frozen=True)
class Settings:
    config: str = configs.FULL
    runs: int = 20  # latency runs at batch 1, after warmup
    warmup: int = 3
    batch: int = 8  # throughput batch
    batch_runs: int = 5
    paths: tuple = paths.ALL
    bfloat16: bool = True
    outfit: bool = True
    outfit_runs: int = 5
    peak_size: int = 2048
    optimisations: bool = True
    demo_categories: tuple = spec.CATEGORIES  # bfloat16 against float32 on the demo set


# A check that every part runs (the test runs it), not figures to publish.
QUICK = Settings(config=configs.LITE, runs=3, warmup=1, batch=2, batch_runs=1, outfit_runs=1,
                 peak_size=1024, demo_categories=(CATEGORY,))


def _models(config_name, category):
    tf.keras.utils.set_random_seed(OUTFIT_CATEGORIES.index(category))
    return {module: factory.build(configs.get(module, config_name)) for module in spec.MODULES}


def _difference(a, b):
    return max(float(np.abs(np.asarray(a[k], np.float64) - np.asarray(b[k], np.float64)).max())
               for k in a)


PEAK = '_peak'  # the matmul timed in turn with the runners


def _bench_runners(runners, settings, module_inputs, chain_inputs):
    """Latency (batch 1) and throughput (batch ``settings.batch``) of each module and the chain
    on every runner, the runners called in turn (timing.interleaved) so that they are compared
    under the same conditions, with the peak's matmul among them: each module's share of the
    peak is then measured over the same seconds, whatever else loads the machine.
    {name: {module: {'latency', 'throughput'}}}, and under PEAK {module: {'latency',
    'throughput'}: {'gflops', 'seconds'}} (the best matmul of those rounds)."""
    out = {name: {} for name in runners}
    out[PEAK] = {}
    peak_call, peak_flops = timing.matmul(settings.peak_size)
    for module in spec.MODULES + (TRYON,):
        for key, batch, runs in (('latency', 1, settings.runs),
                                 ('throughput', 2, settings.batch_runs)):
            if module == TRYON:
                calls = {name: (lambda r=run, x=chain_inputs[batch]: chain_lib.run_chain(r, CATEGORY, x))
                         for name, run in runners.items()}
            else:
                calls = {name: (lambda r=run, x=module_inputs[batch][module]: r(module, x))
                         for name, run in runners.items()}
            calls[PEAK] = peak_call
            stats = timing.interleaved(calls, runs, settings.warmup if batch == 1 else 1,
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
                     for s in paths.modules.input_signature(module)]
        out[module] = flops.count_function(function, signature, [l.name for l in model.layers])
    out[TRYON] = {'total': sum(out[m]['total'] for m in spec.MODULES)}
    return out


def _efficiency(results, module_flops, peaks):
    """GFLOP/s of each module on each path and its fraction of the peak measured in turn with
    it (``peaks``: _bench_runners' PEAK entry)."""
    out = {}
    for path, modules in results.items():
        out[path] = {}
        for module, result in modules.items():
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


def _float32_runners(settings, models, version_dirs, server):
    makers = {paths.KERAS: lambda: paths.keras_runner(models),
              paths.KERAS_XLA: lambda: paths.keras_runner(models, jit_compile=True),
              paths.SAVED_MODEL: lambda: paths.saved_model_runner(version_dirs),
              paths.SAVED_MODEL_XLA: lambda: paths.saved_model_runner(version_dirs, True)}
    if server is not None:
        clients = paths.clients(server)
        for transport in paths.SERVED:
            makers[transport] = lambda t=transport: paths.client_runner(clients[t], CATEGORY, 1)
    return {path: makers[path]() for path in settings.paths}


def _bfloat16_runners(models, version_dirs, server):
    reduced = {m: factory.with_precision(model, factory.BFLOAT16) for m, model in models.items()}
    runners = {paths.KERAS: paths.keras_runner(reduced),
               paths.SAVED_MODEL: paths.saved_model_runner(version_dirs)}
    if server is not None:
        runners[paths.GRPC] = paths.client_runner(paths.clients(server)[paths.GRPC], CATEGORY, 2)
    return runners


def _check(runners, expected, module_inputs, chain_inputs, log):
    """Each runner's outputs against the keras path's: {name: {module: max abs}}, or an error
    (a path that cannot run, e.g. an op XLA cannot compile) that drops the runner."""
    out = {}
    for name in list(runners):
        log(f'path {name}: first calls (traces, compiles) and outputs against keras')
        try:
            out[name] = {module: _difference(expected[module], runners[name](
                    module, module_inputs[1][module])) for module in spec.MODULES}
            out[name][TRYON] = _difference(expected[TRYON], chain_lib.run_chain(
                    runners[name], CATEGORY, chain_inputs[1]))
            for module in spec.MODULES:  # and the throughput batch, so nothing traces later
                runners[name](module, module_inputs[2][module])
        except (tf.errors.OpError, ValueError, client_lib.ServerError) as e:
            out[name] = {'error': str(e).splitlines()[0][:300]}
            del runners[name]
    return out


def _paths_and_bfloat16(settings, models, version_dirs, reduced_dirs, server, log):
    """The float32 paths and the bfloat16 variant's, all timed in one interleaved pass."""
    reference = paths.keras_runner(models)
    single = _inputs_for(reference, 1)
    batched = _inputs_for(reference, settings.batch)
    module_inputs = {1: single[1], 2: batched[1]}
    chain_inputs = {1: single[0], 2: batched[0]}
    expected = {module: reference(module, module_inputs[1][module]) for module in spec.MODULES}
    expected[TRYON] = chain_lib.run_chain(reference, CATEGORY, chain_inputs[1])
    runners = _float32_runners(settings, models, version_dirs, server)
    checks = _check(runners, expected, module_inputs, chain_inputs, log)
    reduced = {}
    if settings.bfloat16:
        reduced = {f'{name}_bf16': run
                   for name, run in _bfloat16_runners(models, reduced_dirs, server).items()}
        for name, run in reduced.items():  # first calls (traces) outside the timing
            log(f'path {name}: first calls')
            for module in spec.MODULES:
                for batch in (1, 2):
                    run(module, module_inputs[batch][module])
    log(f'timing {len(runners) + len(reduced)} paths in turn')
    timings = _bench_runners({**runners, **reduced}, settings, module_inputs, chain_inputs)
    peaks = timings.pop(PEAK)
    results = {}
    for path in settings.paths:
        if 'error' in checks[path]:
            results[path] = checks[path]
            continue
        results[path] = timings[path]
        for module, difference in checks[path].items():
            results[path][module]['max_abs_vs_keras'] = difference
    bfloat16 = {name[:-len('_bf16')]: timings[name] for name in reduced}
    return results, bfloat16, peaks, module_inputs, chain_inputs


def _bfloat16_differences(settings, models, chain_inputs, log):
    log('bfloat16 against float32: demo weights on the demo set, random full weights')
    demo_set = {}
    for category in settings.demo_categories:
        trained = [weights.load(os.path.join(demo_weights.DIRECTORY,
                                             spec.model_name(module, category)), module)
                   for module in spec.MODULES]
        demo_set[category] = precision.compare(*precision.chains(category, trained),
                                               bench_inputs.demo_inputs(category))
    random_weights = precision.compare(
            *precision.chains(CATEGORY, [models[m] for m in spec.MODULES]), chain_inputs[1])
    return {'demo_set': demo_set, 'random_weights': random_weights}


def _outfit_inputs():
    """The demo photo (what ``everywear-tryon --demo`` dresses), or the demo frame if this
    checkout has no photo."""
    person = ((demo.PHOTO, demo.PHOTO_PARSE, demo.PHOTO_POSE)
              if os.path.exists(getattr(demo, 'PHOTO', '')) else
              (demo.PERSON, demo.PERSON_PARSE, demo.PERSON_POSE))
    photo = images.read_image(person[0])
    parse = parsing.read_parse(person[1], image_size=photo.shape[:2])
    keypoints = keypoint_files.read_keypoints(person[2])
    top = (spec.MEN_TSHIRTS, images.read_image(demo.TSHIRT), images.read_mask(demo.TSHIRT_MASK))
    bottom = (spec.MEN_PANTS, images.read_image(demo.PANTS), images.read_mask(demo.PANTS_MASK))
    return photo, parse, keypoints, top, bottom


def _outfits(settings, models_by_category, server, log):
    photo, parse, keypoints, top, bottom = _outfit_inputs()
    backends = {paths.KERAS: ({category: paths.keras_runner(models)
                               for category, models in models_by_category.items()}, False)}
    if server is not None:
        grpc_client = paths.clients(server)[paths.GRPC]
        backends[paths.GRPC] = ({c: paths.client_runner(grpc_client, c, 1)
                                 for c in models_by_category}, True)
    out, finals = {'photo_size': list(photo.shape[:2])}, {}
    for path, (runner, served) in backends.items():
        log(f'outfit {path}')
        outfit.run(runner, served, photo, parse, keypoints, top, bottom)  # warm-up
        splits, details = [], []
        for _ in range(settings.outfit_runs):
            final, parts, functions = outfit.run(runner, served, photo, parse, keypoints, top,
                                                 bottom)
            splits.append(parts)
            details.append(functions)
        finals[path] = final
        out[path] = {part: float(np.median([s[part] for s in splits])) for part in splits[0]}
        out[path]['runs'] = settings.outfit_runs
        out.setdefault('functions', {})[path] = {
                name: float(np.median([d.get(name, 0.0) for d in details]))
                for name in sorted(details[0])}
    if len(finals) == 2:
        out['served_equals_in_process'] = bool(np.array_equal(*finals.values()))
    return out


def _before_after(before, after, module_inputs, settings):
    """{'before': {'latency', 'throughput'}, 'after': ...}: ``before(x)`` and ``after(x)`` timed
    in turn at batch 1 and at the throughput batch (``module_inputs`` {1: x, 2: x})."""
    out = {'before': {}, 'after': {}}
    for key, inputs, runs, batch in (('latency', module_inputs[1], settings.runs, None),
                                     ('throughput', module_inputs[2], settings.batch_runs,
                                      settings.batch)):
        stats = timing.interleaved({'before': lambda: before(inputs),
                                    'after': lambda: after(inputs)}, runs, settings.warmup,
                                   batch)
        for name in out:
            out[name][key] = stats[name]
    return out


def _with(context, function):
    def run(*args):
        with context():
            return function(*args)
    return run


def _optimisations(settings, models, server, module_inputs, log):
    """Before/after of each change, measured now, in turn: the previous code is in
    bench.baselines."""
    out = {'grid_sample': {}}
    rng = np.random.default_rng(0)
    for batch in (1, settings.batch):
        image = tf.constant(rng.uniform(size=(batch,) + spec.FRAME_SHAPE + (3,)), tf.float32)
        grid = tf.constant(rng.uniform(-1.1, 1.1, (batch,) + spec.FRAME_SHAPE + (2,)),
                           tf.float32)
        compiled = {name: tf.function(lambda i, g, f=function: f(i, g, sampling.BORDER))
                    for name, function in (('before', baselines.grid_sample),
                                           ('after', sampling.grid_sample))}
        out['grid_sample'][f'batch{batch}'] = timing.interleaved(
                {name: (lambda f=f: f(image, grid).numpy()) for name, f in compiled.items()},
                settings.runs, settings.warmup)
    log('optimisations: GMM with the previous graph ops')
    gmm_inputs = {1: module_inputs[1][spec.GMM], 2: module_inputs[2][spec.GMM]}
    with baselines.previous_graph_ops():  # traced here, so the graph keeps the previous ops
        before = paths.keras_runner({spec.GMM: models[spec.GMM]})
        before_outputs = before(spec.GMM, gmm_inputs[1])
    after = paths.keras_runner({spec.GMM: models[spec.GMM]})
    out['gmm_graph_ops'] = _before_after(lambda x: before(spec.GMM, x),
                                         lambda x: after(spec.GMM, x), gmm_inputs, settings)
    out['gmm_graph_ops']['max_abs_difference'] = _difference(before_outputs,
                                                             after(spec.GMM, gmm_inputs[1]))
    if server is None:
        return out
    log('optimisations: gRPC with the previous typed-field encoding and decoding')
    grpc_client = paths.clients(server)[paths.GRPC]
    runner = paths.client_runner(grpc_client, CATEGORY, 1)
    previous = _with(baselines.previous_transport, runner)
    out['grpc_transport'] = {'before': {}, 'after': {}}
    for module in spec.MODULES:
        pair = _before_after(lambda x, m=module: previous(m, x),
                             lambda x, m=module: runner(m, x),
                             {1: module_inputs[1][module], 2: module_inputs[2][module]},
                             settings)
        for name in pair:
            out['grpc_transport'][name][module] = pair[name]
    log('optimisations: REST with the collector running through the JSON, and paused')
    rest = paths.client_runner(paths.clients(server)[paths.REST], CATEGORY, 1)
    previous_rest = _with(baselines.previous_rest, rest)
    out['rest_gmm'] = timing.interleaved(
            {'before': lambda: previous_rest(spec.GMM, module_inputs[1][spec.GMM]),
             'after': lambda: rest(spec.GMM, module_inputs[1][spec.GMM])},
            settings.runs, settings.warmup)
    out['rest_gmm']['max_abs_difference'] = _difference(
            previous_rest(spec.GMM, module_inputs[1][spec.GMM]),
            rest(spec.GMM, module_inputs[1][spec.GMM]))
    log('optimisations: the served try-on with GMM and EDM one after the other, and together')
    chain_inputs = {1: bench_inputs.demo_inputs(CATEGORY, 1),
                    2: bench_inputs.demo_inputs(CATEGORY, settings.batch)}
    sequential = lambda x: chain_lib.run_chain(runner, CATEGORY, x)  # noqa: E731
    together = lambda x: grpc_client.tryon(CATEGORY, x, label=spec.STABLE)  # noqa: E731
    out['grpc_tryon'] = _before_after(sequential, together, chain_inputs, settings)
    out['grpc_tryon']['max_abs_difference'] = _difference(sequential(chain_inputs[1]),
                                                          together(chain_inputs[1]))
    gmm_outputs = after(spec.GMM, gmm_inputs[1])
    codec = {'before': {}, 'after': {}}
    for step in ('encode', 'decode'):
        if step == 'encode':
            functions = {'before': lambda: [baselines.typed_fields(v)
                                            for v in gmm_outputs.values()],
                         'after': lambda: [dev_server._typed_fields(v)
                                           for v in gmm_outputs.values()]}
        else:
            protos = [baselines.typed_fields(v) for v in gmm_outputs.values()]
            functions = {'before': lambda: [baselines.from_typed_fields(p) for p in protos],
                         'after': lambda: [client_lib._from_proto(p) for p in protos]}
        stats = timing.interleaved(functions, settings.runs, 1)
        for name in codec:
            codec[name][step] = stats[name]
    out['gmm_response_codec'] = codec
    return out


def run(settings=Settings(), log=None, work_dir=None):
    """Runs the benchmark; returns the results dict (see module docstring)."""
    log = log or (lambda message: None)
    started = time.perf_counter()
    results = {'settings': dataclasses.asdict(settings), 'machine': timing.machine()}
    log(f'peak: {settings.peak_size}³ float32 matmul')
    results['peak'] = timing.peak_gflops(settings.peak_size)
    models_by_category = {c: _models(settings.config, c) for c in OUTFIT_CATEGORIES}
    models = models_by_category[CATEGORY]
    results['flops'] = _flops(models)
    work = work_dir or tempfile.mkdtemp(prefix='everywear-bench-')
    server = None
    try:
        log('export (float32 version 1, bfloat16 version 2) and start the dev server')
        version_dirs = paths.export_all(models_by_category, work)
        versions = [1]
        if settings.bfloat16:
            reduced_dirs = paths.export_all({CATEGORY: models}, work, 2, factory.BFLOAT16)
            versions.append(2)
        if any(path in paths.SERVED for path in settings.paths):
            # The bfloat16 variant is version 2 and the canary, as a rollout would serve it.
            labels = {spec.STABLE: 1, spec.CANARY: 2} if settings.bfloat16 else {spec.STABLE: 1}
            server = paths.start_server(work, {
                    spec.model_name(module, category): versions if category == CATEGORY else [1]
                    for category in OUTFIT_CATEGORIES for module in spec.MODULES},
                    {spec.model_name(module, CATEGORY): labels for module in spec.MODULES})
        (results['paths'], bfloat16_timings, results['peak_by_module'], module_inputs,
         chain_inputs) = _paths_and_bfloat16(
                settings, models, version_dirs[CATEGORY],
                reduced_dirs[CATEGORY] if settings.bfloat16 else None, server, log)
        if server is not None:
            results['payload_bytes'] = {
                    module: paths.payload_bytes(server, spec.model_name(module, CATEGORY),
                                                module_inputs[1][module])
                    for module in spec.MODULES}
        results['efficiency'] = _efficiency(results['paths'], results['flops'],
                                            results['peak_by_module'])
        if settings.bfloat16:
            results['bfloat16'] = {'timings': bfloat16_timings,
                                   **_bfloat16_differences(settings, models, chain_inputs, log)}
        if settings.outfit:
            results['outfit'] = _outfits(settings, models_by_category, server, log)
        if settings.optimisations:
            results['optimisations'] = _optimisations(settings, models, server, module_inputs,
                                                      log)
    finally:
        if server is not None:
            server.stop()
        if work_dir is None:
            shutil.rmtree(work, ignore_errors=True)
    log('peak again, at the end')
    results['peak_end'] = timing.peak_gflops(settings.peak_size)
    results['machine']['load_average_end'] = list(os.getloadavg())
    results['seconds'] = time.perf_counter() - started
    return results
