r"""Benchmarks a batch run's bookkeeping alone: ``Batch.run`` over jobs that do nothing.

    python -m bench.batch_bookkeeping                # 1k, 10k, 100k jobs; the old code at 1k, 2k
    python -m bench.batch_bookkeeping --quick    # 1k jobs; the old code at 200; temporary JSON
    python -m bench.batch_bookkeeping --output=bench/results/batch_bookkeeping.json \
        --results_md=bench/RESULTS.md
    python -m bench.batch_bookkeeping --input=bench/results/batch_bookkeeping.json \
        --results_md=bench/RESULTS.md

Run from the repository root. Each run is a fresh workspace and a fresh ``Batch`` (one worker)
whose ``run_job`` only creates its final image as an empty file (tens of µs), so what is timed
is everything else ``Batch.run`` does: the name checks, the journal read and rewrite, streaming
the jobs through the thread pool, a journal record per job (fsynced in groups), the progress
display and report.json at the start and the end. ``journal`` is
``everywear_tf.inference.batch.Batch``; ``before`` is the implementation it replaced
(``tests.baselines.Batch``: every job's final image looked for and report.json rewritten with an
fsync after every job, every job submitted at once). Figures are of this machine at this moment
(the JSON records the CPU and the load average at the start and the end: under load, each job's
hand-over between the pool's thread and the main one waits for the scheduler).
``--quick`` writes into a new temporary directory unless ``--output`` is given.
"""

import os
import shutil
import sys
import tempfile
import time

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')  # keep TensorFlow's start-up chatter quiet

from absl import app  # noqa: E402
from absl import flags  # noqa: E402

from everywear_tf.inference import batch  # noqa: E402

from bench import report  # noqa: E402
from bench import timing  # noqa: E402
from tests import baselines  # noqa: E402

FULL_OUTPUT = 'bench/results/batch_bookkeeping.json'
BLOCK = 'batch'
JOURNAL, BEFORE = 'journal', 'before'

_QUICK = flags.DEFINE_bool('quick', False, 'A smoke run: 1k jobs, the old code at 200; writes '
                           'into a temporary directory unless --output is given.')
_JOBS = flags.DEFINE_list('jobs', None, 'Job counts for the journal (default 1000,10000,100000; '
                          'quick 1000).')
_BEFORE_JOBS = flags.DEFINE_list('before_jobs', None, 'Job counts for the replaced code '
                                 '(default 1000,2000; quick 200; empty: none).')


class _Instant:
    """A Batch whose jobs only leave their final image (an empty file, not fsynced), which the
    replaced code counts as done."""

    def run_job(self, job):
        with open(self.final_path(job), 'wb'):
            pass


class InstantBatch(_Instant, batch.Batch):
    """The library's Batch with instant jobs."""


class InstantBefore(_Instant, baselines.Batch):
    """The replaced Batch with instant jobs."""


_IMPLEMENTATIONS = {JOURNAL: InstantBatch, BEFORE: InstantBefore}


def jobs(count):
    """``count`` distinct jobs (one person and one pants garment each)."""
    return [batch.Job(f'p{i}_0', batch.NONE, f'g{i}_1') for i in range(count)]


def measure(implementation, count, directory):
    """Seconds of one ``run`` of ``count`` instant jobs in a fresh workspace under ``directory``."""
    source = os.path.join(directory, 'in')
    work = os.path.join(directory, f'{implementation}-{count}')
    os.makedirs(source, exist_ok=True)
    todo = jobs(count)
    runner = _IMPLEMENTATIONS[implementation](source, work, backend=None, log=lambda m: None)
    started = time.perf_counter()
    result = runner.run(todo)
    seconds = time.perf_counter() - started
    if len(result['done']) != count:
        raise RuntimeError(f'{implementation}: {len(result["done"])} of {count} jobs done')
    shutil.rmtree(work)
    return seconds


def run(journal_counts, before_counts, log):
    """The results dict: the machine, then a row per implementation and job count."""
    results = {'machine': timing.machine(), 'rows': []}
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix='everywear-bench-batch-') as directory:
        for implementation, counts in ((JOURNAL, journal_counts), (BEFORE, before_counts)):
            for count in counts:
                log(f'{implementation}: {count} jobs')
                seconds = measure(implementation, count, directory)
                results['rows'].append({'implementation': implementation, 'jobs': count,
                                        'seconds': seconds, 'per_job_us': seconds / count * 1e6})
    results['machine']['load_average_end'] = list(os.getloadavg())
    results['seconds'] = time.perf_counter() - started
    return results


def text(results, markdown=False):
    """The table (and the machine's line) of ``results``."""
    rows = [(row['implementation'], f"{row['jobs']:,}", f"{row['seconds']:.2f}",
             f"{row['per_job_us']:.0f}") for row in results['rows']]
    table = report._table(('implementation', 'jobs', 'total (s)', 'per job (µs)'), rows,
                          markdown)
    m = results['machine']
    load = ', '.join(f'{v:.2f}' for v in m['load_average'])
    load_end = ', '.join(f'{v:.2f}' for v in m.get('load_average_end', []))
    return (f"{table}\n\n{m['date']}, {m['cpu']} ({m['cores']} cores), Python {m['python']}; "
            f"load average {load} at the start, {load_end} at the end\n")



def _counts(values, default):
    try:
        return [int(v) for v in (default if values is None else values) if str(v).strip()]
    except ValueError as e:
        raise app.UsageError(f'job counts must be integers: {e}') from None


OUTPUTS = report.Outputs('bench.batch_bookkeeping', BLOCK, FULL_OUTPUT, text, markdown=False)


def main(argv):
    """Runs what the flags ask; returns the exit status."""
    if len(argv) > 1:
        raise app.UsageError(f'unexpected arguments: {argv[1:]}')
    if OUTPUTS.replay():
        return 0
    OUTPUTS.refuse_quick_into_committed(_QUICK.value)
    journal_counts = _counts(_JOBS.value, [1000] if _QUICK.value else [1000, 10000, 100000])
    before_counts = _counts(_BEFORE_JOBS.value, [200] if _QUICK.value else [1000, 2000])
    results = run(journal_counts, before_counts,
                  lambda m: print(f'bench.batch_bookkeeping: {m}', file=sys.stderr, flush=True))
    OUTPUTS.save(results, _QUICK.value)
    return 0


if __name__ == '__main__':
    app.run(lambda argv: sys.exit(main(argv)))
