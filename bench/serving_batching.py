r"""Server-side batching in the dev server: throughput and latency under concurrent clients.

    python -m bench.serving_batching                 # GMM, EDM, RM; 1, 4, 8, 16 clients
    python -m bench.serving_batching --quick         # GMM (lite), 1 and 4 clients; temp JSON
    python -m bench.serving_batching --batching_files=t0=/tmp/t0.config,t5=/tmp/t5.config
    python -m bench.serving_batching --input=bench/results/serving_batching.json \
        --results_md=bench/RESULTS.md

Run from the repository root. The networks (random weights, one category's) are exported once;
then one dev server process (``serving/dev_server.py``) per mode serves them: ``off`` (no
batching), ``on`` (``--enable_batching --batching_parameters_file=serving/batching.config``) and
one per ``--batching_files`` entry. Each client is a thread of this process with its own gRPC
channel sending the same batch-1 Predict (the warmup's realistic request, serialized once; all
outputs) in a closed loop, a new call as soon as the last answered. For every client count,
each mode gets a window of ``--seconds`` in turn, the order alternating from round to round
(``--rounds``), so the machine's load of the moment falls on every mode alike; the windows of
one mode are then pooled: requests answered per second, and the median and p99 of their
latencies. The servers are separate processes, so the clients' Python does not share the
server's interpreter lock.

Beside it, the ceiling: each module's SavedModel called in this process at batch 1, 2, 4 and 8
(in turn, the same realistic item repeated), its time per item at each. Merging requests can at
best buy the ratio of the batch-1 time per item to the lowest one (``ceiling``): where that is
near 1, the machine already runs a single item at full speed and batching has nothing to gain.
"""

import concurrent.futures
import os
import sys
import tempfile
import threading
import time

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')  # keep TensorFlow's start-up chatter quiet

import grpc  # noqa: E402
import numpy as np  # noqa: E402
from absl import app  # noqa: E402
from absl import flags  # noqa: E402

from everywear_tf import configs  # noqa: E402
from everywear_tf import spec  # noqa: E402
from everywear_tf.export import exporter  # noqa: E402
from everywear_tf.export import warmup  # noqa: E402
from everywear_tf.models import factory  # noqa: E402
from everywear_tf.serving import config as serving_config  # noqa: E402

from bench import report  # noqa: E402
from bench import timing  # noqa: E402
from bench.server_process import COMMITTED_BATCHING  # noqa: E402
from bench.server_process import Server  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FULL_OUTPUT = 'bench/results/serving_batching.json'
BLOCK = 'serving_batching'
CATEGORY = spec.MEN_TSHIRTS
OFF, ON = 'off', 'on'
_PREDICT = '/tensorflow.serving.PredictionService/Predict'
_MESSAGE_BYTES = 64 << 20

_QUICK = flags.DEFINE_bool('quick', False, 'A smoke run: GMM only, lite networks, 1 and 4 '
                           'clients, one round of 1 s windows; writes into a temporary directory '
                           'unless --output is given.')
_MODULES = flags.DEFINE_list('modules', None, 'Modules to load (default gmm,edm,rm; quick gmm).')
_CLIENTS = flags.DEFINE_list('clients', None, 'Concurrent client counts (default 1,4,8,16; '
                             'quick 1,4).')
_SECONDS = flags.DEFINE_float('seconds', None, 'Length of one timed window (default 6; quick 1).')
_ROUNDS = flags.DEFINE_integer('rounds', None, 'Windows per mode and client count, the modes '
                               'alternating (default 2; quick 1).')
_CONFIG = flags.DEFINE_enum('config', None, [configs.FULL, configs.LITE],
                            'Network size (default full; quick lite).')
_BATCHING = flags.DEFINE_string('batching_parameters_file', COMMITTED_BATCHING,
                                f'The BatchingParameters of mode {ON!r}.')
_VARIANTS = flags.DEFINE_list('batching_files', [], 'More batched modes, as name=path of a '
                              'BatchingParameters file (tuning).')


def export(work, modules, config_name):
    """Exports ``modules`` of CATEGORY (random weights) under ``work``; the models.config path."""
    names = []
    for module in modules:
        model = factory.build(configs.get(module, config_name))
        name = spec.model_name(module, CATEGORY)
        exporter.export(model, work, name, 1, overwrite=True)
        names.append(name)
    path = os.path.join(work, serving_config.MODELS_CONFIG)
    serving_config.write(path, serving_config.serving_config(work, names))
    return path


