"""Versions of served models, managed with TF Serving's semantics (development stand-in).

A ``Manager`` holds a ModelServerConfig. ``poll()`` scans each model's base path for numeric
version directories, works out which versions the policy wants (latest N, all, specific), loads
the new ones first (warmup replayed) and only then unloads the unwanted ones, so a model never
goes without an AVAILABLE version during a swap, and an unwanted version stays while no wanted
one is AVAILABLE (TF Serving's AvailabilityPreservingPolicy). Versions that ended stay listed as
END, newest first, as TF Serving's ServableStateMonitor lists them. Labels are checked before
anything loads, at start-up too (ServerCore::ReloadConfig), and resolve only to AVAILABLE
versions. Requests resolve a version under a lock and keep a reference to its SavedModel, so an
unload never breaks a request in flight.

Two things TF Serving does not do: ``base_path_prefix`` maps the container path ``/models`` of
every config the manager is given (start-up, polled file and HandleReloadConfigRequest alike) to
a local directory, as a Docker volume mounts it for the real server; and a reload that would
leave a model with an AVAILABLE version and no version to serve (its new base path holds none
of the versions its policy wants) is refused unless the new config removes the model
(``keep_serving``), where TF Serving would unload every version.

This is for development and tests; production runs the official tensorflow/serving.
"""

import enum
import os
import threading

import grpc
import tensorflow as tf
from tensorflow_serving.apis import get_model_status_pb2
from tensorflow_serving.config import model_server_config_pb2

from everywear_tf import spec
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


MAX_WARMUP_RECORDS = 1000  # WarmupConsts::kMaxNumRecords
_OK_PLATFORM = 'tensorflow'


def signature(saved_model, key):
    """``saved_model``'s signature ``key``; FAILED_PRECONDITION as predict_util.cc words it."""
    signatures = saved_model.signatures
    if key not in signatures:
        raise ServingError(grpc.StatusCode.FAILED_PRECONDITION,
                           f'Serving signature key "{key}" not found.')
    return signatures[key]


def _error_of(exception):
    """(grpc.StatusCode, message) of a failed load or warmup."""
    if isinstance(exception, ServingError):
        return exception.code, exception.message
    if isinstance(exception, tf.errors.OpError):
        return grpc.StatusCode(next(c for c in grpc.StatusCode
                                    if c.value[0] == exception.error_code)), exception.message
    return grpc.StatusCode.UNKNOWN, f'{type(exception).__name__}: {exception}'[:2000]


class Version:
    """One version of one model: its state, and the loaded SavedModel when AVAILABLE."""

    def __init__(self, name, number, path):
        self.name, self.number, self.path = name, number, path
        self.state = State.START
        self.error = None  # (grpc.StatusCode, message) when the load failed
        self.saved_model = None
        self.aspired = True  # the policy still wants it (a failed load is not retried then)


def version_numbers(base_path):
    """Sorted integer versions under ``base_path`` that hold a saved_model.pb ([] when the
    directory is absent)."""
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


def validate(config, old_config):
    """TF Serving's checks on a new ModelServerConfig (server_core.cc), in its words.

    Returns False for an empty config at start-up, which TF Serving accepts and ignores.
    """
    choice, old_choice = config.WhichOneof('config'), old_config.WhichOneof('config')
    if not (old_choice is None or config == old_config or
            choice == old_choice == 'model_config_list'):
        raise ServingError(grpc.StatusCode.FAILED_PRECONDITION,
                           'Cannot transition to requested config. It is only legal to transition '
                           'from one ModelConfigList to another.')
    if choice is None:
        return False
    if choice != 'model_config_list':
        raise ServingError(grpc.StatusCode.INVALID_ARGUMENT,
                           'custom_model_config is not supported by the development server')
    seen = set()
    for model in config.model_config_list.config:
        if model.name in seen:
            raise ServingError(grpc.StatusCode.INVALID_ARGUMENT,
                               f'Illegal to list model {model.name} multiple times in config list')
        seen.add(model.name)
    for model in config.model_config_list.config:
        if not os.path.isabs(model.base_path) and '://' not in model.base_path:
            raise ServingError(grpc.StatusCode.INVALID_ARGUMENT,
                               f'Expected model {model.name} to have an absolute path or URI; '
                               f'got base_path()={model.base_path}')
    old_platforms = {m.name: m.model_platform for m in old_config.model_config_list.config}
    for model in config.model_config_list.config:
        if not model.model_platform:
            raise ServingError(grpc.StatusCode.INVALID_ARGUMENT,
                               'Illegal setting neither ModelServerConfig::model_type '
                               '(deprecated) nor ModelServerConfig::model_platform, model name is '
                               f'{model.name}')
        old = old_platforms.get(model.name, model.model_platform)
        if model.model_platform != old:
            raise ServingError(grpc.StatusCode.INVALID_ARGUMENT,
                               f"Illegal to change a model's platform. For model {model.name} "
                               f'platform was {old} and new platform requested is '
                               f'{model.model_platform}')
        if model.model_platform != _OK_PLATFORM:
            raise ServingError(grpc.StatusCode.INVALID_ARGUMENT,
                               f'Model {model.name} requests unsupported platform '
                               f'{model.model_platform}')
    return True


