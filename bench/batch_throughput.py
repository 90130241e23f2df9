r"""What a batch run costs per photo: images per second of ``everywear-batch`` end to end.

    python -m bench.batch_throughput                 # 16 photos, every mode
    python -m bench.batch_throughput --quick         # 4 photos, in process and server; temp JSON
    python -m bench.batch_throughput --input=bench/results/batch_throughput.json \
        --results_md=bench/RESULTS.md

Run from the repository root. The input directory holds N copies of the 720×720 demo photo
(``persons/p<i>_0.jpg``), every other one with its pose and parse files and the rest without,
so the photo front end estimates them (as ``everywear-batch`` does), and one t-shirt; a job per
person. The networks are the demo t-shirt weights (``checkpoints/demo``) exported once with
the front end. Each mode runs ``Batch.run`` over a fresh workspace:

- ``in_process``: the exported SavedModels in this process (``--saved_models``), 1 worker
  (``everywear-batch``'s default without a server); ``in_process_4``: the same with 4;
- ``server``: the dev server in its own process (``serving/dev_server.py``), the runner with 4
  workers (its default with ``--server``), the front end through the server too;
- ``server_batched``: the same with ``--enable_batching --batching_parameters_file=
  serving/batching.config``.

Stage times are measured from outside the library (a Batch subclass and backend subclasses
around the same calls) as exclusive thread-seconds: ``front end`` (the estimate of a photo with
no pose or parse), ``networks`` (GMM, EDM, RM: the backend call), ``read`` (photo, pose, parse,
garment), ``write`` (input/, stage/ and composed files: PNG encodes, pickles, .mat) and
``pre/post`` (the rest of a job: the frame cut, signature inputs, relight, the paste back, the
final PNG). With several workers the thread-seconds add up to more than the wall time.
"""

import os
import shutil
import sys
import tempfile
import threading
import time

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')  # keep TensorFlow's start-up chatter quiet

from absl import app  # noqa: E402
from absl import flags  # noqa: E402

from everywear_tf import demo  # noqa: E402
from everywear_tf import spec  # noqa: E402
from everywear_tf import weights  # noqa: E402
from everywear_tf.data import images  # noqa: E402
from everywear_tf.export import exporter  # noqa: E402
from everywear_tf.export import warmup  # noqa: E402
from everywear_tf.inference import batch  # noqa: E402
from everywear_tf.inference import pipeline  # noqa: E402
from everywear_tf.serving import config as serving_config  # noqa: E402

from bench import report  # noqa: E402
from bench import server_process  # noqa: E402
from bench import timing  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FULL_OUTPUT = 'bench/results/batch_throughput.json'
DEMO_WEIGHTS = os.path.join(ROOT, 'checkpoints', 'demo')
BLOCK = 'batch_throughput'
CATEGORY = spec.MEN_TSHIRTS
IN_PROCESS, IN_PROCESS_4 = 'in_process', 'in_process_4'
SERVER, SERVER_BATCHED = 'server', 'server_batched'
MODES = (IN_PROCESS, IN_PROCESS_4, SERVER, SERVER_BATCHED)
# everywear-batch's defaults (1 worker in process, 4 with a server), and 4 in process beside
WORKERS = {IN_PROCESS: 1, IN_PROCESS_4: 4, SERVER: 4, SERVER_BATCHED: 4}
STAGES = ('front end', 'networks', 'read', 'write', 'pre/post')

_QUICK = flags.DEFINE_bool('quick', False, 'A smoke run: 4 photos, in process and through the '
                           'server; writes into a temporary directory unless --output is given.')
_PHOTOS = flags.DEFINE_integer('photos', None, 'Photos (jobs) per mode (default 16; quick 4).')
_MODES = flags.DEFINE_list('modes', None, f'Which of {list(MODES)} (default all; quick '
                           f'{IN_PROCESS},{SERVER}).')


class Timers:
    """Exclusive thread-seconds per stage: a stage timed inside another is not counted twice."""

    def __init__(self):
        self.seconds = dict.fromkeys(STAGES, 0.0)
        self._lock = threading.Lock()
        self._local = threading.local()

    def time(self, stage, function, *args, **kwargs):
        """``function(*args, **kwargs)``, its time (less that of the stages inside) to
        ``stage``."""
        stack = self._local.__dict__.setdefault('stack', [])
        stack.append(0.0)
        started = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            elapsed = time.perf_counter() - started
            inner = stack.pop()
            if stack:
                stack[-1] += elapsed
            with self._lock:
                self.seconds[stage] += elapsed - inner


