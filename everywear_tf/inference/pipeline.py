"""The whole try-on on full photos: preprocess → GMM → EDM → RM → paste back; outfits.

Backends run the three networks of a category on 256×192 frames: ``LocalBackend`` in process
from weights directories (the embedded default), ``SavedModelBackend`` in process from exported
SavedModels, or ``ServerBackend`` through TF Serving with the client. All three run the same
signature functions, so their outputs are identical.
"""

import concurrent.futures
import dataclasses
import os
import sys
import threading

import numpy as np

from everywear_tf import errors
from everywear_tf import spec
from everywear_tf import weights
from everywear_tf.data import frames
from everywear_tf.data import lip
from everywear_tf.export import exporter
from everywear_tf.inference import categories
from everywear_tf.inference import chain as chain_lib
from everywear_tf.inference import postprocess
from everywear_tf.inference import preprocess
from everywear_tf.inference import relight
from everywear_tf.inference import workspace
from everywear_tf.train import runs


class SetupError(errors.EverywearError):
    """The networks cannot run at all: a weights root or export missing or inconsistent, a
    server unreachable or not serving the models. Raised once by a backend's ``check`` before
    any work, with the cause (every try-on would fail the same way)."""


def _stderr(message):
    print(message, file=sys.stderr, flush=True)


def _setup_error(error):
    return SetupError(str(error))


class LocalBackend:
    """Networks loaded in this process from ``<root>/<module>_<category>/`` weights directories,
    each category's on first use."""

    ROOT = 'the weights root: <module>_<category>/ weights directories'

    def __init__(self, root: str, log=None):
        self.root = root
        self.log = log or _stderr
        self._chains = {}
        self._lock = threading.Lock()  # batch runs call from several threads

    def chain(self, category: str) -> chain_lib.Chain:
        """The category's chain, built on first use."""
        with self._lock:
            if category not in self._chains:
                self._chains[category] = self._build(category)
            return self._chains[category]

    def _build(self, category):
        models = []
        for module in spec.MODULES:
            directory = os.path.join(self.root, spec.model_name(module, category))
            if not os.path.exists(directory):
                raise errors.InputNotFoundError(directory, 'no such weights directory'
                                                + runs.old_layout_hint(self.root))
            models.append(weights.load(directory, module))
        return chain_lib.Chain.from_models(category, *models)

    def check(self, categories=spec.CATEGORIES) -> None:
        """Loads the networks of ``categories`` now; SetupError naming the directory and the
        problem if they cannot be (before any work, once, instead of a failure per try-on)."""
        if not os.path.isdir(self.root):
            raise SetupError(f'{self.root}: no such directory ({self.ROOT})')
        for category in categories:
            try:
                self.chain(category)
            except errors.EverywearError as e:
                raise _setup_error(e) from e

    def __call__(self, category: str, inputs: dict) -> dict:
        """Every stage's outputs for a batch of GMM signature inputs."""
        return self.chain(category)(inputs)


