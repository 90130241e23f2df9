"""Rolling a category's three models (or the front end) to a new version without dropping
requests, on one server or a fleet of replicas. A category whose one-call model
(``tryon_<category>``) the config lists moves it with the three, as one unit: same version,
same steps, same labels (a caller of the one-call model and a caller of the three modules get
the same weights at every moment a label points at).

Steps, each safe to run twice (a step whose result already holds changes nothing):

- ``publish``: export weights as the next version of all three models, and of the one-call
  model built from the same weights if the config lists it (one version number for the
  category; if any export fails, the others are removed).
- ``stage``: add the version to the models' ``specific`` version policy and wait until every
  replica serves it beside what it served before. If one fails to load, or a version that was
  serving stops, the config goes back and the step fails: all or nothing.
- ``canary``: point the ``canary`` label of all three at the version (one reload).
- ``promote``: point ``stable`` (and ``canary``) at it; the previous stable version stays loaded
  for ``rollback``.
- ``rollback``: ``stable`` and ``canary`` back to the previous stable version (staged again
  first if it was unloaded).
- ``status``: versions, their states and the labels.

After each label move, versions no label points at are unloaded, except the last
``rollback_targets`` stable versions and versions staged after the newest labelled one (not
the one just rolled back from), so a fleet holds a bounded number of versions; the kept ones are
checked AVAILABLE before the reload that drops the others.

A fleet: every replica polls one config file (TF Serving's
``--model_config_file_poll_wait_seconds``), which is the source of truth. A step writes the file
first (atomically), then sends it to every replica named (HandleReloadConfigRequest, so none
waits for its next poll, and no poll can revert the reload), and is done only when every replica
reports the versions and labels it asked for (GetModelStatus; a label's version through
GetModelMetadata); it says what it waits for while it waits. A refused reload or a replica that
does not get there puts the previous file back on every replica. One rollout at a time: a
lock file beside the config (``<config>.lock``, never followed through a symbolic link).

The front end is a target of its own, ``spec.FRONTEND`` in place of a category: the same steps on
its one model, ``frontend``. It has no weights directory, so it is published from a ready
``FrontEndModule`` (``publish_module``; serving sits below inference and does not build it).

TF Serving only lets a label point at an AVAILABLE version, so a version is always staged (and
waited for) before a label moves to it. The stable history lives beside the config in
``rollout_history.json``.
"""

import contextlib
import json
import os
import shutil
import time

import grpc
from tensorflow_serving.apis import get_model_metadata_pb2
from tensorflow_serving.apis import get_model_status_pb2
from tensorflow_serving.apis import model_management_pb2
from tensorflow_serving.apis import model_service_pb2_grpc
from tensorflow_serving.apis import prediction_service_pb2_grpc
from tensorflow_serving.config import model_server_config_pb2

from everywear_tf import errors
from everywear_tf import fileio
from everywear_tf import hardware
from everywear_tf import spec
from everywear_tf import weights
from everywear_tf.export import exporter
from everywear_tf.models import factory
from everywear_tf.serving import config as serving_config

HISTORY = 'rollout_history.json'
LOCK_SUFFIX = '.lock'
_STATUS = get_model_status_pb2.ModelVersionStatus
_AVAILABLE, _END = _STATUS.AVAILABLE, _STATUS.END
_CALL_TIMEOUT = 30.0  # one status or metadata call


class RolloutError(errors.EverywearError):
    """A rollout step that cannot be done (nothing changed, or it was undone)."""


# What a rollout moves: a category's three models, or the front end's one.
TARGETS = spec.CATEGORIES + (spec.FRONTEND,)


def server_addresses(server):
    """The replicas' gRPC addresses from ``'host:port'``, ``'a:1,b:2'`` or a list of those, in
    order, each once."""
    items = [server] if isinstance(server, str) else list(server)
    addresses = []
    for item in items:
        for address in item.split(','):
            if address.strip() and address.strip() not in addresses:
                addresses.append(address.strip())
    if not addresses:
        raise RolloutError(f'no server address in {server!r}')
    return addresses


class _Want:
    """What one model must look like on every replica once a step is done: versions AVAILABLE,
    versions unloaded (END or not listed), labels resolving to versions."""

    def __init__(self, available=(), gone=(), labels=None):
        self.available, self.gone = set(available), set(gone)
        self.labels = dict(labels or {})

    def describe(self):
        parts = []
        if self.available:
            parts.append(f'version {_numbers(self.available)} AVAILABLE')
        if self.gone:
            parts.append(f'version {_numbers(self.gone)} unloaded')
        if self.labels:
            parts.append(', '.join(f'{k}→{v}' for k, v in sorted(self.labels.items())))
        return '; '.join(parts) or 'listed'