class TimedBatch(batch.Batch):
    """The library's Batch, its stages timed around the same calls."""

    timers = None

    def run_job(self, job):
        return self.timers.time('pre/post', super().run_job, job)

    def _person(self, person_id):
        return self.timers.time('read', super()._person, person_id)

    def _garment(self, garment_id):
        return self.timers.time('read', super()._garment, garment_id)

    def _front_end(self):
        estimate = super()._front_end()
        return lambda *args: self.timers.time('front end', estimate, *args)

    def _write_inputs(self, *args):
        return self.timers.time('write', super()._write_inputs, *args)

    def _write_result(self, *args):
        return self.timers.time('write', super()._write_result, *args)


class TimedSavedModelBackend(pipeline.SavedModelBackend):
    """The exported networks in process, each chain call timed as ``networks``."""

    timers = None

    def __call__(self, category, inputs):
        return self.timers.time('networks', super().__call__, category, inputs)


class TimedServerBackend(pipeline.ServerBackend):
    """The networks through a server, each chain call timed as ``networks``."""

    timers = None

    def __call__(self, category, inputs, label=None):
        return self.timers.time('networks', super().__call__, category, inputs, label)


def make_input(directory, photos):
    """The input directory: ``photos`` persons (every other one without pose and parse), one
    t-shirt, a job each."""
    persons = os.path.join(directory, 'persons')
    garments = os.path.join(directory, 'garments', CATEGORY)
    os.makedirs(persons)
    os.makedirs(garments)
    shutil.copy(demo.TSHIRT, os.path.join(garments, 'g0_1.png'))
    shutil.copy(demo.TSHIRT_MASK, os.path.join(garments, 'g0_1_mask.png'))
    lines = []
    for i in range(photos):
        shutil.copy(demo.PHOTO, os.path.join(persons, f'p{i}_0.jpg'))
        if i % 2 == 0:
            shutil.copy(demo.PHOTO_POSE, os.path.join(persons, f'p{i}_0_keypoints.json'))
            shutil.copy(demo.PHOTO_PARSE, os.path.join(persons, f'p{i}_0_parse.png'))
        lines.append(f'p{i}_0 g0_1 -')
    with open(os.path.join(directory, 'pairs.txt'), 'w') as f:
        f.write('\n'.join(lines) + '\n')


def export(base):
    """The demo t-shirt networks and the front end under ``base``; the models.config path."""
    from everywear_tf.inference.frontend import estimator
    names = []
    for module in spec.MODULES:
        name = spec.model_name(module, CATEGORY)
        exporter.export(weights.load(os.path.join(DEMO_WEIGHTS, name), module), base, name, 1)
        names.append(name)
    exporter.export_module(estimator.FrontEndModule.from_mediapipe(), base, spec.FRONTEND_MODEL,
                           1)
    names.append(spec.FRONTEND_MODEL)
    path = os.path.join(base, serving_config.MODELS_CONFIG)
    serving_config.write(path, serving_config.serving_config(base, names))
    return path


