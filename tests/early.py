"""Subprocesses a test waits for, started when the session starts instead of when the test does.

Most of the suite runs on one core; a test module declares the command one of its tests runs
(``early.Command('test_name', argv)``) and, when that test is among the session's selected tests,
tests/conftest.py starts the command as the session starts: one command at a time, in the order
of the tests, ``NICENESS`` below the suite's priority, so that it runs on the core the suite
leaves idle without slowing the suite down. The test then calls ``result()``, which starts the
command if it has not been started (a test run alone), waits for it and returns what
``subprocess.run(..., capture_output=True, text=True)`` would. The command, its flags and what
the test checks of its outputs are the test's own; only the moment it starts differs.

``{directory}`` in the arguments is the command's own new directory under the session's
temporary directory (``directory`` after the start); ``prepare(directory)`` runs before the
command starts (such as writing a file the command reads).
"""

import contextlib
import os
import pathlib
import subprocess
import sys
import tempfile
import threading

NICENESS = 10

_DECLARED = []  # every Command of the imported test modules
_LOCK = threading.Lock()
_STATE = {'base': None, 'scheduler': None, 'stopping': False}


class Command:
    """A subprocess of test ``test`` (a name, or a tuple of the names of the tests that use
    it) of the module declaring it (see the module docstring); ``key`` tells apart the commands
    of one test."""

    def __init__(self, test, argv, cwd=None, env=None, prepare=None, key=None):
        self.tests = (test,) if isinstance(test, str) else tuple(test)
        self.argv, self.cwd, self.env, self.prepare = list(argv), cwd, env, prepare
        self.module = sys._getframe(1).f_globals['__name__']
        self.name = f'{self.module}.{self.tests[0]}' + (f'.{key}' if key is not None else '')
        self.directory = None
        self._process = None
        self._files = None
        self._failed = None  # what went wrong starting it
        _DECLARED.append(self)

    def start(self, niceness=0):
        """Starts the command unless it was; returns the Popen."""
        with _LOCK:
            if self._failed is not None:
                raise self._failed
            if self._process is None:
                try:
                    self._start(niceness)
                except BaseException as e:
                    self._failed = e
                    raise
            return self._process

    def _start(self, niceness):
        base = _STATE['base']
        if base is None:  # no session fixture (tests/conftest.py not loaded)
            base = _STATE['base'] = tempfile.mkdtemp(prefix='everywear-early-')
        self.directory = _new_directory(base, self.name)
        if self.prepare is not None:
            self.prepare(self.directory)
        argv = [arg.replace('{directory}', str(self.directory)) for arg in self.argv]
        self._files = (open(f'{self.directory}.stdout', 'w+'),  # beside, not in it
                       open(f'{self.directory}.stderr', 'w+'))
        self._process = subprocess.Popen(argv, cwd=self.cwd, env=self.env,
                                         stdin=subprocess.DEVNULL, stdout=self._files[0],
                                         stderr=self._files[1], text=True)
        if niceness:
            _renice(self._process.pid, niceness)

    def result(self, timeout=600):
        """Waits for the command (started now if it was not); returns a CompletedProcess.
        ``timeout`` counts from this call, as subprocess.run's from the start."""
        process = self.start()
        _renice(process.pid, 0)  # the test waits for it now
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            raise
        stdout, stderr = (self._read(f) for f in self._files)
        return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)

    @staticmethod
    def _read(file):
        file.flush()
        file.seek(0)
        return file.read()

    def stop(self):
        if self._process is not None and self._process.poll() is None:
            self._process.kill()
            self._process.wait()
        for file in self._files or ():
            file.close()


def _new_directory(base, name):
    directory = pathlib.Path(base) / name
    directory.mkdir(parents=True)
    return directory


def _renice(pid, niceness):
    """Sets every thread of ``pid`` to this process's niceness plus ``niceness`` (best effort:
    the process may have ended, or lowering it back may not be allowed)."""
    target = os.getpriority(os.PRIO_PROCESS, 0) + niceness
    try:
        threads = [int(t) for t in os.listdir(f'/proc/{pid}/task')]
    except OSError:
        threads = [pid]
    for thread in threads:
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, thread, target)


def selected(items):
    """The declared commands whose tests are among ``items``, in the order of the tests."""
    wanted = []
    for item in items:
        module = getattr(getattr(item, 'module', None), '__name__', None)
        name = getattr(item, 'originalname', None) or getattr(item, 'name', None)
        for command in _DECLARED:
            if command.module == module and name in command.tests and command not in wanted:
                wanted.append(command)
    return wanted


def start_session(items, base):
    """Starts the selected tests' commands one at a time in a background thread."""
    _STATE['base'], _STATE['stopping'] = base, False
    queue = selected(items)

    def run():
        for command in queue:
            if _STATE['stopping']:
                return
            try:
                command.start(niceness=NICENESS).wait()
            except Exception:  # the test's result() raises it again
                continue

    if queue:
        _STATE['scheduler'] = threading.Thread(target=run, name='early-commands', daemon=True)
        _STATE['scheduler'].start()


def stop_session():
    """Kills what is still running (a test that failed before waiting, or was deselected)."""
    _STATE['stopping'] = True
    for command in _DECLARED:
        command.stop()
