"""Rolling a category's three models (or the front end) to a new version without dropping
requests.

Steps, each safe to run twice (a step whose result already holds changes nothing):

- ``publish``: export weights as the next version of all three models (one version number for
  the category; if any export fails, the others are removed).
- ``stage``: add the version to the models' ``specific`` version policy, reload the server's
  config (HandleReloadConfigRequest) and wait until all three are AVAILABLE (GetModelStatus).
  If one fails to load, the config goes back and the step fails: all or nothing.
- ``canary``: point the ``canary`` label of all three at the version (one reload).
- ``promote``: point ``stable`` (and ``canary``) at it; the previous stable version stays loaded
  for ``rollback``.
- ``rollback``: ``stable`` and ``canary`` back to the previous stable version.
- ``status``: versions, their states and the labels.

The front end is a target of its own, ``spec.FRONTEND`` in place of a category: the same steps on
its one model, ``frontend``. It has no weights directory, so it is published from a ready
``FrontEndModule`` (``publish_module``; serving sits below inference and does not build it).

TF Serving only lets a label point at an AVAILABLE version, so a version is always staged (and
waited for) before a label moves to it. ``models.config`` is rewritten atomically after each
accepted reload; the stable history lives beside it in ``rollout_history.json``.
"""

import json
import os
import shutil
import time

import grpc
from tensorflow_serving.apis import get_model_status_pb2
from tensorflow_serving.apis import model_management_pb2
from tensorflow_serving.apis import model_service_pb2_grpc
from tensorflow_serving.config import model_server_config_pb2

from everywear_tf import errors
from everywear_tf import fileio
from everywear_tf import spec
from everywear_tf import weights
from everywear_tf.export import exporter
from everywear_tf.models import factory
from everywear_tf.serving import config as serving_config

HISTORY = 'rollout_history.json'
_AVAILABLE = get_model_status_pb2.ModelVersionStatus.AVAILABLE
_END = get_model_status_pb2.ModelVersionStatus.END


class RolloutError(errors.EverywearError):
    """A rollout step that cannot be done (nothing changed, or it was undone)."""


# What a rollout moves: a category's three models, or the front end's one.
TARGETS = spec.CATEGORIES + (spec.FRONTEND,)