def run_mode(mode, base, models_config, input_dir, work, log):
    """One ``Batch.run`` of ``mode`` over a fresh workspace; the row of the results."""
    timers = Timers()
    server = None
    if mode in (IN_PROCESS, IN_PROCESS_4):
        backend = TimedSavedModelBackend(base, version=1, log=log)
    else:
        server = server_process.Server(models_config, server_process.COMMITTED_BATCHING
                                       if mode == SERVER_BATCHED else None)
        backend = TimedServerBackend(f'127.0.0.1:{server.port}', log=log, timeout=600)
    backend.timers = timers
    try:
        runner = TimedBatch(input_dir, os.path.join(work, mode), backend, log=log,
                            workers=WORKERS[mode])
        runner.timers = timers
        jobs = batch.read_jobs(os.path.join(input_dir, 'pairs.txt'))
        backend.check([CATEGORY])
        # Each path run once before the clock starts, as a server's warmup runs them at load
        # and a long run amortises them: the first calls of a SavedModel optimise its graph.
        photo = images.read_image(demo.PHOTO)
        runner._front_end()(photo, demo.PHOTO)
        person = warmup.realistic_inputs(spec.GMM)
        backend(CATEGORY, {k: person[k] for k in spec.MODULE_INPUTS[spec.GMM]})
        timers.seconds = dict.fromkeys(STAGES, 0.0)
        started = time.perf_counter()
        outcome = runner.run(jobs)
        wall = time.perf_counter() - started
    finally:
        if isinstance(backend, pipeline.ServerBackend):
            backend.close()
        if server is not None:
            server.stop()
    done, failed = len(outcome['done']), outcome.get('failed', {})
    if failed:
        raise RuntimeError(f'{mode}: {len(failed)} jobs failed: {next(iter(failed.items()))}')
    return {'mode': mode, 'workers': WORKERS[mode], 'photos': done, 'seconds': wall,
            'images_per_second': done / wall, 'stage_seconds': dict(timers.seconds),
            'estimated': len(jobs) // 2}


def run(photos, modes, log):
    """The results dict: the machine, then a row per mode."""
    results = {'machine': timing.machine(), 'rows': [],
               'settings': {'photos': photos, 'modes': list(modes), 'category': CATEGORY,
                            'photo': os.path.basename(demo.PHOTO)}}
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix='everywear-bench-batchrun-') as work:
        base = os.path.join(work, 'exported')
        log('export the demo t-shirt networks and the front end')
        models_config = export(base)
        input_dir = os.path.join(work, 'in')
        make_input(input_dir, photos)
        for mode in modes:
            log(f'{mode}: {photos} photos, {WORKERS[mode]} worker(s)')
            results['rows'].append(run_mode(mode, base, models_config, input_dir, work, log))
    results['machine']['load_average_end'] = list(os.getloadavg())
    results['seconds'] = time.perf_counter() - started
    return results


def text(results, markdown=False):
    """The table (images per second, and each stage's share of the thread-seconds)."""
    header = ['mode', 'workers', 'photos', 'wall s', 'images/s'] + \
        [f'{s} s (%)' for s in STAGES]
    rows = []
    for row in results['rows']:
        total = sum(row['stage_seconds'].values()) or 1.0
        rows.append([row['mode'], row['workers'], row['photos'], f"{row['seconds']:.1f}",
                     f"{row['images_per_second']:.2f}"] +
                    [f"{row['stage_seconds'][s]:.1f} ({100 * row['stage_seconds'][s] / total:.0f})"
                     for s in STAGES])
    table = report._table(header, rows, markdown)
    m, s = results['machine'], results['settings']
    load = ', '.join(f'{v:.2f}' for v in m['load_average'])
    load_end = ', '.join(f'{v:.2f}' for v in m.get('load_average_end', []))
    return (f"{table}\n\n{m['date']}, {m['cpu']} ({m['cores']} cores); load average {load} at "
            f"the start, {load_end} at the end. {s['photos']} copies of the {s['photo']} demo "
            f"photo, half without pose and parse (the front end estimates them), one "
            f"{s['category']} garment each; stage times are exclusive thread-seconds.\n")


OUTPUTS = report.Outputs('bench.batch_throughput', BLOCK, FULL_OUTPUT, text)


def main(argv):
    """Runs what the flags ask; returns the exit status."""
    if len(argv) > 1:
        raise app.UsageError(f'unexpected arguments: {argv[1:]}')
    if OUTPUTS.replay():
        return 0
    quick = _QUICK.value
    OUTPUTS.refuse_quick_into_committed(quick)
    modes = _MODES.value or ([IN_PROCESS, SERVER] if quick else list(MODES))
    unknown = [m for m in modes if m not in MODES]
    if unknown:
        raise app.UsageError(f'--modes: unknown {unknown}; choose from {list(MODES)}')
    photos = _PHOTOS.value or (4 if quick else 16)
    if photos < 1:
        raise app.UsageError('--photos must be at least 1')
    results = run(photos, modes,
                  lambda m: print(f'bench.batch_throughput: {m}', file=sys.stderr, flush=True))
    OUTPUTS.save(results, quick)
    return 0


if __name__ == '__main__':
    app.run(lambda argv: sys.exit(main(argv)))