def map_base_path(base_path, prefix):
    """``base_path`` with a leading ``/models`` (``serving_config.CONTAINER_BASE_PATH``, the
    container path of the committed config) replaced by directory ``prefix``; other paths, and
    every path when ``prefix`` is None, unchanged."""
    root = serving_config.CONTAINER_BASE_PATH
    if prefix and (base_path == root or base_path.startswith(root + '/')):
        rest = base_path[len(root):].lstrip('/')
        return os.path.join(os.path.abspath(prefix), rest) if rest else os.path.abspath(prefix)
    return base_path


class Manager:
    """The served models of one ModelServerConfig; thread-safe."""

    def __init__(self, config=None, allow_labels_for_unavailable=False, log=None,
                 base_path_prefix=None, keep_serving=True):
        """``base_path_prefix``: the local directory the config's ``/models`` stands for
        (``map_base_path``; set it before the first config). ``keep_serving``: refuse a reload
        that leaves a serving model nothing to serve (False: unload it all, as TF Serving)."""
        self._lock = threading.RLock()
        self._load_lock = threading.Lock()  # one poll at a time
        self.allow_labels_for_unavailable = allow_labels_for_unavailable
        self.base_path_prefix = base_path_prefix
        self.keep_serving = keep_serving
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

    def base_path(self, model_config):
        """Where this server reads ``model_config``'s versions (``base_path_prefix`` applied)."""
        return map_base_path(model_config.base_path, self.base_path_prefix)

    def reload(self, config):
        """Applies a new ModelServerConfig (TF Serving's ServerCore::ReloadConfig).

        Invalid configs, labels on versions that are not AVAILABLE and (with ``keep_serving``)
        a config that leaves a model with an AVAILABLE version no version to serve are refused
        with the old config kept (``config`` is kept as given, unmapped); labels are checked
        before anything loads, at start-up too, so a start-up config with labels needs
        ``allow_labels_for_unavailable`` as with TF Serving. Models left out are unloaded.
        Returns once the versions wanted are loaded; models new to the config that have
        versions but none AVAILABLE (every load failed) are reported with UNKNOWN, as TF
        Serving's WaitUntilModelsAvailable reports them.
        """
        with self._lock:
            if not validate(config, self.config):
                self.log('taking no action for an empty config')
                return
            self._check_labels(config)
            if self.keep_serving:
                self._check_keeps_serving(config)
            new_models = set(self._model_configs(config)) - set(self._model_configs())
            self.config = config
            self.labels = {name: dict(model.version_labels)
                           for name, model in self._model_configs().items()}
        self.poll()
        self._require_available(new_models)

    def _require_available(self, names):
        failed = []
        with self._lock:
            for name in sorted(names):
                versions = self.models.get(name, {})
                if versions and not any(v.state == State.AVAILABLE for v in versions.values()):
                    failed.extend(v for v in versions.values() if v.error is not None)
        if failed:
            details = ''.join(f'{{{{name: {v.name} version: {v.number}}} due to error: '
                              f'{v.error[0].name}: {v.error[1]}}}, ' for v in failed)
            count = len({v.name for v in failed})
            raise ServingError(grpc.StatusCode.UNKNOWN,
                               f'{count} model(s) did not become available: {{{details}}}')

    def _check_keeps_serving(self, config):
        for name, model in self._model_configs(config).items():
            serving = sorted(n for n, v in self.models.get(name, {}).items()
                             if v.state == State.AVAILABLE)
            if not serving or name not in self._model_configs():
                continue
            path = self.base_path(model)
            present = version_numbers(path)
            if not aspired(model, present):
                where = path if path == model.base_path else f'{model.base_path} (here {path})'
                holds = f'versions {", ".join(map(str, present))}' if present else 'no versions'
                message = (f'Refusing the config: model {name} serves version(s) '
                           f'{", ".join(map(str, serving))} and would be left with nothing to '
                           f'serve: its base_path {where} holds {holds}, none of which its '
                           f'version policy wants. Remove the model from the config to unload '
                           f'it.')
                self.log(message)
                raise ServingError(grpc.StatusCode.FAILED_PRECONDITION, message)

    def _check_labels(self, config):
        for name, model in self._model_configs(config).items():
            old_labels = self.labels.get(name, {})
            for label, number in model.version_labels.items():
                version = self.models.get(name, {}).get(number)
                available = version is not None and version.state == State.AVAILABLE
                # The flag covers new labels and labels that keep their version.
                unmoved = old_labels.get(label, number) == number
                if not available and not (self.allow_labels_for_unavailable and unmoved):
                    raise ServingError(
                            grpc.StatusCode.FAILED_PRECONDITION,
                            f'Request to assign label to version {number} of model {name}, '
                            'which is not currently available for inference')

    # --- loading -------------------------------------------------------------------------------

    def poll(self):
        """One file-system scan: load what is wanted and absent, then unload what is unwanted.

        Unwanted versions unload only once a wanted one is AVAILABLE, or when nothing is wanted;
        until then the newest unwanted AVAILABLE version keeps serving
        (AvailabilityPreservingPolicy).
        A wanted version whose load failed is not retried while it stays wanted.
        """
        with self._load_lock:
            configs = self._model_configs()
            plans = {}
            for name, model in configs.items():
                base_path = self.base_path(model)
                wanted = aspired(model, version_numbers(base_path))
                with self._lock:
                    current = self.models.setdefault(name, {})
                    for number, version in current.items():
                        version.aspired = number in wanted
                    to_load = sorted((n for n in wanted if n not in current or
                                      current[n].state == State.END and
                                      (current[n].error is None or not current[n].aspired)),
                                     reverse=True)  # the newest first, as the policy does
                plans[name] = (base_path, wanted, to_load)
            for name, (base_path, _, to_load) in plans.items():
                for number in to_load:
                    self._load(name, number, os.path.join(base_path, str(number)))
            with self._lock:
                for name, versions in self.models.items():
                    wanted = plans[name][1] if name in plans else set()
                    for version in versions.values():
                        version.aspired = version.number in wanted
                    serving = sorted(n for n, v in versions.items()
                                     if n not in wanted and v.state == State.AVAILABLE)
                    aspired_serving = any(versions[n].state == State.AVAILABLE
                                          for n in wanted if n in versions)
                    if any(n in versions for n in wanted) and not aspired_serving:
                        serving = serving[:-1]  # keep the newest until a wanted one serves
                    for number in serving:
                        self._unload(versions[number])

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
            version.error = _error_of(e)
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
        requests = warmup.read_warmup(version.path)
        if len(requests) > MAX_WARMUP_RECORDS:
            raise ServingError(grpc.StatusCode.INVALID_ARGUMENT,
                               f'Number of warmup records exceeds the maximum '
                               f'({MAX_WARMUP_RECORDS}) at {records}')
        for request in requests:  # through Predict's own checks, as saved_model_warmup.cc does
            predict(version.saved_model, request.model_spec.signature_name,
                    {k: tf.make_ndarray(v) for k, v in request.inputs.items()})

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
        """[(number, State, error)] for GetModelStatus, newest first, END versions included."""
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
            return [(n, v.state, v.error) for n, v in sorted(versions.items(), reverse=True)]

    def available(self, name, number=None):
        """Whether version ``number`` of model ``name`` is AVAILABLE (None: any version)."""
        with self._lock:
            versions = self.models.get(name, {})
            if number is None:
                return any(v.state == State.AVAILABLE for v in versions.values())
            return number in versions and versions[number].state == State.AVAILABLE


