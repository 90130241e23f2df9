"""Batch try-on over a directory of persons and garments, into the Everywear workspace layout.

Input directory::

    persons/<person>_0.{png,jpg}         photos, any size
    persons/<person>_0_keypoints.{json,mat,pkl}  pose (OpenPose / Everywear JSON, VITON .mat/.pkl)
    persons/<person>_0_parse.png         LIP label map at the photo's size
    garments/<category>/<garment>_1.{png,jpg}   product photos (+ optional <garment>_1_mask.png)
    pairs.txt                            "<person> <top or -> <bottom or ->" per line (ids)

Workspace written (DESIGN.md §7): ``input/`` (frames, poses, parses and bundles of each person),
``stage/<person>_<garment>{.png,_mask.png,_gmm.png,_gmmask.png}`` (coarse person, EDM mask, warped
garment, GMM mask ≥ 100), ``output/composed_images/<person>_<garment>{_bg,_fg,_final,_mask,_sel_mask,_tps,_tps_mask}.png``,
``output/final_upper_images/``, ``output/final_lower_images/``,
``output/final_images/<person>_<top>_<bottom>_final.png``, and ``output/report.json``.

Every file is written atomically and an item whose final image exists is skipped, so a killed
run restarted finishes the rest without redoing anything. A failing item is recorded in the
report with its error; the batch goes on.
"""

import dataclasses
import json
import os
import sys
import time

import numpy as np

from everywear_tf import composition
from everywear_tf import errors
from everywear_tf import fileio
from everywear_tf import pipeline
from everywear_tf import spec
from everywear_tf.data import bundle
from everywear_tf.data import images
from everywear_tf.data import keypoints as keypoint_files
from everywear_tf.data import parsing

NONE = '-'
IMAGE_EXTENSIONS = ('.png', '.jpg', '.jpeg')


@dataclasses.dataclass(frozen=True)
class Job:
    person: str
    top: str  # garment id or NONE
    bottom: str

    @property
    def name(self):
        return f'{self.person}_{self.top}_{self.bottom}'


def read_jobs(path):
    path = errors.require_file(path)
    jobs = []
    with open(path, encoding='utf-8') as f:
        for number, line in enumerate(f, start=1):
            fields = line.split()
            if not fields or fields[0].startswith('#'):
                continue
            if len(fields) != 3 or (fields[1] == NONE and fields[2] == NONE):
                raise errors.DatasetError(path, f'line {number}: expected "<person> <top or -> '
                                                f'<bottom or ->", got {line.strip()!r}')
            jobs.append(Job(*fields))
    return jobs


def _find(directory, stem):
    for extension in IMAGE_EXTENSIONS:
        path = os.path.join(directory, stem + extension)
        if os.path.isfile(path):
            return path
    raise errors.InputNotFoundError(os.path.join(directory, stem + '.png'),
                                    'no such image (.png or .jpg)')


