"""The whole try-on on full photos: preprocess → GMM → EDM → RM → paste back; outfits.

Backends run the three networks of a category on 256×192 frames: ``LocalBackend`` in process
from weights directories (the embedded default), ``SavedModelBackend`` in process from exported
SavedModels, or ``ServerBackend`` through TF Serving with the client. All three run the same
signature functions, so their outputs are identical.
"""

import dataclasses
import os
import threading

import numpy as np

from everywear_tf import errors
from everywear_tf import evaluate
from everywear_tf import postprocess
from everywear_tf import preprocess
from everywear_tf import spec
from everywear_tf import tryon
from everywear_tf import weights
from everywear_tf.data import keypoints as keypoint_files
from everywear_tf.data import lip
from everywear_tf.export import exporter

UPPER = 'upper'
LOWER = 'lower'


def region_of(category):
    if category not in spec.CATEGORIES:
        raise errors.EverywearError(f'unknown category {category!r}; expected one of '
                                    f'{spec.CATEGORIES}')
    return UPPER if category in spec.UPPER_CATEGORIES else LOWER


class LocalBackend:
    """Networks loaded in this process from ``<root>/<module>_<category>/`` weights directories,
    each category's on first use."""

    def __init__(self, root):
        self.root = root
        self._chains = {}
        self._lock = threading.Lock()  # batch runs call from several threads

    def chain(self, category):
        with self._lock:
            if category not in self._chains:
                self._chains[category] = self._build(category)
            return self._chains[category]

    def _build(self, category):
        return tryon.Tryon(category, *[
                weights.load(os.path.join(self.root, spec.model_name(module, category)),
                             module) for module in spec.MODULES])

    def __call__(self, category, inputs):
        return self.chain(category)(inputs)


class SavedModelBackend(LocalBackend):
    """Exported SavedModels loaded in this process from a TF Serving base path
    (``<base_path>/<module>_<category>/<version>/``; the highest version, or ``versions``)."""

    def __init__(self, base_path, versions=None):
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
        return tryon.Tryon.from_saved_models(category, directories)


class ServerBackend:
    """The same chain through TF Serving (or the dev server) at ``address``."""

    def __init__(self, address, **client_options):
        from everywear_tf.serving import client
        self.client = client.Client(address, **client_options)

    def __call__(self, category, inputs):
        return self.client.tryon(category, inputs)


def make_backend(weights_root=None, saved_models=None, server=None):
    """The backend one of the three sources names (a server, exported SavedModels, or weights
    directories, in that order of precedence when several are given)."""
    if server:
        return ServerBackend(server)
    if saved_models:
        return SavedModelBackend(saved_models)
    return LocalBackend(weights_root)


@dataclasses.dataclass
class Result:
    """One garment tried on one photo: the final photo and every intermediate the workspace
    layout names (frame-sized ones at 256×192, photo-sized ones at the photo's size)."""
    category: str
    final: np.ndarray  # photo size
    frame: preprocess.Frame
    outputs: dict  # the networks' outputs for the frame (batch of 1 squeezed)
    selection: np.ndarray  # uint8 [256,192]: _sel_mask
    alpha: np.ndarray  # float32, photo size: where the frame was pasted

    def composed(self):
        """uint8 [256,192,3]: the frame with the try-on inside the selection (what is pasted)."""
        return postprocess.compose(self.frame.image, self.outputs[spec.TRYON], self.selection)

    def dressed_parse(self):
        """The frame's parse with the new garment's label where its clothing mask is."""
        garment = lip.CATEGORY_GARMENT[self.category][1][0]
        worn = (self.selection > 0) & (self.outputs[spec.CLOTHING_MASK] >= 128)
        return np.where(worn, garment, self.frame.parse).astype(np.uint8)

    def images(self):
        """{suffix: uint8 image} as the Everywear document names them (DESIGN.md §7)."""
        tryon_frame = self.outputs[spec.TRYON]
        selected = self.selection[..., None] > 0
        return {
                '_final': self.final,
                '_fg': np.where(selected, tryon_frame, 0).astype(np.uint8),
                '_bg': np.where(selected, 0, self.frame.image).astype(np.uint8),
                '_mask': self.outputs[spec.CLOTHING_MASK],
                '_sel_mask': self.selection,
                '_tps': self.outputs[spec.WARPED_CLOTH],
                '_tps_mask': self.outputs[spec.TPS_MASK],
        }


def _frame_for(category, photo, parse, keypoints, path):
    if region_of(category) == UPPER:
        return preprocess.upper_frame(photo, parse, keypoints, path)
    return preprocess.body_frame(photo, parse, keypoints, path)


def try_on(backend, category, photo, parse, keypoints, garment, garment_mask=None,
           pose_path='<memory>'):
    """One garment on one full photo (any size); returns a Result."""
    frame = _frame_for(category, photo, parse, keypoints, pose_path)
    cloth, cloth_mask = preprocess.garment_frame(garment, garment_mask)
    inputs = {spec.PERSON: frame.image[None], spec.PARSE: frame.parse[None],
              spec.KEYPOINTS: keypoint_files.to_signature(frame.keypoints)[None],
              spec.CLOTH: cloth[None], spec.CLOTH_MASK: cloth_mask[None]}
    outputs = {k: v[0] for k, v in backend(category, inputs).items()}
    selection = postprocess.selection_mask(category, frame.parse, outputs[spec.CLOTHING_MASK])
    final, alpha = postprocess.paste(
            photo, postprocess.compose(frame.image, outputs[spec.TRYON], selection), selection,
            frame.transform, protect=evaluate.protected(category, parse))
    return Result(category=category, final=final, frame=frame, outputs=outputs,
                  selection=selection, alpha=alpha)


def outfit(backend, photo, parse, keypoints, top=None, bottom=None, pose_path='<memory>'):
    """Pants first on the body frame, then the top on the upper crop of that result.

    ``top`` / ``bottom``: (category, garment image, garment mask or None), either may be None.
    Returns (final photo, {'bottom': Result, 'top': Result}).
    """
    results = {}
    current = photo
    for slot, garment, region in (('bottom', bottom, LOWER), ('top', top, UPPER)):
        if garment is None:
            continue
        category, image, mask = garment
        if region_of(category) != region:
            article = 'an' if region == UPPER else 'a'
            raise errors.EverywearError(f'{category} is not {article} {region} garment')
        results[slot] = try_on(backend, category, current, parse, keypoints, image, mask,
                               pose_path)
        current = results[slot].final
    return current, results
