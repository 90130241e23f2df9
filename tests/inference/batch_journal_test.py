"""The batch's bookkeeping: the journal (what is trusted on resume, unreadable lines recovered
from, SIGKILL at random moments resuming to the uninterrupted run's bytes), the interrupted
run's report, the in-flight bound (memory flat with 100k queued instant jobs) and the progress
display.

Most runs use a Batch whose jobs are instant (``run_job`` leaves an empty final image); the
SIGKILL test runs the real job (preprocessing, paste-back, every workspace file) with the
stand-in backend of batch_bad_inputs_test in a subprocess.
"""

import concurrent.futures
import hashlib
import io
import json
import os
import random
import signal
import subprocess
import sys
import time
import tracemalloc

import pytest

from everywear_tf.inference import batch
from everywear_tf.inference import workspace

from tests.inference.batch_bad_inputs_test import FakeBackend
from tests.inference.batch_bad_inputs_test import _source

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class Instant(batch.Batch):
    """Jobs that only leave their final image (or fail, for the names in ``fail``); records
    the jobs run."""

    def __init__(self, *args, fail=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fail, self.ran = set(fail), []

    def run_job(self, job):
        self.ran.append(job.name)
        if job.name in self.fail:
            raise RuntimeError(f'{job.name} failed')
        with open(self.final_path(job), 'wb') as f:
            f.write(job.name.encode())


def _jobs(count):
    return [batch.Job(f'p{i}_0', batch.NONE, f'g{i}_1') for i in range(count)]


def _instant(tmp_path, log=None, **kwargs):
    (tmp_path / 'in').mkdir(exist_ok=True)
    return Instant(str(tmp_path / 'in'), str(tmp_path / 'ws'), None,
                   log=log or (lambda m: None), **kwargs)


def _journal_lines(work):
    return (work / 'output' / workspace.JOURNAL).read_bytes().splitlines()


def test_the_journal_is_what_a_rerun_trusts(tmp_path):
    jobs = _jobs(6)
    first = _instant(tmp_path, fail={jobs[5].name})
    report = first.run(jobs)
    assert report['done'] == [job.name for job in jobs[:5]]
    assert list(report['failed']) == [jobs[5].name]
    work = tmp_path / 'ws'
    lines = [json.loads(line) for line in _journal_lines(work)]
    assert sorted(entry['job'] for entry in lines) == sorted(job.name for job in jobs)
    assert {'job': jobs[5].name, 'failed': report['failed'][jobs[5].name]} in lines
    # A final image without its record (killed between the two) and a record whose image is
    # gone are redone; so is the failed job; the rest is trusted without being redone.
    kept = [line for line in _journal_lines(work) if jobs[1].name.encode() not in line]
    (work / 'output' / workspace.JOURNAL).write_bytes(b'\n'.join(kept) + b'\n')
    os.remove(first.final_path(jobs[3]))
    second = _instant(tmp_path)
    report = second.run(jobs)
    assert sorted(second.ran) == sorted([jobs[1].name, jobs[3].name, jobs[5].name])
    assert report['done'] == [job.name for job in jobs] and report['failed'] == {}
    assert json.loads((work / 'output' / 'report.json').read_text()) == report
    assert _instant(tmp_path).run(jobs) == report  # and a third run redoes nothing


def test_unreadable_journal_lines_are_ignored_and_their_jobs_redone(tmp_path):
    jobs = _jobs(5)
    _instant(tmp_path).run(jobs)
    work = tmp_path / 'ws'
    path = work / 'output' / workspace.JOURNAL
    line = {json.loads(entry)['job']: entry for entry in _journal_lines(work)}
    names = [job.name for job in jobs]
    # Line 2 garbled, a record of another shape, a blank line, and the last line cut short
    # (a process killed in the middle of the write).
    broken = [line[names[0]], b'{"job": "p1_0_-_g1_1", "do\xff', line[names[2]],
              b'["p2_0_-_g2_1"]', b'', line[names[3]], line[names[4]][:-7]]
    path.write_bytes(b'\n'.join(broken))
    notes = []
    rerun = _instant(tmp_path, log=notes.append)
    report = rerun.run(jobs)
    assert sorted(rerun.ran) == sorted([jobs[1].name, jobs[4].name])
    assert report['done'] == [job.name for job in jobs] and report['failed'] == {}
    note = next(n for n in notes if 'unreadable' in n)
    assert str(path) in note and 'ignored 3 unreadable lines (line 2, 4, 7)' in note, notes
    # Rewritten compacted: one whole record per job.
    entries = [json.loads(line) for line in _journal_lines(work)]
    assert sorted(e['job'] for e in entries) == sorted(j.name for j in jobs)
    assert all(e['done'] is True for e in entries)


def test_a_workspace_of_the_previous_version_is_resumed_from_its_report(tmp_path):
    jobs = _jobs(3)
    first = _instant(tmp_path)
    first.run(jobs)
    os.remove(tmp_path / 'ws' / 'output' / workspace.JOURNAL)  # as the previous version left it
    rerun = _instant(tmp_path)
    assert rerun.run(jobs)['done'] == [job.name for job in jobs] and rerun.ran == []


def test_a_journal_that_is_not_a_file_is_refused_before_any_job(tmp_path):
    (tmp_path / 'ws' / 'output' / workspace.JOURNAL).mkdir(parents=True)
    run = _instant(tmp_path)
    with pytest.raises(batch.WorkspaceError, match='journal.jsonl: exists and is not a regular'):
        run.run(_jobs(2))
    assert run.ran == []


def test_an_interrupted_run_writes_its_report(tmp_path):
    jobs = _jobs(8)

    class Interrupted(Instant):
        def run_job(self, job):
            if job == jobs[4]:
                raise KeyboardInterrupt  # Ctrl-C (the CLI turns SIGTERM into this too)
            super().run_job(job)

    (tmp_path / 'in').mkdir()
    notes = []
    run = Interrupted(str(tmp_path / 'in'), str(tmp_path / 'ws'), None, log=notes.append)
    with pytest.raises(KeyboardInterrupt):
        run.run(jobs)
    saved = json.loads((tmp_path / 'ws' / 'output' / 'report.json').read_text())
    assert set(saved['done']) == set(run.ran) - {jobs[4].name}
    assert saved['done'] == [job.name for job in jobs if job.name in saved['done']]
    assert set(job.name for job in jobs[:4]) <= set(saved['done'])
    assert saved['total'] == 8 and sorted(saved['jobs']) == sorted(j.name for j in jobs)
    assert any('interrupted after' in note and 'rerun to go on' in note for note in notes)
    assert len(_journal_lines(tmp_path / 'ws')) == len(saved['done'])
    rerun = _instant(tmp_path)
    assert rerun.run(jobs)['done'] == [job.name for job in jobs]
    assert sorted(rerun.ran) == sorted(set(j.name for j in jobs) - set(saved['done']))


@pytest.mark.slow  # 100k jobs through the pool under tracemalloc: 10-60 s with the load
def test_memory_is_flat_with_100k_queued_jobs(tmp_path, monkeypatch):
    """At most 2 × workers jobs are submitted and not finished at any time; the run's peak
    above the jobs list stays within what its report needs (a few hundred bytes a job; a
    future per job would add over 1 kB each)."""
    jobs = _jobs(100_000)
    outstanding, most = set(), [0]

    class Counting(concurrent.futures.ThreadPoolExecutor):
        def submit(self, *args, **kwargs):
            future = super().submit(*args, **kwargs)
            outstanding.add(future)
            most[0] = max(most[0], sum(not f.done() for f in outstanding))
            outstanding.difference_update([f for f in outstanding if f.done()])
            return future

    monkeypatch.setattr(batch.concurrent.futures, 'ThreadPoolExecutor', Counting)
    # The names' check holds every joined name for a moment (its own test is elsewhere).
    monkeypatch.setattr(batch, 'check_names', lambda jobs, earlier=(): None)

    class Nothing(batch.Batch):
        def run_job(self, job):
            del job

    (tmp_path / 'in').mkdir()
    run = Nothing(str(tmp_path / 'in'), str(tmp_path / 'ws'), None, log=lambda m: None,
                  workers=2)
    tracemalloc.start()
    try:
        baseline = tracemalloc.get_traced_memory()[0]
        report = run.run(jobs)
        peak = tracemalloc.get_traced_memory()[1] - baseline
    finally:
        tracemalloc.stop()
    assert len(report['done']) == 100_000
    assert most[0] <= batch.IN_FLIGHT_PER_WORKER * 2
    assert peak < 600 * len(jobs), f'{peak / len(jobs):.0f} bytes a job'


def _digest(directory, skip=(workspace.JOURNAL,)):
    h = hashlib.sha256()
    for root, _, files in sorted(os.walk(directory)):
        for name in sorted(files):
            if name in skip:
                continue
            path = os.path.join(root, name)
            h.update(os.path.relpath(path, directory).encode())
            with open(path, 'rb') as f:
                h.update(f.read())
    return h.hexdigest()


# batch_bad_inputs_test's FakeBackend, without importing the test modules (quicker to start).
_CHILD = r'''
import sys
import numpy as np
from everywear_tf import spec
from everywear_tf.inference import batch

def FakeBackend():
    def call(category, inputs):
        image = np.full((1,) + spec.FRAME_SHAPE + (3,), 90, np.uint8)
        mask = np.full((1,) + spec.FRAME_SHAPE, 255, np.uint8)
        return {spec.TRYON: image, spec.COARSE: image, spec.WARPED_CLOTH: image,
                spec.CLOTHING_MASK: mask, spec.EDM_MASK: mask, spec.WARPED_MASK: mask,
                spec.TPS_MASK: mask}
    return call

source, work = sys.argv[1:3]
print('started', flush=True)
batch.Batch(source, work, FakeBackend(), log=lambda m: None, workers=2).run(
        batch.read_jobs(source + '/pairs.txt'))
'''


@pytest.mark.slow  # subprocesses
def test_killed_at_random_moments_resumes_to_the_same_bytes(tmp_path):
    persons = ('a_0', 'b_0', 'c_0')
    jobs = [(p, 'shirt_1', '-') for p in persons] + [(p, '-', 'jeans_1') for p in persons]
    jobs += [(p, 'shirt_1', 'jeans_1') for p in persons[:2]]
    source = _source(tmp_path, jobs, persons=persons)
    straight = tmp_path / 'straight'
    started = time.monotonic()
    expected = batch.Batch(str(source), str(straight), FakeBackend(), log=lambda m: None,
                           workers=2).run(batch.read_jobs(source / 'pairs.txt'))
    duration = time.monotonic() - started
    assert expected['failed'] == {} and len(expected['done']) == len(jobs)
    killed = tmp_path / 'killed'
    rng = random.Random(16)
    command = [sys.executable, '-c', _CHILD, str(source), str(killed)]
    for _ in range(3):
        journal = killed / 'output' / workspace.JOURNAL
        left = len(jobs) - (len(_journal_lines(killed)) if journal.exists() else 0)
        child = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE,
                                 stderr=subprocess.DEVNULL, text=True)
        assert child.stdout.readline() == 'started\n'
        # A random moment of what is left to do (with the start's checks, a little more).
        time.sleep(rng.uniform(0.05, 1.0) * duration * left / len(jobs))
        child.send_signal(signal.SIGKILL)
        child.wait()
        child.stdout.close()
    resumed = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    # Every file, report.json included, as the uninterrupted run wrote it (the journal's
    # lines are in the order the jobs ended).
    assert _digest(killed) == _digest(straight)
    entries = [json.loads(line) for line in _journal_lines(killed)]
    assert sorted(e['job'] for e in entries) == sorted(expected['done'])


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def test_progress_on_a_terminal_is_one_line_redrawn(tmp_path, monkeypatch):
    terminal = _Terminal()
    monkeypatch.setattr(sys, 'stderr', terminal)
    monkeypatch.setattr(batch.Progress, 'REDRAW_SECONDS', 0.0)
    (tmp_path / 'in').mkdir()
    jobs = _jobs(30)
    run = Instant(str(tmp_path / 'in'), str(tmp_path / 'ws'), None, fail={jobs[7].name})
    run.run(jobs)
    shown = terminal.getvalue()
    assert shown.count('\n') == 1 and shown.endswith('\n')  # one line, ended at the end
    assert shown.count('\r') == 30
    last = shown.rstrip('\n').split('\r')[-1]
    assert last.startswith('[' + '#' * batch.Progress.WIDTH + '] 30/30 | ')
    assert 'jobs/s, ETA 0 s, 1 failed' in last


def test_progress_in_a_log_is_a_line_every_n_jobs_and_the_last(tmp_path, monkeypatch):
    monkeypatch.setattr(batch.Progress, 'EVERY_SECONDS', 1e9)
    lines = []
    jobs = _jobs(250)
    _instant(tmp_path, log=lines.append).run(jobs)
    progress = [line for line in lines if line.startswith('[')]
    assert [line.split()[1] for line in progress] == ['100/250', '200/250', '250/250']
