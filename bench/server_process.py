"""The dev server (``serving/dev_server.py``) in a process of its own, for the benchmarks that
load it from outside (bench.serving_batching, bench.batch_throughput)."""

import os
import re
import subprocess
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COMMITTED_BATCHING = os.path.join(ROOT, 'serving', 'batching.config')


class Server:
    """``serving/dev_server.py`` in a process of its own, on free gRPC (``port``) and REST
    (``rest_port``) ports."""

    def __init__(self, models_config, batching_file=None, timeout=1800):
        command = [sys.executable, os.path.join(ROOT, 'serving', 'dev_server.py'),
                   f'--model_config_file={models_config}', '--port=0', '--rest_api_port=0',
                   '--file_system_poll_wait_seconds=0']
        if batching_file:
            command += ['--enable_batching', f'--batching_parameters_file={batching_file}']
        self.process = subprocess.Popen(command, cwd=ROOT, stderr=subprocess.PIPE, text=True,
                                        stdout=subprocess.DEVNULL)
        self.lines = []
        deadline = time.monotonic() + timeout
        self.port = self.rest_port = None
        while self.port is None:
            line = self.process.stderr.readline()
            if not line:
                raise RuntimeError('the dev server exited: ' + ''.join(self.lines[-20:]))
            self.lines.append(line)
            match = re.search(r'serving gRPC on [\d.]+:(\d+), REST on [\d.]+:(\d+)', line)
            if match:
                self.port, self.rest_port = int(match[1]), int(match[2])
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError('the dev server did not start in time')
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self):
        for line in self.process.stderr:
            self.lines.append(line)

    def stop(self):
        """Ends the process (SIGTERM, then SIGKILL after 30 s)."""
        self.process.terminate()
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