def _numbers(versions):
    return ', '.join(str(v) for v in sorted(versions))


def _copy(config):
    copied = model_server_config_pb2.ModelServerConfig()
    copied.CopyFrom(config)
    return copied


def _policy(entry):
    """The versions of ``entry``'s ``specific`` policy (its labelled versions when it has none)."""
    policy = entry.model_version_policy
    if policy.HasField('specific'):
        return set(policy.specific.versions)
    return set(entry.version_labels.values())


class Rollout:
    """Rollout steps for one target against the replicas serving one config file: a category
    (its GMM, EDM and RM) or ``spec.FRONTEND`` (the ``frontend`` model).

    ``server``: one replica's gRPC address, several comma-separated, or a list. ``reload``:
    send each step's config to every replica (False: leave it to their config-file polling and
    only wait). ``rollback_targets``: how many earlier stable versions stay loaded.
    """

    def __init__(self, config_path, export_base, server, category, timeout=300.0, log=None,
                 rollback_targets=1, reload=True, poll_seconds=0.1, progress_seconds=5.0):
        if category not in TARGETS:
            raise ValueError(f'unknown category {category!r}; expected one of {TARGETS}')
        if rollback_targets < 0:
            raise ValueError(f'rollback_targets must be >= 0, got {rollback_targets}')
        self.config_path, self.export_base = os.fspath(config_path), export_base
        self.category, self.timeout = category, timeout
        self.rollback_targets, self.reload = int(rollback_targets), reload
        self.poll_seconds, self.progress_seconds = poll_seconds, progress_seconds
        self.module_names = ([spec.FRONTEND_MODEL] if category == spec.FRONTEND else
                             [spec.model_name(module, category) for module in spec.MODULES])
        self._names = None
        self.log = log or (lambda message: None)
        self.servers = server_addresses(server)
        self._channels = {s: grpc.insecure_channel(s) for s in self.servers}
        self._models = {s: model_service_pb2_grpc.ModelServiceStub(c)
                        for s, c in self._channels.items()}
        self._predictions = {s: prediction_service_pb2_grpc.PredictionServiceStub(c)
                             for s, c in self._channels.items()}
        self.history_path = os.path.join(os.path.dirname(os.path.abspath(self.config_path)),
                                         HISTORY)
        self.lock_path = self.config_path + LOCK_SUFFIX
        self._lock_fd, self._lock_depth = None, 0

    def close(self):
        """Closes the gRPC channels to the replicas."""
        for channel in self._channels.values():
            channel.close()

    # --- one rollout at a time -----------------------------------------------------------------

    @contextlib.contextmanager
    def locked(self, step='rollout'):
        """Holds ``<config>.lock`` (re-entrant within this object); RolloutError naming the
        file when another rollout holds it or it is a symbolic link or not a regular file."""
        if self._lock_depth:
            self._lock_depth += 1
            try:
                yield
            finally:
                self._lock_depth -= 1
            return
        with contextlib.ExitStack() as stack:
            try:
                fd = stack.enter_context(fileio.exclusive_lock(self.lock_path))
            except fileio.LockBusyError:
                raise RolloutError(f'{self.lock_path}: another rollout holds this lock '
                                   f'({self._holder()}); wait until it ends, then run this '
                                   'step again') from None
            except fileio.LockFileError as e:
                raise RolloutError(f'rollout lock: {e}') from None
            os.ftruncate(fd, 0)
            os.pwrite(fd, f'pid {os.getpid()}, {step} of {self.category}\n'.encode(), 0)
            self._lock_fd, self._lock_depth = fd, 1
            try:
                yield
            finally:
                self._lock_fd, self._lock_depth = None, 0

    def _holder(self) -> str:
        """Who holds the lock, as its holder wrote it into the file."""
        try:
            with open(self.lock_path, 'rb') as f:
                return f.read(200).decode(errors='replace').strip() or 'unknown'
        except OSError:
            return 'unknown'

    # --- config and history --------------------------------------------------------------------

    def _config(self):
        return serving_config.read_models(self.config_path)

    @property
    def names(self):
        """The models every step moves: the target's modules and, for a category whose one-call
        model ``tryon_<category>`` the config lists, that model too (read once, from the config
        file)."""
        if self._names is None:
            names = list(self.module_names)
            if self.category != spec.FRONTEND:
                one_call = spec.category_model_name(self.category)
                if any(m.name == one_call for m in self._config().model_config_list.config):
                    names.append(one_call)
            self._names = names
        return self._names

    @property
    def one_call(self):
        """Whether the category's one-call model moves with its modules."""
        return len(self.names) > len(self.module_names)

    def _entries(self, config):
        entries = {m.name: m for m in config.model_config_list.config}
        missing = [n for n in self.names if n not in entries]
        if missing:
            raise RolloutError(f'{self.config_path} does not list {missing}')
        return [entries[n] for n in self.names]

    def _history(self):
        if not os.path.exists(self.history_path):
            return {}
        with open(self.history_path) as f:
            return json.load(f)

    def _write_history(self, history):
        fileio.atomic_write_bytes(self.history_path, json.dumps(history, indent=1).encode())

    def _record_stable(self, version):
        history = self._history()
        stables = history.setdefault(self.category, [])
        if not stables or stables[-1] != version:
            stables.append(version)
        self._write_history(history)

    # --- replica state -------------------------------------------------------------------------

    def states(self, name, server=None):
        """{version: (ModelVersionStatus state, error message)} of model ``name`` on replica
        ``server`` (default: the first) ({} when it does not know the model)."""
        request = get_model_status_pb2.GetModelStatusRequest()
        request.model_spec.name = name
        stub = self._models[server or self.servers[0]]
        try:
            response = stub.GetModelStatus(request, timeout=min(self.timeout, _CALL_TIMEOUT))
        except grpc.RpcError as e:
            if e.code() == grpc.StatusCode.NOT_FOUND:
                return {}
            raise
        return {s.version: (s.state, s.status.error_message) for s in
                response.model_version_status}

    def _labelled_version(self, server, name, label):
        request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=['signature_def'])
        request.model_spec.name = name
        request.model_spec.version_label = label
        try:
            response = self._predictions[server].GetModelMetadata(
                    request, timeout=min(self.timeout, _CALL_TIMEOUT))
        except grpc.RpcError as e:
            return f'{e.code().name}'
        return response.model_spec.version.value

    def _serving(self):
        """{replica: {model: versions AVAILABLE}} now (a replica that does not answer is
        RolloutError: a step starts only with every replica reachable)."""
        out = {}
        for server in self.servers:
            try:
                out[server] = {name: {v for v, (state, _) in self.states(name, server).items()
                                      if state == _AVAILABLE} for name in self.names}
            except grpc.RpcError as e:
                raise RolloutError(f'replica {server} does not answer GetModelStatus: '
                                   f'{e.code().name}: {e.details()}') from None
        return out

    def _pending(self, server, wants, before, restoring):
        """What replica ``server`` still lacks of ``wants`` ({model: _Want}), as phrases;
        RolloutError at once for a version that failed to load, or (unless ``restoring``) one
        that was AVAILABLE in ``before`` and is not any more."""
        pending = []
        for name, want in wants.items():
            try:
                states = self.states(name, server)
            except grpc.RpcError as e:
                return [f'unreachable ({e.code().name})']
            served = before.get(server, {}).get(name, set()) - want.gone
            required = set(want.available) | (served if restoring else set())
            lacking = []
            if not restoring:
                lost = sorted(v for v in served if states.get(v, (None,))[0] != _AVAILABLE)
                if lost:
                    found = ', '.join(f'{v} {_STATUS.State.Name(states[v][0])}'
                                      if v in states else f'{v} not listed' for v in lost)
                    raise RolloutError(f'replica {server} stopped serving version(s) '
                                       f'{_numbers(lost)} of {name} ({found})')
            for version in sorted(required):
                state, error = states.get(version, (None, ''))
                if state == _END and error and not restoring:
                    raise RolloutError(f'version {version} of {name} failed to load on '
                                       f'{server}: {error}')
                if state != _AVAILABLE:
                    lacking.append(f'{version} {_STATUS.State.Name(state)}'
                                   if state is not None else f'{version} not listed')
            for version in sorted(want.gone):
                state = states.get(version, (_END,))[0]
                if state != _END:
                    lacking.append(f'{version} {_STATUS.State.Name(state)} (to unload)')
            if not lacking:
                for label, version in sorted(want.labels.items()):
                    got = self._labelled_version(server, name, label)
                    if got != version:
                        lacking.append(f'{label}→{got} (to be {version})')
            if lacking:
                pending.append(f'{name} {", ".join(lacking)}')
        return pending

    def _wait(self, wants, what, before=None, restoring=False):
        """Returns once every replica has ``wants``, saying what it waits for, with progress;
        RolloutError after ``timeout`` or at once (see ``_pending``)."""
        before = before or {}
        asked = '; '.join(f'{name} {want.describe()}' for name, want in wants.items())
        self.log(f'{what}: waiting (up to {self.timeout:g} s) until '
                 f'{"every one of " if len(self.servers) > 1 else ""}'
                 f'{", ".join(self.servers)} reports {asked}')
        started = time.monotonic()
        reported, reported_at = None, started
        while True:
            pending = {s: p for s in self.servers
                       if (p := self._pending(s, wants, before, restoring))}
            now = time.monotonic()
            if not pending:
                if reported is not None:
                    self.log(f'{what}: every replica reports it after {now - started:.1f} s')
                return
            text = '; '.join(f'{server}: {", ".join(p)}' for server, p in pending.items())
            if now - started > self.timeout:
                raise RolloutError(f'{what}: not done after {self.timeout:g} s: still waiting '
                                   f'for {text}')
            if text != reported or now - reported_at >= self.progress_seconds:
                self.log(f'{what}: waiting for {text} ({now - started:.0f} s)')
                reported, reported_at = text, now
            time.sleep(self.poll_seconds)

    # --- applying a config to the fleet --------------------------------------------------------

    def _reload_all(self, config):
        """Sends ``config`` to every replica; {replica: 'CODE: details'} of those that refused."""
        refused = {}
        for server in self.servers:
            try:
                self._models[server].HandleReloadConfigRequest(
                        model_management_pb2.ReloadConfigRequest(config=config),
                        timeout=self.timeout)
            except grpc.RpcError as e:
                refused[server] = f'{e.code().name}: {e.details()}'
        return refused

    def _apply(self, config, what, wants, before, previous):
        """Makes ``config`` the fleet's: writes the file every replica polls, reloads every
        replica, waits until each reports ``wants``; on any failure puts ``previous`` back (file
        and replicas), waits until what ``before`` says was serving serves again, and raises.
        Returns False when the file already said so (then it only checks the replicas)."""
        if config == previous:
            self._wait(wants, what, before)
            self.log(f'{what}: already done')
            return False
        serving_config.write(self.config_path, config)
        try:
            refused = self._reload_all(config) if self.reload else {}
            if refused:
                raise RolloutError('refused by ' + '; '.join(f'{s}: {r}'
                                                             for s, r in refused.items()))
            self._wait(wants, what, before)
        except (RolloutError, grpc.RpcError) as e:
            self._undo(previous, what, before, e)
        self.log(f'{what}: done')
        return True

    def _undo(self, previous, what, before, cause):
        cause = cause.details() if isinstance(cause, grpc.RpcError) else str(cause)
        self.log(f'{what}: failed ({cause}); putting {self.config_path} back')
        serving_config.write(self.config_path, previous)
        refused = self._reload_all(previous) if self.reload else {}
        restore = {entry.name: _Want() for entry in self._entries(previous)}
        try:
            if refused:
                raise RolloutError('the previous config was refused by ' + '; '.join(
                        f'{s}: {r}' for s, r in refused.items()))
            self._wait(restore, f'undo {what}', before, restoring=True)
        except RolloutError as e:
            raise RolloutError(
                    f'{what}: {cause}. The undo did not restore what was serving: {e}. Check '
                    f'that the base paths in {self.config_path} are where every server reads '
                    'the exported models (the dev server maps /models with '
                    '--model_base_path_prefix)') from None
        raise RolloutError(f'{what}: {cause}; undone: {self.config_path} and every replica are '
                           'back to the previous config, serving what they served before')

    # --- the steps -----------------------------------------------------------------------------

    def publish(self, weights_root, version=exporter.AUTO, precision=factory.FLOAT32,
                force=False):
        """Exports <weights_root>/<model_name> for the three models as one new version, and the
        one-call model of the same three networks when it moves with them (``precision``
        'bfloat16': the reduced-precision variant of the same weights, refused with
        hardware.NotNativeError on a CPU without native bfloat16 unless ``force``, which logs a
        warning instead)."""
        if precision == factory.BFLOAT16:
            hardware.check_bfloat16(f'publish of the bfloat16 variant of {self.names}', force,
                                    warn=self.log)
        if self.category == spec.FRONTEND:
            raise RolloutError('the front end has no weights directory: publish a ready '
                               'FrontEndModule with publish_module, or export one with '
                               'export/export_saved_model.py --frontend --base_dir='
                               f'{self.export_base} --version=auto')
        with self.locked('publish'):  # two publishes would pick the same number
            if version == exporter.AUTO:
                version = max(exporter.next_version(os.path.join(self.export_base, n))
                              for n in self.names)
            models = [weights.load(os.path.join(weights_root, n), module=m)
                      for n, m in zip(self.module_names, spec.MODULES)]
            sources = [os.path.join(weights_root, name) for name in self.module_names]
            done = []
            try:
                for name, model, source in zip(self.module_names, models, sources):
                    done.append(exporter.export(model, self.export_base, name, version,
                                                source=source, precision=precision))
                if self.one_call:
                    done.append(exporter.export_category(
                            self.category, *models, base_dir=self.export_base, version=version,
                            source=', '.join(sources), precision=precision))
            except BaseException:
                for path in done:
                    shutil.rmtree(path, ignore_errors=True)
                raise
            self.log(f'published version {version} of {self.names}')
            return int(version)

    def publish_module(self, serving_module, version=exporter.AUTO, source=None):
        """Exports a ready ``tf.Module`` with its ``signatures()`` (the front end's
        ``FrontEndModule.from_mediapipe()``) as a new version of a one-model target; returns the
        version. ``source`` is recorded in the export manifest."""
        if len(self.names) != 1:
            raise RolloutError(f'publish_module publishes one model; {self.category} has '
                               f'{self.names}: use publish')
        with self.locked('publish'):
            path = exporter.export_module(serving_module, self.export_base, self.names[0],
                                          version, manifest={'source': source})
        version = int(os.path.basename(path))
        self.log(f'published version {version} of {self.names}')
        return version

    def stage(self, version):
        """Loads ``version`` of the target's models beside what every replica serves; returns
        once each serves it and still serves what it served before (else undone, RolloutError).
        """
        version = int(version)
        with self.locked('stage'):
            previous = self._config()
            config = _copy(previous)
            before = self._serving()
            wants = {}
            for entry in self._entries(config):
                policy = _policy(entry)
                serving = set().union(*(b[entry.name] for b in before.values()))
                if serving - policy:  # stage never unloads: what serves stays in the policy
                    self.log(f'stage version {version}: {entry.name} serves version '
                             f'{_numbers(serving - policy)} that {self.config_path} does not '
                             'list; keeping it')
                entry.model_version_policy.specific.versions[:] = sorted(
                        policy | serving | {version})
                wants[entry.name] = _Want({version}, labels={
                        k: v for k, v in entry.version_labels.items() if v in serving})
            self._apply(config, f'stage version {version}', wants, before, previous)

    def _label(self, labels, what):
        """Moves ``labels`` ({label: version}) of the target's models in one reload, once the
        versions are AVAILABLE on every replica; returns once every replica resolves them."""
        previous = self._config()
        config = _copy(previous)
        for entry in self._entries(config):
            for label, version in labels.items():
                if version not in entry.model_version_policy.specific.versions:
                    raise RolloutError(f'{what}: version {version} of {entry.name} is not '
                                       'staged; run stage first')
                entry.version_labels[label] = version
        before = self._serving()
        versions = set(labels.values())
        self._wait({name: _Want(versions) for name in self.names},
                   f'{what}: before moving the labels', before)
        wants = {entry.name: _Want(versions, labels=dict(entry.version_labels))
                 for entry in self._entries(config)}
        self._apply(config, what, wants, before, previous)

    def kept_versions(self, entry, history=None):
        """The versions of config ``entry`` a rollout keeps loaded: the labelled ones, the last
        ``rollback_targets`` earlier stable versions still staged, and versions staged after
        the newest labelled one (except the one just rolled back from)."""
        history = self._history() if history is None else history
        policy = _policy(entry)
        labelled = set(entry.version_labels.values())
        if not labelled:
            return policy
        targets = []
        for version in reversed(history.get(self.category, [])):
            if version in policy and version not in labelled and version not in targets:
                targets.append(version)
        rolled_back = history.get('rollbacks', {}).get(self.category, {}).get('from')
        pending = {v for v in policy if v > max(labelled) and v != rolled_back}
        return labelled | set(targets[:self.rollback_targets]) | pending

    def prune(self, what='unload'):
        """Unloads the versions ``kept_versions`` does not keep, in one reload after the kept
        ones are AVAILABLE on every replica; returns the unloaded {model: [versions]}."""
        with self.locked('prune'):
            previous = self._config()
            config = _copy(previous)
            history = self._history()
            wants, dropped = {}, {}
            for entry in self._entries(config):
                policy = _policy(entry)
                keep = policy & self.kept_versions(entry, history)
                if not entry.model_version_policy.HasField('specific'):
                    keep = policy  # a latest/all policy unloads by itself
                if keep != policy:
                    entry.model_version_policy.specific.versions[:] = sorted(keep)
                    dropped[entry.name] = sorted(policy - keep)
                wants[entry.name] = _Want(keep, policy - keep, dict(entry.version_labels))
            if not dropped:
                return {}
            what = (f'{what} version {_numbers(set().union(*dropped.values()))} (no label points '
                    'at it)')
            before = self._serving()
            self._wait({name: _Want(want.available) for name, want in wants.items()},
                       f'{what}: before unloading', before)
            self._apply(config, what, wants, before, previous)
            return dropped

    def canary(self, version):
        """Points the ``canary`` label of the target's models at staged ``version`` (waits until
        it is AVAILABLE on every replica, then reloads them and writes the config); then unloads
        what no label keeps."""
        with self.locked('canary'):
            self._label({spec.CANARY: int(version)}, f'canary version {version}')
            self.prune()

    def promote(self, version=None):
        """``stable`` (and ``canary``) → ``version`` (default: the canary's version); the
        previous stable stays loaded for ``rollback``, older unlabelled versions unload."""
        with self.locked('promote'):
            if version is None:
                labels = dict(self._entries(self._config())[0].version_labels)
                if spec.CANARY not in labels:
                    raise RolloutError('no canary to promote; pass a version')
                version = labels[spec.CANARY]
            current = dict(self._entries(self._config())[0].version_labels).get(spec.STABLE)
            if current is not None and current != int(version):
                self._record_stable(current)
            history = self._history()
            if history.get('rollbacks', {}).pop(self.category, None) is not None:
                self._write_history(history)
            self._label({spec.STABLE: int(version), spec.CANARY: int(version)},
                        f'promote version {version}')
            self._record_stable(int(version))
            self.prune()

    def rollback(self):
        """``stable`` and ``canary`` back to the previous stable version (staged again first if
        it was unloaded); the version rolled back from unloads."""
        with self.locked('rollback'):
            history = self._history()
            stables = history.get(self.category, [])
            current = dict(self._entries(self._config())[0].version_labels).get(spec.STABLE)
            last = history.get('rollbacks', {}).get(self.category)
            if last and last['to'] == current:
                self.prune()
                self.log(f'roll back to {current}: already done')
                return current
            earlier = [v for v in stables if v != current]
            if not earlier:
                raise RolloutError(f'no previous stable version of {self.category} to roll '
                                   'back to')
            target = earlier[-1]
            if any(target not in entry.model_version_policy.specific.versions
                   for entry in self._entries(self._config())):
                self.stage(target)
            self._label({spec.STABLE: target, spec.CANARY: target}, f'roll back to {target}')
            history[self.category] = [v for v in stables if v != current] or [target]
            history.setdefault('rollbacks', {})[self.category] = {'from': current, 'to': target}
            self._write_history(history)
            self.prune()
            return target

    def status(self):
        """{model: {'versions': {n: state name}, 'labels': {...}, 'policy': [...]}}, versions as
        the first replica reports them; with several replicas also 'replicas': {address:
        {n: state name}}."""
        entries = self._entries(self._config())
        out = {}
        for entry in entries:
            by_server = {server: {v: _STATUS.State.Name(s) for v, (s, _) in
                                  sorted(self.states(entry.name, server).items())}
                         for server in self.servers}
            out[entry.name] = {'versions': by_server[self.servers[0]],
                               'labels': dict(entry.version_labels),
                               'policy': list(entry.model_version_policy.specific.versions)}
            if len(self.servers) > 1:
                out[entry.name]['replicas'] = by_server
        return out
