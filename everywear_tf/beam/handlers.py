"""RunInference's model handlers for the try-on chain (GMM → EDM → rule → RM).

An element is a ``Request``: one frame's GMM signature inputs (batch of 1) and its category, with
the job's state riding along; the inference is every stage's outputs (batch of 1), exactly what a
``pipeline`` backend returns for that frame. A batch of RunInference is split by category and each
category's frames go through the networks together, stacked along the batch axis. The default
batch of 1 gives the local runner's bytes; larger batches run faster but oneDNN's kernels may
round a few pixels of a stacked frame one level apart from the frame alone (measured on the demo
set: EDM's outputs, 1 pixel in 49152, on one frame of five).

- ``ChainModelHandler``: the networks in each worker process, from exported SavedModels
  (``tf.saved_model.load``, the ``serving_default`` signature called with its named inputs) or
  from weights directories. Both RunInference steps of the pipeline share one copy per process;
  with ``share_across_processes`` (RunInference's ``share_model_across_processes``), one copy
  (or ``model_copies``) per worker machine, which every process of the worker calls through
  Beam's ``multi_process_shared`` (frames pickled over a local socket).
- ``ServingModelHandler``: a ``RemoteModelHandler`` over the project's gRPC client (through
  ``pipeline.ServerBackend``) to TF Serving or the dev server; Beam adds retries with back-off
  (for an unreachable server only) and client-side throttling.

Beam's own ``TFModelHandlerNumpy``/``Tensor`` cannot serve here: they load Keras models and feed
one stacked array, and these SavedModels are ``tf.Module``s with named, multi-input signatures.
"""

import dataclasses
import hashlib
import os
import threading
from collections.abc import Iterable
from collections.abc import Sequence

import numpy as np
from apache_beam.ml.inference import base

from everywear_tf import errors
from everywear_tf import spec
from everywear_tf.inference import batch as batch_lib
from everywear_tf.inference import pipeline

# Beam's metrics namespace of both handlers (inference counts, batch sizes, latencies).
METRICS_NAMESPACE = 'everywear'


@dataclasses.dataclass
class Request:
    """One chain run a job waits for."""
    job: batch_lib.Job
    known: list  # the outputs of the job's earlier chain runs (the pants before a top)
    category: str
    inputs: dict  # the GMM signature's inputs, batch of 1


def run_requests(backend, requests: Sequence[Request]) -> list:
    """PredictionResults (example: the request, inference: its outputs, batch of 1) in the
    order of ``requests``; each category's frames run as one batch through ``backend``."""
    by_category = {}
    for index, request in enumerate(requests):
        by_category.setdefault(spec.check_category(request.category), []).append(index)
    outputs = [None] * len(requests)
    for category, indices in by_category.items():
        stacked = {key: np.concatenate([requests[i].inputs[key] for i in indices])
                   for key in requests[indices[0]].inputs}
        result = backend(category, stacked)
        for row, index in enumerate(indices):
            outputs[index] = {key: value[row:row + 1] for key, value in result.items()}
    return [base.PredictionResult(request, output) for request, output in zip(requests, outputs)]


def _batching(min_batch_size, max_batch_size):
    """beam.BatchElements' keyword arguments."""
    if min_batch_size < 1 or max_batch_size < min_batch_size:
        raise ValueError(f'batch sizes must satisfy 1 <= min <= max, got {min_batch_size}, '
                         f'{max_batch_size}')
    return {'min_batch_size': min_batch_size, 'max_batch_size': max_batch_size}


# Backends loaded in this process, by source: both RunInference steps (the pants, then a top
# over them) and every DoFn instance of a worker process use one copy of the networks.
_LOADED = {}
_LOADED_LOCK = threading.Lock()


def _shared_backend(source):
    with _LOADED_LOCK:
        if source not in _LOADED:
            kwargs = dict(source)
            _LOADED[source] = pipeline.make_backend(**kwargs)
        return _LOADED[source]


def _frozen(options):
    return tuple(sorted(options.items()))


class _Batched:
    """What both handlers answer alike: their batching and their metrics namespace."""

    _batching: dict

    def batch_elements_kwargs(self):
        """min/max batch size for beam.BatchElements."""
        return self._batching

    def get_metrics_namespace(self) -> str:
        """Beam's metrics namespace."""
        return METRICS_NAMESPACE


