r"""One try-on through a model server against the same try-on in process: what a caller pays over
gRPC and REST, with tensors or PNG files on the wire, in three calls or in one.

    python -m bench.served_tryon                  # the demo t-shirt on checkpoints/demo, 15 calls
    python -m bench.served_tryon --quick          # random lite weights, 3 calls; temporary JSON
    python -m bench.served_tryon --category=men_pants --runs=25
    python -m bench.served_tryon --input=bench/results/served_tryon.json \
        --results_md=bench/RESULTS.md

Run from the repository root. The category's three modules and its one-call model
(``tryon_<category>``) are exported once into a temporary directory. The dev server
(``serving/dev_server.py``) serves them in a process of its own, as TF Serving would run beside
its callers; this process is the caller. The baseline, ``in process``, is
``pipeline.SavedModelBackend`` on the same SavedModels (what ``everywear-tryon --saved_models``
runs). Every way is then called in turn, A, B, C, ... for ``--runs`` rounds, so that the
machine's load of the moment falls on each alike, and each way's outputs are checked equal to the
baseline's (every chain output but GMM's grid, which the served ways do not fetch).
"""

import os
import sys
import tempfile
import time

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')  # keep TensorFlow's start-up chatter quiet

import numpy as np  # noqa: E402
from absl import app  # noqa: E402
from absl import flags  # noqa: E402
from absl import logging  # noqa: E402

from everywear_tf import configs  # noqa: E402
from everywear_tf import spec  # noqa: E402
from everywear_tf import weights  # noqa: E402
from everywear_tf.export import exporter  # noqa: E402
from everywear_tf.inference import pipeline  # noqa: E402
from everywear_tf.models import factory  # noqa: E402
from everywear_tf.serving import client as client_lib  # noqa: E402
from everywear_tf.serving import config as serving_config  # noqa: E402

from bench import inputs as bench_inputs  # noqa: E402
from bench import report  # noqa: E402
from bench import timing  # noqa: E402
from bench.server_process import Server  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FULL_OUTPUT = 'bench/results/served_tryon.json'
DEMO_WEIGHTS = os.path.join(ROOT, 'checkpoints', 'demo')
BLOCK = 'served_tryon'
IN_PROCESS = 'in process'
# The bound: a REST try-on with encoded images at most this many times the in-process time.
REST_TARGET = 1.5

# (name, transport, encoded, one_call), in the order they are called each round.
WAYS = (('gRPC, three calls', client_lib.GRPC, False, False),
        ('gRPC, one call', client_lib.GRPC, False, True),
        ('gRPC encoded, one call', client_lib.GRPC, True, True),
        ('REST encoded, three calls', client_lib.REST, True, False),
        ('REST encoded, one call', client_lib.REST, True, True),
        ('REST JSON numbers, one call', client_lib.REST, False, True))
REST_ENCODED_ONE_CALL = 'REST encoded, one call'

_QUICK = flags.DEFINE_bool('quick', False, 'A smoke run: random lite weights, 3 calls each; '
                           'writes into a temporary directory unless --output is given.')
_CATEGORY = flags.DEFINE_enum('category', spec.MEN_TSHIRTS, list(spec.CATEGORIES),
                              'The category (and its demo garment) to dress the demo person in.')
_WEIGHTS_ROOT = flags.DEFINE_string('weights_root', DEMO_WEIGHTS, 'Weights directories, one per '
                                    'model name (ignored with --quick: random lite weights).')
_RUNS = flags.DEFINE_integer('runs', None, 'Timed calls of each way (default 15; quick 3).')


def networks(category, weights_root):
    """{module: built network} of ``category``: from ``weights_root``, or random lite weights
    when it is None."""
    if weights_root is None:
        return {module: factory.build(configs.get(module, configs.LITE))
                for module in spec.MODULES}
    return {module: weights.load(os.path.join(weights_root, spec.model_name(module, category)),
                                 module) for module in spec.MODULES}


def export(work, category, built):
    """The three modules and the one-call model under ``work``; the models.config path."""
    names = {spec.model_name(module, category): model for module, model in built.items()}
    exporter.export_all(names, work, version=1, overwrite=True)
    path = os.path.join(work, serving_config.MODELS_CONFIG)
    serving_config.write(path, serving_config.serving_config(
            work, list(names) + [spec.category_model_name(category)]))
    return path


def _same(outputs, reference):
    """Whether every output both have is equal (the served ways leave GMM's grid out)."""
    keys = [key for key in spec.MODULE_OUTPUTS[spec.CATEGORY_MODEL] if key in reference]
    return all(key in outputs and np.array_equal(np.asarray(outputs[key]), reference[key])
               for key in keys)


