"""Every file and folder name of a batch run: its input directory and the Everywear workspace.

The workspace layout is the Everywear document's, names included (BUILD.md §11)::

    input/body_images/<person>.png          the person's photo
    input/body_resized/<person>.png         its 256×192 body frame, with
    input/body_pose/<person>.json           the frame's keypoints (Everywear pose JSON),
    input/body_segment/<person>.png         its LIP parse (palette PNG) and
    input/body_pickle/<person>.pkl          the frame's bundle;
    input/upper_images/<person>.png         the upper-body crop (jobs with a top), with
    input/upper_{pose,segment,pickle}/      the same three
    input/body_pose/<person>_keypoints.json the pose the front end estimated from the photo
    input/body_segment/<person>_parse.png   (OpenPose JSON) and its parse (LIP palette PNG),
                                            when the person came without them
    stage/<worn>_<garment>{.png,_mask.png,_mask.mat,_gmm.png,_gmmask.png}
    output/composed_images/<worn>_<garment>{_bg,_fg,_final,_mask,_sel_mask,_tps,_tps_mask}.png
    output/composed_images/<worn>_<garment>{_0_pkl,_1_pkl}.pkl
    output/final_upper_images/<worn>_<garment>_final.png
    output/final_lower_images/<worn>_<garment>_final.png
    output/final_images/<job>_final.png
    output/report.json
    output/journal.jsonl                    one JSON line per finished job (done or failed)

Nothing else in the package spells these names.
"""

import os

from everywear_tf import spec

# --- the batch input directory --------------------------------------------------------------
PERSONS = 'persons'  # <person>_0.{png,jpg}, <person>_0_keypoints.*, <person>_0_parse.png
GARMENTS = 'garments'  # <category>/<garment>_1.{png,jpg} (+ <garment>_1_mask.png)
PAIRS = 'pairs.txt'
PERSON_ID_SUFFIX = '_0'
GARMENT_ID_SUFFIX = '_1'
IMAGE_EXTENSIONS = ('.png', '.jpg', '.jpeg')
KEYPOINTS_SUFFIX = '_keypoints'
KEYPOINTS_EXTENSIONS = ('.json', '.mat', '.pkl')
PARSE_SUFFIX = '_parse.png'
GARMENT_MASK_SUFFIX = '_mask.png'

# --- the workspace ----------------------------------------------------------------------------
INPUT = 'input'
STAGE = 'stage'
OUTPUT = 'output'
BODY_IMAGES = 'body_images'
# The frame's image folder: the body frame is "resized", the upper crop is "images".
_FRAME_IMAGES = {spec.BODY_FRAME: 'body_resized', spec.UPPER_FRAME: 'upper_images'}
POSE = 'pose'
SEGMENT = 'segment'
PICKLE = 'pickle'

# stage/<worn>_<garment><suffix>
STAGE_COARSE = '.png'  # EDM's coarse person
STAGE_MASK = '_mask.png'  # EDM's mask
STAGE_MASK_MAT = '_mask.mat'  # the same mask as float 'mask' in [0, 1]
STAGE_WARPED = '_gmm.png'  # GMM's warped garment
STAGE_GMM_MASK = '_gmmask.png'  # GMM's warped mask ≥ 100
MAT_KEY = 'mask'

COMPOSED = 'composed_images'
# output/composed_images/<worn>_<garment><suffix>.png
FINAL = '_final'
FOREGROUND = '_fg'
BACKGROUND = '_bg'
MASK = '_mask'
SELECTION = '_sel_mask'
WARPED = '_tps'
TPS_MASK = '_tps_mask'
BEFORE_BUNDLE = '_0_pkl.pkl'  # the frame the garment was tried on
AFTER_BUNDLE = '_1_pkl.pkl'  # that frame after the try-on
_FINAL_SINGLE = {spec.BODY_FRAME: 'final_lower_images', spec.UPPER_FRAME: 'final_upper_images'}
FINAL_IMAGES = 'final_images'
REPORT = 'report.json'
JOURNAL = 'journal.jsonl'  # output/: the batch's append-only record of finished jobs
LOCK = '.everywear-batch.lock'


def worn_id(person: str, bottom: str | None = None) -> str:
    """Who a garment is tried on: the person, or for a top over new pants ``<person>_<bottom>``
    (the person already wearing them), so every file has one meaning."""
    return person if bottom is None else f'{person}_{bottom}'