class ChainModelHandler(_Batched, base.ModelHandler):
    """The networks in each worker process: exported SavedModels (``saved_models``: a TF Serving
    base path, the versions chosen as ``pipeline.SavedModelBackend`` chooses them) or weights
    directories (``weights_root``). Each category's networks load on its first batch."""

    def __init__(self, weights_root: str | None = None, saved_models: str | None = None,
                 selection: dict | None = None, min_batch_size: int = 1,
                 max_batch_size: int = 1, share_across_processes: bool = False,
                 model_copies: int = 1):
        """``selection``: ``pipeline.make_backend``'s label, version, label_fallback and
        model_config (``cli.app.model_selection``); batch sizes: RunInference's batching.
        ``share_across_processes``: one copy of the networks per worker machine (``model_copies``
        of them), not one per process."""
        super().__init__()
        if not (weights_root or saved_models):
            raise ValueError('pass weights_root or saved_models')
        if model_copies < 1 or (model_copies > 1 and not share_across_processes):
            raise ValueError(f'model_copies must be 1, or at least 1 with share_across_processes'
                             f', got {model_copies}')
        self.source = _frozen({'weights_root': weights_root, 'saved_models': saved_models,
                               **(selection or {})})
        self._batching = _batching(min_batch_size, max_batch_size)
        self._share, self._copies = share_across_processes, model_copies

    def share_model_across_processes(self) -> bool:
        """Whether RunInference loads one copy per machine (Beam's multi_process_shared)."""
        return self._share

    def model_copies(self) -> int:
        """Copies per machine when shared across processes."""
        return self._copies

    def model_identifier(self) -> str:
        """RunInference's tag of these networks: the same in both chain steps, so that they
        share one copy (per process, or per machine when shared across processes)."""
        return 'everywear-chain-' + hashlib.sha256(repr(self.source).encode()).hexdigest()[:16]

    def backend_options(self) -> dict:
        """``pipeline.make_backend``'s keyword arguments for this handler's networks."""
        return dict(self.source)

    def check(self, categories) -> None:
        """pipeline.SetupError before the pipeline runs if the networks of ``categories`` are
        missing: the export's version set of each (chosen, not loaded) or its weights
        directories."""
        backend = pipeline.make_backend(**dict(self.source))
        for category in categories:
            try:
                if isinstance(backend, pipeline.SavedModelBackend):
                    backend.select(category)
                else:
                    for module in spec.MODULES:
                        directory = os.path.join(backend.root, spec.model_name(module, category))
                        if not os.path.isdir(directory):
                            raise errors.InputNotFoundError(directory, 'no such weights '
                                                                       'directory')
            except errors.EverywearError as e:
                raise pipeline.SetupError(str(e)) from e

    def load_model(self):
        """The process's backend for this source (one copy shared by every step)."""
        return _shared_backend(self.source)

    def run_inference(self, batch: Sequence[Request], model, inference_args=None
                      ) -> Iterable[base.PredictionResult]:
        """Each category's frames of ``batch`` through the networks as one batch."""
        return run_requests(model, batch)



def _unreachable(error: Exception) -> bool:
    """Whether a failed request is worth retrying: no server answered (not a refused input)."""
    from everywear_tf.serving import client
    return isinstance(error, client.ServerError) and error.unreachable


class ServingModelHandler(_Batched, base.RemoteModelHandler):
    """The chain through TF Serving at ``server`` (gRPC host:port; a load balancer in front of
    a fleet, or one replica), through the project's client. GMM and EDM of a batch go out
    together; RunInference retries a batch ``num_retries`` times with exponential back-off when
    no server answers, and throttles when requests keep failing."""

    def __init__(self, server: str, selection: dict | None = None, min_batch_size: int = 1,
                 max_batch_size: int = 1, num_retries: int = 3):
        """``selection``: label, version, label_fallback (``cli.app.model_selection``)."""
        super().__init__(namespace=METRICS_NAMESPACE, num_retries=num_retries,
                         throttle_delay_secs=1, retry_filter=_unreachable)
        self.server = server
        self.selection = dict(selection or {})
        self.selection.pop('model_config', None)  # a server reads its own config
        self._batching = _batching(min_batch_size, max_batch_size)

    def backend_options(self) -> dict:
        """``pipeline.make_backend``'s keyword arguments for this handler's networks."""
        return {'server': self.server, **self.selection}

    def check(self, categories) -> None:
        """pipeline.SetupError before the pipeline runs if no server answers at ``server`` or
        it does not serve the models of ``categories``."""
        backend = self.create_client()
        try:
            backend.check(categories)
        finally:
            backend.close()

    def create_client(self):
        """A ``pipeline.ServerBackend`` (the project's gRPC client) for this worker."""
        return pipeline.ServerBackend(self.server, **self.selection)

    def request(self, batch: Sequence[Request], model, inference_args=None
                ) -> Iterable[base.PredictionResult]:
        """Each category's frames of ``batch`` through the server's networks as one batch."""
        return run_requests(model, batch)