class SavedModelBackend(LocalBackend):
    """Exported SavedModels loaded in this process from a TF Serving base path
    (``<base_path>/<module>_<category>/<version>/``), one consistent set per category.

    The set: ``versions`` ({model name: number}) if given; else ``version`` for all three;
    else the ``label`` (default ``stable``) of a models.config (``model_config``, or
    ``<base_path>/models.config`` if there is one); else (no config, or a config without labels,
    when the label is the default: ``label_fallback``) the highest version present for all
    three models. Anything else is an error listing the versions of each model. The versions
    that run are logged.
    """

    ROOT = 'the exported models: <module>_<category>/<version>/'

    def __init__(self, base_path: str, versions: dict | None = None, label: str | None =
                 spec.STABLE, version: int | None = None, label_fallback: bool = True,
                 model_config: str | None = None, log=None):
        super().__init__(base_path, log=log)
        self.versions = versions or {}
        self.label, self.version, self.label_fallback = label or None, version, label_fallback
        self.model_config = model_config

    def _config_file(self):
        if self.model_config:
            return errors.require_file(self.model_config)
        found = os.path.join(self.root, MODELS_CONFIG)
        return found if os.path.isfile(found) else None

    def select(self, category: str) -> tuple[dict, str]:
        """({model name: version}, why those) of ``category``'s three models."""
        names = [spec.model_name(module, category) for module in spec.MODULES]
        present = {name: exporter.versions(os.path.join(self.root, name)) for name in names}

        def listing():
            return ', '.join(f'{name} {present[name] or "none"}' for name in names)

        for name in names:
            if not present[name]:
                raise errors.InputNotFoundError(os.path.join(self.root, name),
                                                'no SavedModel versions')
        if all(name in self.versions for name in names):
            chosen, why = {name: int(self.versions[name]) for name in names}, 'as asked'
        elif self.version is not None:
            chosen, why = dict.fromkeys(names, int(self.version)), f'version {self.version}'
        else:
            chosen, why = self._labelled(names, listing)
            if chosen is None:
                common = set.intersection(*(set(present[name]) for name in names))
                if not common:
                    raise ModelSetError(self.root, f'no version is present for all three '
                                                   f'models of {category}: {listing()}')
                chosen = dict.fromkeys(names, max(common))
                why = f'the highest version present for all three{why}'
        missing = [name for name in names if chosen[name] not in present[name]]
        if missing:
            raise ModelSetError(self.root, f'{why}: ' + ', '.join(
                    f'{name} has no version {chosen[name]}' for name in missing)
                    + f' (present: {listing()})')
        return chosen, why

    def _labelled(self, names, listing):
        """The label's versions from the config, or (None, why not) to take the highest common
        version when the label was only the default."""
        if self.label is None:
            return None, ''
        path = self._config_file()
        if path is None:
            if self.label_fallback:
                return None, f' (no {MODELS_CONFIG} for the {self.label} label)'
            raise ModelSetError(self.root, f'no {MODELS_CONFIG} here to read the {self.label} '
                                           f'label from (pass the config file)')
        from everywear_tf.serving import config as serving_config
        models = {model.name: dict(model.version_labels)
                  for model in serving_config.read_models(path).model_config_list.config}
        labelled = {name: models.get(name, {}).get(self.label) for name in names}
        if all(v is not None for v in labelled.values()):
            return labelled, f'label {self.label} of {path}'
        if self.label_fallback and all(v is None for v in labelled.values()):
            return None, f' ({path} labels none of them {self.label})'
        raise ModelSetError(path, f'label {self.label} is not set for ' + ', '.join(
                name for name in names if labelled[name] is None) + f' (present: {listing()})')

    def _build(self, category):
        chosen, why = self.select(category)
        self.log(f'{category}: ' + ', '.join(f'{name} {number}' for name, number in
                                             chosen.items()) + f' ({why})')
        return chain_lib.Chain.from_saved_models(category, {
                module: os.path.join(self.root, name, str(chosen[name]))
                for module, name in zip(spec.MODULES, chosen)})


class ModelSetError(errors.InputError):
    """Exported versions that do not make one consistent set of a category's three models."""


# Where a TF Serving base path may keep its config (SavedModelBackend looks for it).
MODELS_CONFIG = 'models.config'