def predict(saved_model, signature_name, inputs):
    """Runs a signature on {key: ndarray} with predict_util.cc's checks and wording.

    ``saved_model`` is the caller's own reference, so an unload in the meantime does not matter.
    Returns {key: ndarray}.
    """
    function = signature(saved_model, signature_name or spec.SERVING_SIGNATURE)
    expected = function.structured_input_signature[1]
    if set(inputs) != set(expected):
        sent, wanted = sorted(inputs), sorted(expected)
        raise ServingError(
                grpc.StatusCode.INVALID_ARGUMENT,
                f'input size does not match signature: {len(sent)}!={len(wanted)} '
                f'len({{{",".join(sent)}}}) != len({{{",".join(wanted)}}}). Sent extra: '
                f'{{{",".join(k for k in sent if k not in expected)}}}. Missing but required: '
                f'{{{",".join(k for k in wanted if k not in inputs)}}}.')
    for index, key in enumerate(sorted(expected)):
        tensor_spec = expected[key]
        value = inputs[key]
        if value.dtype != tensor_spec.dtype.as_numpy_dtype:
            raise ServingError(grpc.StatusCode.INVALID_ARGUMENT,
                               f'Expects arg[{index}] to be {tensor_spec.dtype.name} but '
                               f'{tf.as_dtype(value.dtype).name} is provided')
        if not tensor_spec.shape.is_compatible_with(value.shape):
            raise ServingError(grpc.StatusCode.INVALID_ARGUMENT,
                               f'input {key!r} has shape {list(value.shape)}, the signature '
                               f'takes {tensor_spec.shape}')
    try:
        outputs = function(**{k: tf.constant(v) for k, v in inputs.items()})
    except (tf.errors.InvalidArgumentError, ValueError, TypeError) as e:
        raise ServingError(grpc.StatusCode.INVALID_ARGUMENT, str(e).splitlines()[0]) from None
    return {key: value.numpy() for key, value in outputs.items()}