class Batch:
    """One input directory processed into one workspace with one backend."""

    def __init__(self, input_dir, workspace, backend, log=None):
        self.input_dir, self.workspace, self.backend = input_dir, workspace, backend
        self.log = log or (lambda message: print(message, file=sys.stderr, flush=True))

    def _out(self, *parts):
        return os.path.join(self.workspace, *parts)

    def _garment(self, garment_id):
        for category in spec.CATEGORIES:
            directory = os.path.join(self.input_dir, 'garments', category)
            for extension in IMAGE_EXTENSIONS:
                path = os.path.join(directory, garment_id + extension)
                if os.path.isfile(path):
                    mask_path = os.path.join(directory, garment_id + '_mask.png')
                    mask = images.read_mask(mask_path) if os.path.isfile(mask_path) else None
                    return category, images.read_image(path), mask
        raise errors.InputNotFoundError(os.path.join(self.input_dir, 'garments', '<category>',
                                                     garment_id + '.png'),
                                        f'no garment {garment_id!r} in any category directory '
                                        f'{spec.CATEGORIES}')

    def _person(self, person_id):
        directory = os.path.join(self.input_dir, 'persons')
        photo = images.read_image(_find(directory, person_id))
        candidates = [os.path.join(directory, f'{person_id}_keypoints{extension}')
                      for extension in ('.json', '.mat', '.pkl')]
        pose_path = next((p for p in candidates if os.path.isfile(p)), candidates[0])
        keypoints = keypoint_files.read_keypoints(pose_path)
        parse = parsing.read_parse(os.path.join(directory, person_id + '_parse.png'),
                                   image_size=photo.shape[:2])
        return photo, parse, keypoints, pose_path

    def _write_inputs(self, person_id, photo, result, region):
        """input/<region>_{images,pose,segment,pickle} of the frame a garment was tried in."""
        frame = result.frame
        prefix = 'upper' if region == pipeline.UPPER else 'body'
        name = f'{person_id}.png'
        images.write_png(self._out('input', f'{prefix}_images' if prefix == 'upper'
                                   else 'body_resized', name), frame.image)
        if prefix == 'body':
            images.write_png(self._out('input', 'body_images', name), photo)
        keypoint_files.write_everywear_pose(
                self._out('input', f'{prefix}_pose', f'{person_id}.json'), frame.keypoints,
                frame.image.shape[:2])
        parsing.write_parse_png(self._out('input', f'{prefix}_segment', name), frame.parse)
        bundle.write_bundle(self._out('input', f'{prefix}_pickle', f'{person_id}.pkl'), {
                'image': frame.image, 'parse': frame.parse, 'keypoints': frame.keypoints,
                'transform': frame.transform,
                'source_size': np.asarray(frame.source_size, np.int64),
                'frame': bundle.UPPER if prefix == 'upper' else bundle.BODY})

    def _write_result(self, person_id, garment_id, result, region):
        stem = f'{person_id}_{garment_id}'
        stage = {'.png': result.outputs[spec.COARSE], '_mask.png': result.outputs[spec.EDM_MASK],
                 '_gmm.png': result.outputs[spec.WARPED_CLOTH],
                 '_gmmask.png': composition.gmm_mask(result.outputs[spec.WARPED_MASK])}
        for suffix, image in stage.items():
            images.write_png(self._out('stage', stem + suffix), image)
        for suffix, image in result.images().items():
            images.write_png(self._out('output', 'composed_images', stem + suffix + '.png'),
                             image)
        single = 'final_upper_images' if region == pipeline.UPPER else 'final_lower_images'
        images.write_png(self._out('output', single, stem + '_final.png'), result.final)

    def run_job(self, job):
        photo, parse, keypoints, pose_path = self._person(job.person)
        top = self._garment(job.top) if job.top != NONE else None
        bottom = self._garment(job.bottom) if job.bottom != NONE else None
        final, results = pipeline.outfit(self.backend, photo, parse, keypoints, top, bottom,
                                         pose_path)
        for key, garment_id in (('bottom', job.bottom), ('top', job.top)):
            if key in results:
                region = pipeline.LOWER if key == 'bottom' else pipeline.UPPER
                self._write_inputs(job.person, photo, results[key], region)
                self._write_result(job.person, garment_id, results[key], region)
        # The outfit's final image is written last: its presence marks the job done.
        images.write_png(self.final_path(job), final)

    def final_path(self, job):
        return self._out('output', 'final_images', f'{job.name}_final.png')

    def run(self, jobs):
        """Runs every job not done yet; returns the report (also written as report.json)."""
        report_path = self._out('output', 'report.json')
        report = {'done': [], 'failed': {}}
        if os.path.isfile(report_path):
            with open(report_path) as f:
                previous = json.load(f)
            report['failed'] = {k: v for k, v in previous.get('failed', {}).items()}
        started = time.monotonic()
        todo = [job for job in jobs if not os.path.isfile(self.final_path(job))]
        skipped = len(jobs) - len(todo)
        if skipped:
            self.log(f'{skipped} of {len(jobs)} jobs already done; {len(todo)} to go')
        for index, job in enumerate(todo, start=1):
            try:
                self.run_job(job)
                report['failed'].pop(job.name, None)
                report['done'].append(job.name)
            except (errors.EverywearError, ValueError, OSError) as e:
                report['failed'][job.name] = f'{type(e).__name__}: {e}'
            elapsed = time.monotonic() - started
            rate = index / elapsed if elapsed > 0 else 0.0
            eta = (len(todo) - index) / rate if rate else 0.0
            self.log(f'[{index}/{len(todo)}] {job.name} '
                     f'{"FAILED" if job.name in report["failed"] else "ok"} | '
                     f'{rate:.2f} jobs/s, ETA {eta:.0f} s, {len(report["failed"])} failed')
            fileio.atomic_write_bytes(report_path, json.dumps(report, indent=1).encode())
        report['total'] = len(jobs)
        fileio.atomic_write_bytes(report_path, json.dumps(report, indent=1).encode())
        return report