class ServerBackend:
    """The same chain through TF Serving (or the dev server) at ``address``.

    GMM and EDM of a try-on go out together (they are independent: the server runs them side by
    side, and one's transport overlaps the other's compute); the outputs are the same as one
    after the other. Each call asks only for what the chain uses (GMM's float32 grid stays on
    the server). ``one_call``: the whole try-on in one call on the category's one-call model
    (``tryon_<category>``), the same outputs. ``client_options`` go to
    ``serving.client.Client``, among them the default ``label`` (``stable``), ``version``,
    ``label_fallback`` and ``encoded`` (PNG files on the wire; off by default, since versions
    exported before it have no ``encoded`` signature).
    """

    # What the chain needs of each module: everything but GMM's grid.
    OUTPUTS = {module: tuple(key for key in spec.MODULE_OUTPUTS[module] if key != spec.GRID)
               for module in spec.MODULES}

    def __init__(self, address: str, log=None, one_call: bool = False, **client_options):
        from everywear_tf.serving import client
        self.address = address
        self.one_call = one_call
        self.log = log or _stderr
        self.client = client.Client(address, **client_options)
        self._stages = concurrent.futures.ThreadPoolExecutor(
                max(2, self.client.concurrency), thread_name_prefix='chain')

    def check(self, categories=spec.CATEGORIES) -> None:
        """Asks the server which version of each model of ``categories`` would answer (and logs
        it); SetupError with the cause if the server is unreachable or does not serve one."""
        from everywear_tf.serving import client
        for category in categories:
            served, asked = [], set()
            names = ([spec.category_model_name(category)] if self.one_call else
                     [spec.model_name(module, category) for module in spec.MODULES])
            for name in names:
                try:
                    number, where = self.client.served_version(name)
                except client.ServerError as e:
                    if e.unreachable:
                        raise SetupError(f'{self.address}: no model server answers there '
                                         f'({e.code.name}: {e.message})') from e
                    asked_for = self.client.where(name).describe()
                    raise SetupError(f'{self.address}: {name} ({asked_for}): {e.code.name}: '
                                     f'{e.message}') from e
                served.append((name, number, where.describe()))
                asked.add(where.describe())
            line = ', '.join(f'{name} {number}' + (f' ({how})' if len(asked) > 1 else '')
                             for name, number, how in served)
            self.log(f'{category}: {line} on {self.address}'
                     + (f' ({asked.pop()})' if len(asked) == 1 else ''))

    def __call__(self, category: str, inputs: dict, label: str | None = None) -> dict:
        """Every stage's outputs; ``label`` addresses all three models alike (a category rolls
        out as a unit); by default the client's canary split chooses one per call, and without
        a split the client's default (``stable`` unless the server has no labels)."""
        label = label if label is not None else self.client.route()
        if self.one_call:
            return self.client.tryon(category, inputs, label=label)

        def run_module(module, module_inputs):
            return self.client.predict(spec.model_name(module, category), module_inputs,
                                       label=label, outputs=self.OUTPUTS[module])

        return chain_lib.run_chain(run_module, category, inputs, submit=self._stages.submit)

    def close(self) -> None:
        """Stops the stage threads and closes the connection."""
        self._stages.shutdown(wait=False)
        self.client.close()


def make_backend(weights_root: str | None = None, saved_models: str | None = None,
                 server: str | None = None, label: str | None = spec.STABLE,
                 version: int | None = None, label_fallback: bool = True,
                 model_config: str | None = None, log=None):
    """The backend one of the three sources names (a server, exported SavedModels, or weights
    directories, in that order of precedence when several are given). ``label``, ``version``,
    ``label_fallback``: which versions a server or an export runs (``SavedModelBackend``,
    ``serving.client.Client``); ``model_config``: the export's models.config."""
    where = {'label': label, 'version': version, 'label_fallback': label_fallback}
    if server:
        return ServerBackend(server, log=log, **where)
    if saved_models:
        return SavedModelBackend(saved_models, model_config=model_config, log=log, **where)
    return LocalBackend(weights_root, log=log)


def front_end_for(backend):
    """The photo front end that goes with ``backend``: through the same TF Serving, from the
    same exported SavedModels (``<base_path>/frontend/<highest version>``), or in process from
    the installed mediapipe wheel's model files (the frontend extra)."""
    from everywear_tf.inference.frontend import estimator
    if isinstance(backend, ServerBackend):
        return estimator.FrontEnd.through(backend.client)
    if isinstance(backend, SavedModelBackend):
        model_dir = os.path.join(backend.root, spec.FRONTEND_MODEL)
        available = exporter.versions(model_dir)
        if not available:
            raise errors.InputNotFoundError(model_dir, 'no SavedModel versions of the front end '
                                                       '(export it with --frontend)')
        return estimator.FrontEnd.from_saved_model(os.path.join(model_dir, str(available[-1])))
    return estimator.FrontEnd.in_process()


# An outfit's two slots.
TOP = 'top'
BOTTOM = 'bottom'


