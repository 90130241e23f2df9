"""TF Serving's server-side batching, for the development server.

The semantics are those of ``--enable_batching`` in TF Serving 2.15.1 (without
``enable_large_batch_splitting``): one shared scheduler whose ``num_batch_threads`` threads serve
every queue (``SharedBatchScheduler``), one queue per loaded version, signature and set of
requested outputs (``BatchingSession``'s ``TensorSignature``), so a batch never mixes models,
versions or signatures. A request (a task) joins its queue's open batch; a task that does not fit
closes it and opens the next one, unless ``max_enqueued_batches`` batches are already waiting
(UNAVAILABLE). A batch runs when it is full, when ``batch_timeout_micros`` have passed since its
first task arrived, or when it was closed, oldest first. Its tasks' inputs are concatenated
along dimension 0, padded up to the next ``allowed_batch_sizes`` entry with copies of the last
task's first row (with ``pad_variable_length_inputs``, other dimensions are padded to the
largest in the batch with each tensor's first value), run in one call, and the outputs split
back; an error of the merged call reaches every task of the batch. Messages and codes are TF
Serving's (shared_batch_scheduler.h, batching_session.cc, bundle_factory_util.cc).

Pure Python and threads: the function a batch runs is the caller's, so the scheduler is tested
with plain functions and no server.
"""

import collections
import dataclasses
import os
import threading
import time
import weakref

import grpc
import numpy as np

from everywear_tf.serving import config as serving_config
from everywear_tf.serving.manager import ServingError

# The file TF Serving reads in a version's directory with --enable_per_model_batching_parameters.
PER_MODEL_FILE = 'batching_params.pbtxt'

_INVALID = grpc.StatusCode.INVALID_ARGUMENT


@dataclasses.dataclass(frozen=True)
class Parameters:
    """BatchingParameters with TF Serving's defaults for the fields a file leaves out
    (``SharedBatchScheduler::QueueOptions``; the threads default to the cores)."""

    max_batch_size: int = 1000
    batch_timeout_micros: int = 0
    max_enqueued_batches: int = 10
    num_batch_threads: int = os.cpu_count() or 1
    allowed_batch_sizes: tuple = ()
    pad_variable_length_inputs: bool = False

    @classmethod
    def from_proto(cls, proto):
        """The parameters of a ``serving_config.BatchingParameters`` message, checked."""
        values = {name: getattr(proto, name).value
                  for name in ('max_batch_size', 'batch_timeout_micros', 'max_enqueued_batches',
                               'num_batch_threads') if proto.HasField(name)}
        parameters = cls(allowed_batch_sizes=tuple(proto.allowed_batch_sizes),
                         pad_variable_length_inputs=proto.pad_variable_length_inputs, **values)
        parameters.check()
        return parameters

    def check(self):
        """ServingError INVALID_ARGUMENT, as TF Serving refuses the parameters at load."""
        if self.allowed_batch_sizes and self.allowed_batch_sizes[-1] != self.max_batch_size:
            raise ServingError(_INVALID, f'Last entry in allowed_batch_sizes must match '
                                         f'max_batch_size; last entry was '
                                         f'{self.allowed_batch_sizes[-1]}; expected '
                                         f'{self.max_batch_size}')
        for name, least in (('max_batch_size', 1), ('batch_timeout_micros', 0),
                            ('max_enqueued_batches', 1), ('num_batch_threads', 1)):
            value = getattr(self, name)
            if value < least:
                word = 'positive' if least else 'non-negative'
                raise ServingError(_INVALID, f'{name} must be {word}; was {value}')

    def padded_size(self, size):
        """The batch size a batch of ``size`` runs at (RoundToLowestAllowedBatchSize)."""
        return next((s for s in self.allowed_batch_sizes if s >= size), size)


def read(path):
    """The Parameters of a BatchingParameters text file; ConfigError naming the file when it
    does not parse or breaks TF Serving's rules."""
    proto = serving_config.read(path, serving_config.BatchingParameters)
    try:
        return Parameters.from_proto(proto)
    except ServingError as e:
        raise serving_config.ConfigError(path, e.message) from None


def task_size(inputs):
    """The batch size of a request's {name: ndarray} (ComputeTensorBatchSize): every input's
    dimension 0, which must agree; ServingError INVALID_ARGUMENT otherwise."""
    if not inputs:
        raise ServingError(_INVALID, 'Batching Run() must have at least one input tensor')
    sizes = set()
    for value in inputs.values():
        if np.ndim(value) == 0:
            raise ServingError(_INVALID, 'Batching Run() input tensors must have at least one '
                                         'dimension')
        sizes.add(np.shape(value)[0])
    if len(sizes) > 1:
        raise ServingError(_INVALID, 'Batching Run() input tensors must have equal '
                                     '0th-dimension size')
    return sizes.pop()


class Task:
    """One request in a queue: its inputs, and once done its outputs or its error."""

    def __init__(self, inputs, deadline=None):
        self.inputs = inputs
        self.size = task_size(inputs)
        self.deadline = deadline  # time.monotonic() past which it is no use running it
        self.outputs = None
        self.error = None
        self.batch_size = None  # the size its batch ran at, padding included
        self.done = threading.Event()


