"""Versions of served models, managed with TF Serving's semantics (development stand-in).

A ``Manager`` holds a ModelServerConfig. ``poll()`` scans each model's base path for numeric
version directories, works out which versions the policy wants (latest N, all, specific), loads
the new ones first (warmup replayed) and only then unloads the unwanted ones, so a model never
goes without an AVAILABLE version during a swap (TF Serving's AvailabilityPreservingPolicy).
Labels resolve only to AVAILABLE versions. Requests resolve a version under a lock and keep a
reference to it, so an unload never breaks a request in flight.

This is for development and tests; production runs the official tensorflow/serving.
"""

import enum
import os
import threading

import grpc
import tensorflow as tf
from tensorflow_serving.apis import get_model_status_pb2
from tensorflow_serving.config import model_server_config_pb2

from everywear_tf.export import warmup
from everywear_tf.serving import config as serving_config


class State(enum.IntEnum):
    """ModelVersionStatus.State values."""
    START = get_model_status_pb2.ModelVersionStatus.START
    LOADING = get_model_status_pb2.ModelVersionStatus.LOADING
    AVAILABLE = get_model_status_pb2.ModelVersionStatus.AVAILABLE
    UNLOADING = get_model_status_pb2.ModelVersionStatus.UNLOADING
    END = get_model_status_pb2.ModelVersionStatus.END


class ServingError(Exception):
    """An error with the gRPC status code TF Serving answers with."""

    def __init__(self, code, message):
        super().__init__(message)
        self.code = code
        self.message = message


class Version:
    """One version of one model: its state, and the loaded SavedModel when AVAILABLE."""

    def __init__(self, name, number, path):
        self.name, self.number, self.path = name, number, path
        self.state = State.START
        self.error = None  # (grpc.StatusCode, message) when the load failed
        self.saved_model = None

    def signature(self, key):
        signatures = self.saved_model.signatures
        if key not in signatures:
            raise ServingError(grpc.StatusCode.FAILED_PRECONDITION,
                               f'Serving signature key "{key}" not found.')
        return signatures[key]


def version_numbers(base_path):
    if not os.path.isdir(base_path):
        return []
    return sorted(int(n) for n in os.listdir(base_path)
                  if n.isdigit() and os.path.isfile(os.path.join(base_path, n, 'saved_model.pb')))


def aspired(model_config, present):
    """The versions ``model_config``'s policy wants among ``present`` (sorted ints)."""
    policy = model_config.model_version_policy
    choice = policy.WhichOneof('policy_choice')
    if choice == 'all':
        return set(present)
    if choice == 'specific':
        return set(policy.specific.versions) & set(present)
    count = policy.latest.num_versions if choice == 'latest' else 1
    return set(present[-max(count, 1):])