def run(category, weights_root, runs, log):
    """The results dict: per way, the call's median and p90 and its ratio to in process."""
    results = {'machine': timing.machine(),
               'settings': {'category': category, 'runs': runs,
                            'weights': (os.path.relpath(weights_root, ROOT) if weights_root
                                        else 'random lite')}}
    started = time.perf_counter()
    inputs = bench_inputs.demo_inputs(category)
    with tempfile.TemporaryDirectory(prefix='everywear-bench-served-') as work:
        log(f'export {category} ({results["settings"]["weights"]}) and its one-call model')
        models_config = export(work, category, networks(category, weights_root))
        log('start the dev server in its own process')
        server = Server(models_config)
        backends = {}
        try:
            local = pipeline.SavedModelBackend(work, label=None, log=lambda message: None)
            reference = local(category, inputs)
            calls = {IN_PROCESS: lambda: local(category, inputs)}
            equal = {IN_PROCESS: True}
            for name, transport, encoded, one_call in WAYS:
                port = server.rest_port if transport == client_lib.REST else server.port
                backend = pipeline.ServerBackend(
                        f'127.0.0.1:{port}', log=lambda message: None, one_call=one_call,
                        transport=transport, encoded=encoded, label=None, timeout=600)
                backends[name] = backend
                equal[name] = _same(backend(category, inputs), reference)
                calls[name] = (lambda backend=backend: backend(category, inputs))
            log(f'{runs} calls of each of {len(calls)} ways, in turn')
            timed = timing.interleaved(calls, runs)
        finally:
            for backend in backends.values():
                backend.close()
            server.stop()
    base = timed[IN_PROCESS]['median']
    results['rows'] = [{'way': name, 'median_ms': stats['median'] * 1e3,
                        'p90_ms': stats['p90'] * 1e3, 'ratio': stats['median'] / base,
                        'equal': equal[name]} for name, stats in timed.items()]
    results['machine']['load_average_end'] = list(os.getloadavg())
    results['seconds'] = time.perf_counter() - started
    return results


def text(results, markdown=False):
    """The table and the machine's line."""
    rows = [[r['way'], f"{r['median_ms']:.1f}", f"{r['p90_ms']:.1f}", f"{r['ratio']:.2f}×",
             'yes' if r['equal'] else 'NO'] for r in results['rows']]
    table = report._table(['way', 'median ms', 'p90 ms', '/ in process', 'outputs equal'], rows,
                          markdown)
    m, s = results['machine'], results['settings']
    load = ', '.join(f'{v:.2f}' for v in m['load_average'])
    load_end = ', '.join(f'{v:.2f}' for v in m.get('load_average_end', []))
    rest = next((r for r in results['rows'] if r['way'] == REST_ENCODED_ONE_CALL), None)
    verdict = '' if rest is None else (
            f" REST with encoded images, one call: {rest['ratio']:.2f}× the in-process time "
            f"({'within' if rest['ratio'] <= REST_TARGET else 'over'} the {REST_TARGET}× "
            f"bound).")
    return (f"{table}\n\n{m['date']}, {report.cpu_line(results)}; load average {load} at the "
            f"start, {load_end} at the end. The demo person in the {s['category']} demo "
            f"garment, {s['weights']} weights, batch 1; the dev server in its own process; "
            f"median of {s['runs']} calls of each way, the ways called in turn.{verdict}\n")


OUTPUTS = report.Outputs('bench.served_tryon', BLOCK, FULL_OUTPUT, text)


def main(argv):
    """Runs what the flags ask; returns the exit status (1 if a way's outputs differ)."""
    if len(argv) > 1:
        raise app.UsageError(f'unexpected arguments: {argv[1:]}')
    if OUTPUTS.replay():
        return 0
    logging.set_verbosity(logging.WARNING)  # SavedModel writing logs every asset at INFO
    quick = _QUICK.value
    OUTPUTS.refuse_quick_into_committed(quick)
    weights_root = None if quick else _WEIGHTS_ROOT.value
    if weights_root is not None and not os.path.isdir(weights_root):
        raise app.UsageError(f'--weights_root: {weights_root}: not a directory')
    results = run(_CATEGORY.value, weights_root, _RUNS.value or (3 if quick else 15),
                  lambda m: print(f'bench.served_tryon: {m}', file=sys.stderr, flush=True))
    OUTPUTS.save(results, quick)
    return 0 if all(row['equal'] for row in results['rows']) else 1


if __name__ == '__main__':
    app.run(lambda argv: sys.exit(main(argv)))