def load(port, request, clients, seconds):
    """``clients`` threads each sending ``request`` (bytes) in a closed loop for ``seconds``,
    after one untimed call each; {'latencies': [s], 'seconds': wall, 'errors': n}."""
    warm, go = threading.Barrier(clients + 1), threading.Barrier(clients + 1)
    latencies = [[] for _ in range(clients)]
    errors = [0] * clients
    window = {}

    def client(index):
        options = [('grpc.max_receive_message_length', _MESSAGE_BYTES),
                   ('grpc.max_send_message_length', _MESSAGE_BYTES)]
        with grpc.insecure_channel(f'127.0.0.1:{port}', options=options) as channel:
            call = channel.unary_unary(_PREDICT)
            call(request, timeout=600)
            warm.wait()
            go.wait()
            while True:
                start = time.perf_counter()
                if start >= window['end']:
                    return start
                try:
                    call(request, timeout=600)
                except grpc.RpcError:
                    errors[index] += 1
                    continue
                latencies[index].append(time.perf_counter() - start)

    with concurrent.futures.ThreadPoolExecutor(clients) as pool:
        futures = [pool.submit(client, i) for i in range(clients)]
        warm.wait()
        window['start'] = time.perf_counter()
        window['end'] = window['start'] + seconds
        go.wait()
        ends = [future.result() for future in futures]
    return {'latencies': [v for values in latencies for v in values],
            'seconds': max(ends) - window['start'], 'errors': sum(errors)}


def _read(path):
    with open(path) as f:
        return f.read()


CEILING_BATCHES = (1, 2, 4, 8)


def ceiling(work, module, runs):
    """{'module', 'batches', 'ms_per_item' (one per batch), 'ceiling'} of ``module``'s
    SavedModel under ``work``, called in this process at each of CEILING_BATCHES in turn."""
    import tensorflow as tf
    name = spec.model_name(module, CATEGORY)
    function = tf.saved_model.load(os.path.join(work, name, '1')).signatures[
            spec.SERVING_SIGNATURE]
    calls = {}
    for batch in CEILING_BATCHES:
        inputs = {k: tf.constant(np.repeat(v, batch, axis=0))
                  for k, v in warmup.realistic_inputs(module, batch=1).items()}
        calls[batch] = (lambda inputs=inputs: function(**inputs))
    timed = timing.interleaved(calls, runs, warmup=1)
    per_item = [timed[batch]['median'] * 1e3 / batch for batch in CEILING_BATCHES]
    return {'module': module, 'batches': list(CEILING_BATCHES), 'ms_per_item': per_item,
            'ceiling': per_item[0] / min(per_item)}


def run(modules, clients, seconds, rounds, config_name, batched, log, ceiling_runs=5):
    """The results dict. ``batched``: {mode name: BatchingParameters file}; mode OFF is added."""
    results = {'machine': timing.machine(), 'rows': [],
               'settings': {'modules': list(modules), 'clients': list(clients),
                            'seconds': seconds, 'rounds': rounds, 'config': config_name,
                            'category': CATEGORY,
                            'batching': {name: _read(path) for name, path in
                                         batched.items()}}}
    started = time.perf_counter()
    modes = [OFF] + list(batched)
    with tempfile.TemporaryDirectory(prefix='everywear-bench-batching-') as work:
        log(f'export {", ".join(modules)} ({config_name})')
        models_config = export(work, modules, config_name)
        servers = {}
        try:
            for mode in modes:
                log(f'start the dev server, batching {mode}')
                servers[mode] = Server(models_config, batched.get(mode))
            for module in modules:
                name = spec.model_name(module, CATEGORY)
                request = warmup.predict_request(
                        name, warmup.realistic_inputs(module, batch=1)).SerializeToString()
                pooled = {(c, m): {'latencies': [], 'seconds': 0.0, 'errors': 0}
                          for c in clients for m in modes}
                for round_index in range(rounds):
                    for count in clients:
                        order = modes if round_index % 2 == 0 else modes[::-1]
                        for mode in order:
                            log(f'{module}: {count} clients, batching {mode}, round '
                                f'{round_index + 1}')
                            window = load(servers[mode].port, request, count, seconds)
                            cell = pooled[(count, mode)]
                            cell['latencies'] += window['latencies']
                            cell['seconds'] += window['seconds']
                            cell['errors'] += window['errors']
                for (count, mode), cell in pooled.items():
                    values = np.asarray(cell['latencies'])
                    results['rows'].append({
                            'module': module, 'clients': count, 'mode': mode,
                            'requests': int(values.size), 'seconds': cell['seconds'],
                            'errors': cell['errors'],
                            'throughput': values.size / cell['seconds'],
                            'p50_ms': float(np.percentile(values, 50) * 1e3) if values.size
                            else None,
                            'p99_ms': float(np.percentile(values, 99) * 1e3) if values.size
                            else None})
            for module in modules:
                log(f'{module}: the SavedModel in process at batch {CEILING_BATCHES}')
                results.setdefault('ceiling', []).append(
                        ceiling(work, module, ceiling_runs))
        finally:
            for server in servers.values():
                server.stop()
    results['machine']['load_average_end'] = list(os.getloadavg())
    results['seconds'] = time.perf_counter() - started
    return results