class Manager:
    """The served models of one ModelServerConfig; thread-safe."""

    def __init__(self, config=None, allow_labels_for_unavailable=False, log=None):
        self._lock = threading.RLock()
        self._load_lock = threading.Lock()  # one poll at a time
        self.allow_labels_for_unavailable = allow_labels_for_unavailable
        self.log = log or (lambda message: None)
        self.config = model_server_config_pb2.ModelServerConfig()
        self.models = {}  # name → {number: Version}
        self.labels = {}  # name → {label: number}
        if config is not None:
            self.reload(config)

    # --- configuration -------------------------------------------------------------------------

    def _model_configs(self, config=None):
        config = self.config if config is None else config
        return {m.name: m for m in config.model_config_list.config}

    def reload(self, config):
        """Applies a new ModelServerConfig (TF Serving's HandleReloadConfigRequest).

        Invalid configs and labels on versions that are not AVAILABLE are refused with the old
        config kept. Models left out are unloaded; new ones are loaded by the poll that follows.
        """
        try:
            serving_config.validate(config)
        except serving_config.ConfigError as e:
            raise ServingError(grpc.StatusCode.INVALID_ARGUMENT, e.problem) from None
        with self._lock:
            first = not self.config.model_config_list.config
            if first:
                # At start-up TF Serving loads the models first, then applies the labels.
                self.config = config
        if first:
            self.poll()
        with self._lock:
            self._check_labels(config)
            self.config = config
            for name, model in self._model_configs().items():
                self.labels[name] = dict(model.version_labels)
        if not first:
            self.poll()

    def _check_labels(self, config):
        for name, model in self._model_configs(config).items():
            old_labels = self.labels.get(name, {})
            for label, number in model.version_labels.items():
                version = self.models.get(name, {}).get(number)
                available = version is not None and version.state == State.AVAILABLE
                new_label = label not in old_labels
                if not available and not (self.allow_labels_for_unavailable and new_label):
                    raise ServingError(
                            grpc.StatusCode.FAILED_PRECONDITION,
                            f'Request to assign label to version {number} of model {name}, '
                            'which is not currently available for inference')

    # --- loading -------------------------------------------------------------------------------

    def poll(self):
        """One file-system scan: load what is wanted and absent, then unload what is unwanted."""
        with self._load_lock:
            configs = self._model_configs()
            plans = {}
            for name, model in configs.items():
                wanted = aspired(model, version_numbers(model.base_path))
                with self._lock:
                    current = self.models.setdefault(name, {})
                    to_load = sorted(n for n in wanted if n not in current or
                                     current[n].state == State.END and current[n].error is None)
                plans[name] = (model.base_path, wanted, to_load)
            for name, (base_path, _, to_load) in plans.items():
                for number in to_load:
                    self._load(name, number, os.path.join(base_path, str(number)))
            with self._lock:
                for name in list(self.models):
                    wanted = plans[name][1] if name in plans else set()
                    for number, version in list(self.models[name].items()):
                        if number not in wanted and version.state != State.END:
                            self._unload(version)
                        if number not in wanted and version.state == State.END:
                            del self.models[name][number]
                    if name not in configs:
                        del self.models[name]
                        self.labels.pop(name, None)

    def _load(self, name, number, path):
        version = Version(name, number, path)
        with self._lock:
            version.state = State.LOADING
            self.models[name][number] = version
        try:
            saved_model = tf.saved_model.load(path)
            version.saved_model = saved_model
            self._run_warmup(version)
        except Exception as e:  # any failure ends this version, as in TF Serving
            version.saved_model = None
            version.error = (grpc.StatusCode.UNKNOWN, f'{type(e).__name__}: {e}'[:2000])
            with self._lock:
                version.state = State.END
            self.log(f'failed to load {name} version {number}: {version.error[1][:200]}')
            return
        with self._lock:
            version.state = State.AVAILABLE
        self.log(f'loaded {name} version {number}')

    def _run_warmup(self, version):
        records = os.path.join(version.path, warmup.WARMUP_DIRECTORY, warmup.WARMUP_FILE)
        if not os.path.exists(records):
            return
        for request in warmup.read_warmup(version.path):
            signature = version.signature(request.model_spec.signature_name or
                                          'serving_default')
            signature(**{k: tf.constant(tf.make_ndarray(v)) for k, v in request.inputs.items()})

    def _unload(self, version):
        version.state = State.UNLOADING
        version.saved_model = None  # requests in flight keep their own reference
        version.state = State.END
        self.log(f'unloaded {version.name} version {version.number}')

    # --- lookups -------------------------------------------------------------------------------

    def resolve(self, model_spec):
        """(Version, saved_model) for a ModelSpec, or ServingError with TF Serving's wording."""
        name = model_spec.name
        if not name:
            raise ServingError(grpc.StatusCode.INVALID_ARGUMENT, 'ModelSpec has no name specified.')
        with self._lock:
            versions = self.models.get(name, {})
            choice = model_spec.WhichOneof('version_choice')
            if choice == 'version_label':
                label = model_spec.version_label
                number = self.labels.get(name, {}).get(label)
                if number is None:
                    raise ServingError(grpc.StatusCode.INVALID_ARGUMENT,
                                       f'Unrecognized servable version label: {label}')
                request = f'Specific({name}, {number})'
            elif choice == 'version':
                number = model_spec.version.value
                request = f'Specific({name}, {number})'
            else:
                available = [n for n, v in versions.items() if v.state == State.AVAILABLE]
                number = max(available) if available else None
                request = f'Latest({name})'
            version = versions.get(number)
            if version is None or version.state != State.AVAILABLE:
                raise ServingError(grpc.StatusCode.NOT_FOUND,
                                   f'Servable not found for request: {request}')
            return version, version.saved_model

    def status(self, name, number=None):
        """[(number, State, error)] for GetModelStatus, NOT_FOUND as TF Serving words it."""
        with self._lock:
            versions = self.models.get(name)
            if not versions:
                raise ServingError(grpc.StatusCode.NOT_FOUND,
                                   f'Could not find any versions of model {name}')
            if number is not None:
                if number not in versions:
                    raise ServingError(grpc.StatusCode.NOT_FOUND,
                                       f'Could not find version {number} of model {name}')
                versions = {number: versions[number]}
            return [(n, v.state, v.error) for n, v in sorted(versions.items())]

    def available(self, name, number=None):
        with self._lock:
            versions = self.models.get(name, {})
            if number is None:
                return any(v.state == State.AVAILABLE for v in versions.values())
            return number in versions and versions[number].state == State.AVAILABLE