class Workspace:
    """Paths of one workspace (``root``) and of one input directory (``input_dir``)."""

    def __init__(self, root: str, input_dir: str | None = None):
        self.root = root
        self.input_dir = input_dir

    def path(self, *parts: str) -> str:
        """A path under the workspace's root."""
        return os.path.join(self.root, *parts)

    def directories(self) -> list:
        """Every folder of the workspace's layout (what a run writes into)."""
        frames = (spec.BODY_FRAME, spec.UPPER_FRAME)
        return ([self.path(INPUT, BODY_IMAGES)]
                + [self.path(INPUT, _FRAME_IMAGES[frame]) for frame in frames]
                + [self.path(INPUT, f'{frame}_{kind}') for frame in frames
                   for kind in (POSE, SEGMENT, PICKLE)]
                + [self.path(STAGE), self.path(OUTPUT, COMPOSED)]
                + [self.path(OUTPUT, _FINAL_SINGLE[frame]) for frame in frames]
                + [self.path(OUTPUT, FINAL_IMAGES)])

    # --- input directory ------------------------------------------------------------------

    def persons_dir(self) -> str:
        """The input directory's person photos (with their poses and parses)."""
        return os.path.join(self.input_dir, PERSONS)

    def garments_dir(self, category: str | None = None) -> str:
        """The input directory's garments, or one category's."""
        base = os.path.join(self.input_dir, GARMENTS)
        return base if category is None else os.path.join(base, category)

    def pairs(self) -> str:
        """The input directory's default jobs file."""
        return os.path.join(self.input_dir, PAIRS)

    def keypoints_candidates(self, person: str) -> list:
        """The pose files a person may come with, in the order they are looked for."""
        return [os.path.join(self.persons_dir(), f'{person}{KEYPOINTS_SUFFIX}{extension}')
                for extension in KEYPOINTS_EXTENSIONS]

    def parse_of(self, person: str) -> str:
        """The person's LIP parse at the photo's size."""
        return os.path.join(self.persons_dir(), person + PARSE_SUFFIX)

    # --- input/ ---------------------------------------------------------------------------

    def body_image(self, person: str) -> str:
        """input/body_images/<person>.png."""
        return self.path(INPUT, BODY_IMAGES, f'{person}.png')

    def frame_image(self, frame: str, person: str) -> str:
        """input/body_resized/ or input/upper_images/<person>.png."""
        return self.path(INPUT, _FRAME_IMAGES[frame], f'{person}.png')

    def frame_pose(self, frame: str, person: str) -> str:
        """input/<frame>_pose/<person>.json."""
        return self.path(INPUT, f'{frame}_{POSE}', f'{person}.json')

    def frame_segment(self, frame: str, person: str) -> str:
        """input/<frame>_segment/<person>.png."""
        return self.path(INPUT, f'{frame}_{SEGMENT}', f'{person}.png')

    def frame_pickle(self, frame: str, person: str) -> str:
        """input/<frame>_pickle/<person>.pkl."""
        return self.path(INPUT, f'{frame}_{PICKLE}', f'{person}.pkl')

    def estimated_pose(self, person: str) -> str:
        """input/body_pose/<person>_keypoints.json: the front end's pose of the photo."""
        return self.path(INPUT, f'{spec.BODY_FRAME}_{POSE}', f'{person}{KEYPOINTS_SUFFIX}.json')

    def estimated_parse(self, person: str) -> str:
        """input/body_segment/<person>_parse.png: the front end's parse of the photo."""
        return self.path(INPUT, f'{spec.BODY_FRAME}_{SEGMENT}', person + PARSE_SUFFIX)

    # --- stage/ and output/ ---------------------------------------------------------------

    def stage(self, stem: str, suffix: str) -> str:
        """stage/<worn>_<garment><suffix>."""
        return self.path(STAGE, stem + suffix)

    def composed(self, stem: str, suffix: str) -> str:
        """output/composed_images/<worn>_<garment><suffix> (PNG suffixes get .png)."""
        name = stem + suffix if suffix.endswith('.pkl') else f'{stem}{suffix}.png'
        return self.path(OUTPUT, COMPOSED, name)

    def final_single(self, frame: str, stem: str) -> str:
        """output/final_{upper,lower}_images/<worn>_<garment>_final.png."""
        return self.path(OUTPUT, _FINAL_SINGLE[frame], f'{stem}{FINAL}.png')

    def final(self, job_name: str) -> str:
        """output/final_images/<job>_final.png: its presence marks the job done."""
        return self.path(OUTPUT, FINAL_IMAGES, f'{job_name}{FINAL}.png')

    def report(self) -> str:
        """output/report.json."""
        return self.path(OUTPUT, REPORT)

    def journal(self) -> str:
        """output/journal.jsonl: one JSON line per finished job, appended as jobs finish."""
        return self.path(OUTPUT, JOURNAL)

    def lock(self) -> str:
        """The lock file of the run using this workspace."""
        return self.path(LOCK)