def _ms(value):
    return '—' if value is None else f'{value:.0f}'


def text(results, markdown=False):
    """The table (throughput ratios to ``off`` in the same run) and the machine's line."""
    modes = list(dict.fromkeys(row['mode'] for row in results['rows']))
    cells = {(r['module'], r['clients'], r['mode']): r for r in results['rows']}
    header = ['module', 'clients'] + [f'{m} req/s' for m in modes] + \
        [f'{m} / off' for m in modes if m != OFF] + [f'{m} p50 / p99 ms' for m in modes]
    rows = []
    for module, count in dict.fromkeys((r['module'], r['clients']) for r in results['rows']):
        row = [module, count]
        base = cells[(module, count, OFF)]['throughput']
        row += [f"{cells[(module, count, m)]['throughput']:.2f}" for m in modes]
        row += [f"{cells[(module, count, m)]['throughput'] / base:.2f}×" for m in modes
                if m != OFF]
        row += [f"{_ms(cells[(module, count, m)]['p50_ms'])} / "
                f"{_ms(cells[(module, count, m)]['p99_ms'])}" for m in modes]
        rows.append(row)
    table = report._table(header, rows, markdown)
    m, s = results['machine'], results['settings']
    load = ', '.join(f'{v:.2f}' for v in m['load_average'])
    load_end = ', '.join(f'{v:.2f}' for v in m.get('load_average_end', []))
    errors = sum(r['errors'] for r in results['rows'])
    limits = [f"{c['module']} {' / '.join(f'{v:.0f}' for v in c['ms_per_item'])} (ceiling "
              f"{c['ceiling']:.2f}×)" for c in results.get('ceiling', [])]
    ceiling_line = '' if not limits else (
            '\n\nThe SavedModel in process, ms per item at batch '
            f"{' / '.join(str(b) for b in results['ceiling'][0]['batches'])}: "
            f"{'; '.join(limits)}. The ceiling (batch 1's time per item over the lowest) bounds "
            'what merging requests can buy on this machine.')
    return (f"{table}{ceiling_line}\n\n{m['date']}, {report.cpu_line(results)}; load "
            f"average {load} at the start, {load_end} at the end. {s['config']} networks "
            f"(random weights), {s['category']}, batch-1 gRPC Predicts in closed loops, "
            f"{s['rounds']} window(s) of "
            f"{s['seconds']:g} s per mode and client count, modes alternating; "
            f"{errors} failed calls.\n")



def _variants(entries):
    variants = {}
    for entry in entries:
        name, _, path = entry.partition('=')
        if not name or not path or name in (OFF, ON):
            raise app.UsageError(f'--batching_files: {entry!r} is not name=path (names other '
                                 f'than {OFF!r} and {ON!r})')
        if not os.path.isfile(path):
            raise app.UsageError(f'--batching_files: {path}: not a file')
        variants[name] = path
    return variants


OUTPUTS = report.Outputs('bench.serving_batching', BLOCK, FULL_OUTPUT, text)


def main(argv):
    """Runs what the flags ask; returns the exit status."""
    if len(argv) > 1:
        raise app.UsageError(f'unexpected arguments: {argv[1:]}')
    if OUTPUTS.replay():
        return 0
    quick = _QUICK.value
    OUTPUTS.refuse_quick_into_committed(quick)
    modules = _MODULES.value or ([spec.GMM] if quick else list(spec.MODULES))
    unknown = [m for m in modules if m not in spec.MODULES]
    if unknown:
        raise app.UsageError(f'--modules: unknown {unknown}; choose from {list(spec.MODULES)}')
    try:
        clients = [int(c) for c in (_CLIENTS.value or ([1, 4] if quick else [1, 4, 8, 16]))]
    except ValueError as e:
        raise app.UsageError(f'--clients must be integers: {e}') from None
    batched = {ON: _BATCHING.value, **_variants(_VARIANTS.value)}
    results = run(modules, clients, _SECONDS.value or (1.0 if quick else 6.0),
                  _ROUNDS.value or (1 if quick else 2),
                  _CONFIG.value or (configs.LITE if quick else configs.FULL), batched,
                  lambda m: print(f'bench.serving_batching: {m}', file=sys.stderr, flush=True),
                  ceiling_runs=2 if quick else 5)
    OUTPUTS.save(results, quick)
    return 0


if __name__ == '__main__':
    app.run(lambda argv: sys.exit(main(argv)))