class _Batch:
    def __init__(self):
        self.tasks = []
        self.size = 0
        self.started = None  # when its first task arrived


class _Queue:
    def __init__(self, parameters, function):
        self.parameters = parameters
        self.function = function
        self.batches = collections.deque([_Batch()])  # the last one is open
        self.running = 0


def _pad_dims(array, shape):
    """``array`` padded after its values to ``shape`` (dimension 0 kept) with its first value
    (batching_util.cc's PadTensor)."""
    widths = [(0, 0)] + [(0, want - have) for have, want in zip(array.shape[1:], shape[1:])]
    if not any(after for _, after in widths):
        return array
    if array.size == 0:
        raise ServingError(_INVALID, 'Got empty tensor in batch of non-empty tensors.')
    return np.pad(array, widths, constant_values=array.flat[0])


def merge(tasks, parameters):
    """({name: ndarray} of the batch's inputs, padded to its allowed size; the padded size)."""
    size = sum(task.size for task in tasks)
    padded = parameters.padded_size(size)
    merged = {}
    for name in tasks[0].inputs:
        arrays = [np.asarray(task.inputs[name]) for task in tasks]
        if len({a.ndim for a in arrays}) > 1:
            raise ServingError(grpc.StatusCode.FAILED_PRECONDITION,
                               f"Tensors with name '{name}' from different tasks have "
                               f'different ranks')
        if parameters.pad_variable_length_inputs:
            shape = np.max([a.shape for a in arrays], axis=0)
            arrays = [_pad_dims(a, shape) for a in arrays]
        elif len({a.shape[1:] for a in arrays}) > 1:
            raise ServingError(grpc.StatusCode.FAILED_PRECONDITION,
                               f"Tensors with name '{name}' from different tasks have "
                               f'different shapes and padding is turned off.Set '
                               f'pad_variable_length_inputs to true, or ensure that all tensors '
                               f'with the same namehave equal dimensions starting with the '
                               f'first dim.')
        if padded > size:
            arrays.append(np.repeat(arrays[-1][:1], padded - size, axis=0))
        merged[name] = arrays[0] if len(arrays) == 1 else np.concatenate(arrays)
    return merged, padded


def split(outputs, tasks, padded):
    """Gives each task its rows of the batch's {name: ndarray} outputs."""
    for value in outputs.values():
        if np.ndim(value) == 0:
            raise ServingError(grpc.StatusCode.FAILED_PRECONDITION,
                               'Batched output tensor has 0 dimensions')
        if np.shape(value)[0] != padded:
            raise ServingError(grpc.StatusCode.FAILED_PRECONDITION,
                               "Batched output tensor's 0th dimension does not equal the sum of "
                               'the 0th dimension sizes of the input tensors')
    start = 0
    for task in tasks:
        task.outputs = {k: v[start:start + task.size] for k, v in outputs.items()}
        task.batch_size = padded
        start += task.size