class Rollout:
    """Rollout steps for one target against one server and its config file: a category (its
    GMM, EDM and RM) or ``spec.FRONTEND`` (the ``frontend`` model)."""

    def __init__(self, config_path, export_base, server, category, timeout=300.0, log=None):
        if category not in TARGETS:
            raise ValueError(f'unknown category {category!r}; expected one of {TARGETS}')
        self.config_path, self.export_base = config_path, export_base
        self.category, self.timeout = category, timeout
        self.names = ([spec.FRONTEND_MODEL] if category == spec.FRONTEND else
                      [spec.model_name(module, category) for module in spec.MODULES])
        self.log = log or (lambda message: None)
        self._channel = grpc.insecure_channel(server)
        self._models = model_service_pb2_grpc.ModelServiceStub(self._channel)
        self.history_path = os.path.join(os.path.dirname(os.path.abspath(config_path)),
                                         HISTORY)

    def close(self):
        """Closes the gRPC channel to the server."""
        self._channel.close()

    # --- config and history --------------------------------------------------------------------

    def _config(self):
        return serving_config.read_models(self.config_path)

    def _entries(self, config):
        entries = {m.name: m for m in config.model_config_list.config}
        missing = [n for n in self.names if n not in entries]
        if missing:
            raise RolloutError(f'{self.config_path} does not list {missing}')
        return [entries[n] for n in self.names]

    def _apply(self, config, what):
        """Reloads the server with ``config``, then writes it; unchanged configs are skipped."""
        if config == self._config():
            self.log(f'{what}: already done')
            return False
        try:
            self._models.HandleReloadConfigRequest(
                    model_management_pb2.ReloadConfigRequest(config=config), timeout=self.timeout)
        except grpc.RpcError as e:
            raise RolloutError(f'{what}: the server refused the config: {e.code().name}: '
                               f'{e.details()}') from None
        serving_config.write(self.config_path, config)
        self.log(f'{what}: done')
        return True

    def _history(self):
        if not os.path.exists(self.history_path):
            return {}
        with open(self.history_path) as f:
            return json.load(f)

    def _record_stable(self, version):
        history = self._history()
        stables = history.setdefault(self.category, [])
        if not stables or stables[-1] != version:
            stables.append(version)
        fileio.atomic_write_bytes(self.history_path, json.dumps(history, indent=1).encode())

    # --- server state --------------------------------------------------------------------------

    def states(self, name):
        """{version: (ModelVersionStatus state, error message)} of model ``name`` on the server
        ({} when the server does not know the model)."""
        request = get_model_status_pb2.GetModelStatusRequest()
        request.model_spec.name = name
        try:
            response = self._models.GetModelStatus(request, timeout=self.timeout)
        except grpc.RpcError as e:
            if e.code() == grpc.StatusCode.NOT_FOUND:
                return {}
            raise
        return {s.version: (s.state, s.status.error_message) for s in
                response.model_version_status}

    def _wait_available(self, version):
        deadline = time.monotonic() + self.timeout
        while True:
            states = {name: self.states(name).get(version) for name in self.names}
            # END without an error is an unloaded version (it may be re-added); with one, a
            # failed load.
            failed = {n: s[1] for n, s in states.items() if s and s[0] == _END and s[1]}
            if failed:
                raise RolloutError(f'version {version} failed to load: {failed}')
            if all(s and s[0] == _AVAILABLE for s in states.values()):
                return
            if time.monotonic() > deadline:
                raise RolloutError(f'version {version} not AVAILABLE after {self.timeout} s: '
                                   f'{states}')
            time.sleep(0.1)

    # --- the steps -----------------------------------------------------------------------------

    def publish(self, weights_root, version=exporter.AUTO, precision=factory.FLOAT32):
        """Exports <weights_root>/<model_name> for the three models as one new version
        (``precision`` 'bfloat16': the reduced-precision variant of the same weights)."""
        if self.category == spec.FRONTEND:
            raise RolloutError('the front end has no weights directory: publish a ready '
                               'FrontEndModule with publish_module, or export one with '
                               'export/export_saved_model.py --frontend --base_dir='
                               f'{self.export_base} --version=auto')
        if version == exporter.AUTO:
            version = max(exporter.next_version(os.path.join(self.export_base, n))
                          for n in self.names)
        models = [weights.load(os.path.join(weights_root, n), module=m)
                  for n, m in zip(self.names, spec.MODULES)]
        done = []
        try:
            for name, model in zip(self.names, models):
                done.append(exporter.export(model, self.export_base, name, version,
                                            source=os.path.join(weights_root, name),
                                            precision=precision))
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
        path = exporter.export_module(serving_module, self.export_base, self.names[0], version,
                                      manifest={'source': source})
        version = int(os.path.basename(path))
        self.log(f'published version {version} of {self.names}')
        return version

    def stage(self, version):
        """Loads ``version`` of the target's models alongside what is served; waits for it."""
        config = self._config()
        previous = model_server_config_pb2.ModelServerConfig()
        previous.CopyFrom(config)
        for entry in self._entries(config):
            policy = entry.model_version_policy
            current = set(policy.specific.versions) if policy.HasField('specific') else set(
                    entry.version_labels.values())
            policy.specific.versions[:] = sorted(current | {int(version)})
        changed = self._apply(config, f'stage version {version}')
        try:
            self._wait_available(int(version))
        except RolloutError:
            if changed:
                self._apply(previous, f'undo stage of version {version}')
            raise

    def _label(self, labels, what):
        config = self._config()
        for entry in self._entries(config):
            for label, version in labels.items():
                if version not in entry.model_version_policy.specific.versions:
                    raise RolloutError(f'{what}: version {version} of {entry.name} is not '
                                       'staged; run stage first')
                entry.version_labels[label] = version
        self._wait_available_all(set(labels.values()))
        self._apply(config, what)

    def _wait_available_all(self, versions):
        for version in versions:
            self._wait_available(version)

    def canary(self, version):
        """Points the ``canary`` label of the target's models at staged ``version`` (waits until
        it is AVAILABLE, then reloads the server and writes the config)."""
        self._label({spec.CANARY: int(version)}, f'canary version {version}')

    def promote(self, version=None):
        """``stable`` (and ``canary``) → ``version`` (default: the canary's version)."""
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
            fileio.atomic_write_bytes(self.history_path, json.dumps(history, indent=1).encode())
        self._label({spec.STABLE: int(version), spec.CANARY: int(version)},
                    f'promote version {version}')
        self._record_stable(int(version))

    def rollback(self):
        """``stable`` and ``canary`` back to the previous stable version."""
        history = self._history()
        stables = history.get(self.category, [])
        current = dict(self._entries(self._config())[0].version_labels).get(spec.STABLE)
        last = history.get('rollbacks', {}).get(self.category)
        if last and last['to'] == current:
            self.log(f'roll back to {current}: already done')
            return current
        earlier = [v for v in stables if v != current]
        if not earlier:
            raise RolloutError(f'no previous stable version of {self.category} to roll back to')
        target = earlier[-1]
        self._label({spec.STABLE: target, spec.CANARY: target}, f'roll back to {target}')
        history[self.category] = [v for v in stables if v != current] or [target]
        history.setdefault('rollbacks', {})[self.category] = {'from': current, 'to': target}
        fileio.atomic_write_bytes(self.history_path, json.dumps(history, indent=1).encode())
        return target

    def status(self):
        """{model: {'versions': {n: state name}, 'labels': {...}}}."""
        entries = self._entries(self._config())
        out = {}
        for entry in entries:
            states = self.states(entry.name)
            out[entry.name] = {
                    'versions': {v: get_model_status_pb2.ModelVersionStatus.State.Name(s)
                                 for v, (s, _) in sorted(states.items())},
                    'labels': dict(entry.version_labels),
                    'policy': list(entry.model_version_policy.specific.versions)}
        return out
