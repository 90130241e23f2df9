"""The whole try-on on full photos: preprocess → GMM → EDM → RM → paste back; outfits.

Backends run the three networks of a category on 256×192 frames: ``LocalBackend`` in process
from weights directories (the embedded default), ``SavedModelBackend`` in process from exported
SavedModels, or ``ServerBackend`` through TF Serving with the client. All three run the same
signature functions, so their outputs are identical.
"""

import concurrent.futures
import dataclasses
import os
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
from everywear_tf.inference import workspace


class LocalBackend:
    """Networks loaded in this process from ``<root>/<module>_<category>/`` weights directories,
    each category's on first use."""

    def __init__(self, root: str):
        self.root = root
        self._chains = {}
        self._lock = threading.Lock()  # batch runs call from several threads

    def chain(self, category: str) -> chain_lib.Chain:
        """The category's chain, built on first use."""
        with self._lock:
            if category not in self._chains:
                self._chains[category] = self._build(category)
            return self._chains[category]

    def _build(self, category):
        return chain_lib.Chain.from_models(category, *[
                weights.load(os.path.join(self.root, spec.model_name(module, category)),
                             module) for module in spec.MODULES])

    def __call__(self, category: str, inputs: dict) -> dict:
        """Every stage's outputs for a batch of GMM signature inputs."""
        return self.chain(category)(inputs)


class SavedModelBackend(LocalBackend):
    """Exported SavedModels loaded in this process from a TF Serving base path
    (``<base_path>/<module>_<category>/<version>/``; the highest version, or ``versions``)."""

    def __init__(self, base_path: str, versions: dict | None = None):
        super().__init__(base_path)
        self.versions = versions or {}

    def _build(self, category):
        directories = {}
        for module in spec.MODULES:
            name = spec.model_name(module, category)
            model_dir = os.path.join(self.root, name)
            available = exporter.versions(model_dir)
            version = self.versions.get(name, available[-1] if available else None)
            if version not in available:
                raise errors.InputNotFoundError(
                        model_dir, f'no SavedModel version {version} (found {available})'
                        if version is not None else 'no SavedModel versions')
            directories[module] = os.path.join(model_dir, str(version))
        return chain_lib.Chain.from_saved_models(category, directories)


class ServerBackend:
    """The same chain through TF Serving (or the dev server) at ``address``.

    GMM and EDM of a try-on go out together (they are independent: the server runs them side by
    side, and one's transport overlaps the other's compute); the outputs are the same as one
    after the other.
    """

    def __init__(self, address: str, **client_options):
        from everywear_tf.serving import client
        self.client = client.Client(address, **client_options)
        self._stages = concurrent.futures.ThreadPoolExecutor(
                max(2, self.client.concurrency), thread_name_prefix='chain')

    def __call__(self, category: str, inputs: dict, label: str | None = None) -> dict:
        """Every stage's outputs; ``label`` addresses all three models alike (a category rolls
        out as a unit); by default the client's canary split chooses one per call."""
        label = label if label is not None else self.client.route()

        def run_module(module, module_inputs):
            return self.client.predict(spec.model_name(module, category), module_inputs,
                                       label=label)

        return chain_lib.run_chain(run_module, category, inputs, submit=self._stages.submit)

    def close(self) -> None:
        """Stops the stage threads and closes the connection."""
        self._stages.shutdown(wait=False)
        self.client.close()


def make_backend(weights_root: str | None = None, saved_models: str | None = None,
                 server: str | None = None):
    """The backend one of the three sources names (a server, exported SavedModels, or weights
    directories, in that order of precedence when several are given)."""
    if server:
        return ServerBackend(server)
    if saved_models:
        return SavedModelBackend(saved_models)
    return LocalBackend(weights_root)


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
    alpha: np.ndarray  # float32, photo size: where the frame was pasted

    def composed(self):
        """uint8 [256,192,3]: the frame with the try-on inside the selection (what is pasted)."""
        return postprocess.compose(self.frame.image, self.outputs[spec.TRYON],
                                   self.selection)

    def dressed_parse(self):
        """The frame's parse with the new garment's label where its clothing mask is."""
        garment = lip.CATEGORY_GARMENT[self.category][1][0]
        worn = (self.selection > 0) & (self.outputs[spec.CLOTHING_MASK] >= 128)
        return np.where(worn, garment, self.frame.parse).astype(np.uint8)

    def images(self):
        """{suffix: uint8 image} of output/composed_images/, named as in workspace.py."""
        tryon_frame = self.outputs[spec.TRYON]
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
           pose_path: str = '<memory>') -> Result:
    """One garment on one full photo (any size); returns a Result."""
    frame = preprocess.frame_for(category, photo, parse, keypoints, pose_path)
    inputs = preprocess.signature_inputs(frame, garment, garment_mask)
    outputs = {k: v[0] for k, v in backend(category, inputs).items()}
    selection = postprocess.selection_mask(category, frame.parse, outputs[spec.CLOTHING_MASK])
    final, alpha = postprocess.paste(
            photo, postprocess.compose(frame.image, outputs[spec.TRYON], selection), selection,
            frame.transform, protect=categories.protected(category, parse))
    return Result(category=category, final=final, frame=frame, outputs=outputs,
                  selection=selection, alpha=alpha)


def outfit(backend, photo: np.ndarray, parse: np.ndarray, keypoints: np.ndarray,
           top: tuple | None = None, bottom: tuple | None = None,
           pose_path: str = '<memory>') -> tuple:
    """Pants first on the body frame, then the top on the upper crop of that result.

    ``top`` / ``bottom``: (category, garment image, garment mask or None), either may be None.
    Returns (final photo, {BOTTOM: Result, TOP: Result}).
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
                               pose_path)
        current = results[slot].final
    return current, results