@dataclasses.dataclass
class Result:
    """One garment tried on one photo: the final photo and every intermediate the workspace
    layout names (frame-sized ones at 256×192, photo-sized ones at the photo's size)."""
    category: str
    final: np.ndarray  # photo size
    frame: frames.Frame
    outputs: dict  # the networks' outputs for the frame (batch of 1 squeezed)
    selection: np.ndarray  # uint8 [256,192]: _sel_mask
    alpha: np.ndarray | None  # uint8 0..255, photo size: where the frame was pasted
    tryon: np.ndarray | None = None  # uint8 [256,192,3]: what was pasted inside the selection
    # (RM's try-on relit by relight.relight); None: RM's try-on as it is

    def pasted_tryon(self) -> np.ndarray:
        """uint8 [256,192,3]: the try-on the selection was filled with."""
        return self.outputs[spec.TRYON] if self.tryon is None else self.tryon

    def composed(self):
        """uint8 [256,192,3]: the frame with the try-on inside the selection (what is pasted)."""
        return postprocess.compose(self.frame.image, self.pasted_tryon(), self.selection)

    def dressed_parse(self):
        """The frame's parse with the new garment's label where its clothing mask is."""
        garment = lip.CATEGORY_GARMENT[self.category][1][0]
        worn = (self.selection > 0) & (self.outputs[spec.CLOTHING_MASK] >= 128)
        return np.where(worn, garment, self.frame.parse).astype(np.uint8)

    def images(self):
        """{suffix: uint8 image} of output/composed_images/, named as in workspace.py."""
        tryon_frame = self.pasted_tryon()
        selected = self.selection[..., None] > 0
        return {
                workspace.FINAL: self.final,
                workspace.FOREGROUND: np.where(selected, tryon_frame, 0).astype(np.uint8),
                workspace.BACKGROUND: np.where(selected, 0, self.frame.image).astype(np.uint8),
                workspace.MASK: self.outputs[spec.CLOTHING_MASK],
                workspace.SELECTION: self.selection,
                workspace.WARPED: self.outputs[spec.WARPED_CLOTH],
                workspace.TPS_MASK: self.outputs[spec.TPS_MASK],
        }


def try_on(backend, category: str, photo: np.ndarray, parse: np.ndarray, keypoints: np.ndarray,
           garment: np.ndarray, garment_mask: np.ndarray | None = None,
           pose_path: str = '<memory>', relit: bool = True) -> Result:
    """One garment on one full photo (any size); returns a Result.

    ``relit``: the try-on takes the photo's shading and the person's own skin where the new
    garment uncovers it (relight.relight) before it is pasted; False pastes RM's try-on as is.
    """
    frame = preprocess.frame_for(category, photo, parse, keypoints, pose_path)
    inputs = preprocess.signature_inputs(frame, garment, garment_mask)
    outputs = {k: v[0] for k, v in backend(category, inputs).items()}
    selection = postprocess.selection_mask(category, frame.parse, outputs[spec.CLOTHING_MASK])
    tryon = (relight.relight(category, frame, outputs[spec.TRYON], outputs[spec.CLOTHING_MASK],
                             outputs[spec.WARPED_MASK], selection,
                             outputs[spec.WARPED_CLOTH]) if relit else None)
    result = Result(category=category, final=photo, frame=frame, outputs=outputs,
                    selection=selection, alpha=None, tryon=tryon)
    result.final, result.alpha = postprocess.paste(
            photo, result.composed(), selection, frame.transform,
            protect=categories.protected(category, parse))
    return result


def outfit(backend, photo: np.ndarray, parse: np.ndarray, keypoints: np.ndarray,
           top: tuple | None = None, bottom: tuple | None = None,
           pose_path: str = '<memory>', relit: bool = True) -> tuple:
    """Pants first on the body frame, then the top on the upper crop of that result.

    ``top`` / ``bottom``: (category, garment image, garment mask or None), either may be None;
    ``relit``: as for ``try_on``. Returns (final photo, {BOTTOM: Result, TOP: Result}).
    """
    results = {}
    current = photo
    for slot, garment, frame in ((BOTTOM, bottom, spec.BODY_FRAME), (TOP, top, spec.UPPER_FRAME)):
        if garment is None:
            continue
        category, image, mask = garment
        if spec.frame_of(category) != frame:
            kind = 'an upper' if frame == spec.UPPER_FRAME else 'a lower'
            raise errors.EverywearError(f'{category} is not {kind} garment')
        results[slot] = try_on(backend, category, current, parse, keypoints, image, mask,
                               pose_path, relit)
        current = results[slot].final
    return current, results