class Scheduler:
    """The shared batch scheduler: ``num_batch_threads`` threads running the batches of every
    queue. ``submit`` blocks its caller until its task's batch has run."""

    def __init__(self, num_batch_threads, clock=time.monotonic):
        self.num_batch_threads = num_batch_threads
        self.clock = clock
        self._condition = threading.Condition()
        self._queues = {}  # key → _Queue
        self._threads = []
        self._stopped = False
        self.batches_run = 0  # batches processed (tests and benchmarks read it)

    def submit(self, key, parameters, function, inputs, deadline=None):
        """Runs ``inputs`` ({name: ndarray}, batch in dimension 0) in a batch of queue ``key``
        and returns this task's rows of the outputs. ``function(merged) → {name: ndarray}`` runs
        a batch (the queue keeps the first one it is given); ``parameters`` (Parameters) are the
        queue's. ServingError: refused (too large, queue full) or the batch's error."""
        task = Task(inputs, deadline)
        self.schedule(key, parameters, function, task)
        task.done.wait()
        if task.error is not None:
            raise task.error
        return task.outputs

    def schedule(self, key, parameters, function, task):
        """Enqueues ``task`` (Queue::Schedule) and returns; ``task.done`` is set once its batch
        has run."""
        if task.size > parameters.max_batch_size:
            raise ServingError(_INVALID, f'Task size {task.size} is larger than maximum input '
                                         f'batch size {parameters.max_batch_size}')
        with self._condition:
            if self._stopped:
                raise ServingError(grpc.StatusCode.UNAVAILABLE, 'the batch scheduler is closed')
            self._start()
            queue = self._queues.get(key)
            if queue is None:
                queue = self._queues[key] = _Queue(parameters, function)
            batch = queue.batches[-1]
            if batch.size + task.size > queue.parameters.max_batch_size:
                if len(queue.batches) >= queue.parameters.max_enqueued_batches:
                    raise ServingError(grpc.StatusCode.UNAVAILABLE,
                                       f'The batch scheduling queue to which this task was '
                                       f'submitted is full; currently {len(queue.batches)} '
                                       f'batches enqueued and max_enqueued_batches is '
                                       f'{queue.parameters.max_enqueued_batches}')
                batch = _Batch()
                queue.batches.append(batch)
            if not batch.tasks:
                batch.started = self.clock()
            batch.tasks.append(task)
            batch.size += task.size
            self._condition.notify_all()

    def _start(self):
        while len(self._threads) < self.num_batch_threads:
            thread = threading.Thread(target=self._work, daemon=True,
                                      name=f'batch-{len(self._threads)}')
            thread.start()
            self._threads.append(thread)

    def _next(self):
        """(queue, batch) of the batch to run next, oldest first, or (None, seconds to wait)."""
        now = self.clock()
        best, wait = None, None
        for key, queue in self._queues.items():
            batch = queue.batches[0]
            if not batch.tasks:
                continue
            if len(queue.batches) == 1 and batch.size < queue.parameters.max_batch_size:
                due = batch.started + queue.parameters.batch_timeout_micros / 1e6
                if now < due:
                    wait = due - now if wait is None else min(wait, due - now)
                    continue
            if best is None or batch.started < best[1].started:
                best = (key, batch)
        if best is None:
            return None, wait
        key, batch = best
        queue = self._queues[key]
        queue.batches.popleft()
        if not queue.batches:
            queue.batches.append(_Batch())
        queue.running += 1
        return queue, batch

    def _work(self):
        while True:
            with self._condition:
                while True:
                    if self._stopped:
                        return
                    queue, found = self._next()
                    if queue is not None:
                        break
                    self._condition.wait(found)
                batch = found
            try:
                self._process(queue, batch.tasks)
            finally:
                with self._condition:
                    queue.running -= 1
                    self.batches_run += 1
                    self._forget_idle()

    def _forget_idle(self):
        """Drops queues with nothing queued or running (those of unloaded versions), so they
        hold no function and no SavedModel."""
        for key in [k for k, q in self._queues.items()
                    if not q.running and len(q.batches) == 1 and not q.batches[0].tasks]:
            del self._queues[key]

    def _process(self, queue, tasks):
        """BatchingSession::ProcessBatch: merge, one call, split; every task done whatever
        happens."""
        try:
            now = time.monotonic()
            if all(t.deadline is not None and t.deadline <= now for t in tasks):
                raise ServingError(grpc.StatusCode.RESOURCE_EXHAUSTED,
                                   'Run() timeout exceeded while waiting in batching queue')
            merged, padded = merge(tasks, queue.parameters)
            split(queue.function(merged), tasks, padded)
        except Exception as e:  # noqa: BLE001 (each caller gets the batch's error)
            for task in tasks:
                task.error = e
        finally:
            for task in tasks:
                task.done.set()

    def queued(self):
        """Tasks waiting in every queue (not those running)."""
        with self._condition:
            return sum(len(b.tasks) for q in self._queues.values() for b in q.batches)

    def close(self):
        """Stops the threads once the batches they run are done; queued tasks fail
        UNAVAILABLE."""
        with self._condition:
            self._stopped = True
            pending = [t for q in self._queues.values() for b in q.batches for t in b.tasks]
            self._queues.clear()
            self._condition.notify_all()
        for task in pending:
            task.error = ServingError(grpc.StatusCode.UNAVAILABLE, 'the server is stopping')
            task.done.set()
        for thread in self._threads:
            thread.join()


class ServerBatching:
    """What ``--enable_batching`` sets up: the common parameters (``--batching_parameters_file``)
    and the scheduler they size. With ``per_model`` (``--enable_per_model_batching_parameters``) a
    version is batched only if its directory holds ``batching_params.pbtxt``, with those
    parameters (the threads stay the common ones, as TF Serving shares one scheduler)."""

    def __init__(self, parameters=None, per_model=False):
        self.parameters = parameters or Parameters()
        self.per_model = per_model
        self.scheduler = Scheduler(self.parameters.num_batch_threads)
        self._versions = weakref.WeakKeyDictionary()  # loaded version → Parameters or None

    def load(self, version):
        """Reads the parameters of a version being loaded (``version.path``); ServingError when
        they are bad, which fails the load."""
        self._versions[version] = self.version_parameters(version.path)

    def parameters_of(self, version):
        """The Parameters ``version`` is batched with, None when it is not batched."""
        return self._versions.get(version)

    def version_parameters(self, path):
        """The Parameters a version at ``path`` is batched with, or None (not batched);
        ServingError INVALID_ARGUMENT when its own file is bad (the version fails to load)."""
        if not self.per_model:
            return self.parameters
        file = os.path.join(path, PER_MODEL_FILE)
        if not os.path.exists(file):
            return None
        try:
            return read(file)
        except serving_config.ConfigError as e:
            raise ServingError(_INVALID, str(e)) from None

    def close(self):
        """Stops the scheduler (DevServer.stop)."""
        self.scheduler.close()
