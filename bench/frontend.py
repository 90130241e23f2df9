r"""Benchmarks the photo front end (pose and parse from a photo alone): accuracy and speed.

    python -m bench.frontend                  # demo photo + 50 drawn test persons, 20 timed rounds
    python -m bench.frontend --quick          # 5 persons, 3 timed rounds; temporary output
    python -m bench.frontend --output=bench/results/frontend.json \
        --markdown=bench/results/frontend.md --results_md=bench/RESULTS.md
    python -m bench.frontend --input=bench/results/frontend.json --results_md=bench/RESULTS.md
    python -m bench.frontend --contact_sheet=/tmp/sheets --photos=~/photos,extra.jpg

Run from the repository root.

Accuracy: the front end (in process, ``FrontEndModule.from_mediapipe()``) on the bundled demo
photo (``demo.PHOTO`` against ``demo.PHOTO_POSE`` and ``demo.PHOTO_PARSE``) and on drawn persons
of the synthetic test split (``synthetic_tryon.item(0, 2000 + i, category, 512, 384)``: the
test split ``write_dataset`` writes, drawn at twice the frame so the detector sees a real-sized
person; categories in turn: men_tshirts, men_long, men_pants), whose keypoints and parse are
exact. Keypoints: the error in pixels of each of the truth's visible keypoints (a keypoint the
front end misses counts as an infinite error), their median, and PCK@0.1: the share within 10%
of the torso height (the truth's neck to its mid-hip). Parse: IoU of each label the front end
produces (background, hair, upper clothes, pants, face, left / right arm, leg, shoe, and the
pairs merged) per photo, averaged over the photos where the truth or the estimate has the label;
"mean" is the mean of the eleven single labels' rows; "person" is the IoU of parse > 0. A photo
where nobody is found counts with no keypoints and an all-background parse.

Speed, on the demo photo at batch 1, in turn (one call of each path, then the next round, so a
change of load hits every path alike; median and p90 of ``--runs`` rounds after 2 warm-up rounds,
1 with ``--quick``): ``in_process`` (``FrontEnd`` over the module's ``serving_default``, what
``FrontEnd.in_process()`` runs), ``saved_model`` (``FrontEnd.from_saved_model`` on the module
exported by ``exporter.export_module``) and ``grpc`` (``FrontEnd.through`` a
``serving.client.Client`` of the development server, which runs in this process, so its Python
work competes with the client's), then the parts on the same photo: the networks ``pose``
(``PoseModel``: detector, landmarks, mask) and ``face`` (``FaceModel``: detector and mesh) and
the rules ``parse`` (``ParseModel``), each fed the outputs of the parts before it. First calls
(tracing) are timed on fresh objects: the whole module's before anything else of it ran, the
parts' on a second set converted for them.

Figures are of this machine at this moment: the JSON records the CPU, its ISA flags and the load
average at the start and the end. ``--quick`` writes into a new temporary directory unless
``--output`` is given, so it never replaces the committed results.

``--contact_sheet=DIR`` writes one PNG per photo of ``--photos`` (files, or folders of
.png/.jpg/.jpeg/.bmp/.webp files; default the demo photo) into DIR: the photo | its keypoints
drawn | the colour-coded parse (LIP's palette), with the labels found and their shares below. It
runs nothing else unless ``--bench`` is given too (then the sheets come after the benchmark,
drawn by its converted module).
"""

import importlib.metadata
import json
import os
import subprocess
import sys
import tempfile
import time

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')  # keep TensorFlow's start-up chatter quiet

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from absl import app  # noqa: E402
from absl import flags  # noqa: E402
from absl import logging  # noqa: E402

from everywear_tf import demo  # noqa: E402
from everywear_tf import errors  # noqa: E402
from everywear_tf import fileio  # noqa: E402
from everywear_tf import spec  # noqa: E402
from everywear_tf.data import images  # noqa: E402
from everywear_tf.data import keypoints as coco  # noqa: E402
from everywear_tf.data import lip  # noqa: E402
from everywear_tf.data import parsing  # noqa: E402
from everywear_tf.data import synthetic_tryon  # noqa: E402
from everywear_tf.export import exporter  # noqa: E402
from everywear_tf.inference.frontend import estimator  # noqa: E402
from everywear_tf.inference.frontend import face as face_lib  # noqa: E402
from everywear_tf.inference.frontend import parse as parse_lib  # noqa: E402
from everywear_tf.inference.frontend import pose as pose_lib  # noqa: E402
from everywear_tf.serving import client as client_lib  # noqa: E402
from everywear_tf.serving import config as serving_config  # noqa: E402
from everywear_tf.serving import dev_server  # noqa: E402

from bench import report  # noqa: E402
from bench import timing  # noqa: E402

FULL_OUTPUT = 'bench/results/frontend.json'
COMMITTED_RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'RESULTS.md')
BLOCK = 'frontend'

IN_PROCESS, SAVED_MODEL, GRPC = 'in_process', 'saved_model', 'grpc'
PATHS = (IN_PROCESS, SAVED_MODEL, GRPC)
PARTS = ('pose', 'face', 'parse')

SEED = 0  # synthetic_tryon.write_dataset's default seed ...
TEST_START = 2000  # ... and its test split's first item (after 2000 training items)
SIZE = (512, 384)
PCK_ALPHA = 0.1
_KIND = {spec.MEN_TSHIRTS: 'top', spec.MEN_LONG: 'top', spec.MEN_PANTS: 'pants'}

# The labels the front end produces, one by one, then merged; 'person' is parse > 0.
SINGLE = {'background': (lip.BACKGROUND,), 'hair': (lip.HAIR,),
          'upper_clothes': (lip.UPPER_CLOTHES,), 'pants': (lip.PANTS,), 'face': (lip.FACE,),
          'left_arm': (lip.LEFT_ARM,), 'right_arm': (lip.RIGHT_ARM,), 'left_leg': (lip.LEFT_LEG,),
          'right_leg': (lip.RIGHT_LEG,), 'left_shoe': (lip.LEFT_SHOE,),
          'right_shoe': (lip.RIGHT_SHOE,)}
MERGED = {'arms': (lip.LEFT_ARM, lip.RIGHT_ARM), 'legs': (lip.LEFT_LEG, lip.RIGHT_LEG),
          'shoes': (lip.LEFT_SHOE, lip.RIGHT_SHOE)}
LABELS = {**SINGLE, **MERGED, 'person': None}
PARSE_FIGURES = (*LABELS, 'person_precision', 'person_recall')

KEYPOINT_NAMES = ('nose', 'neck', 'r_shoulder', 'r_elbow', 'r_wrist', 'l_shoulder', 'l_elbow',
                  'l_wrist', 'r_hip', 'r_knee', 'r_ankle', 'l_hip', 'l_knee', 'l_ankle', 'r_eye',
                  'l_eye', 'r_ear', 'l_ear')
# OpenPose's COCO-18 limbs, and a colour per limb (the person's right warm, left cool).
LIMBS = ((1, 2), (2, 3), (3, 4), (1, 5), (5, 6), (6, 7), (1, 8), (8, 9), (9, 10), (1, 11),
         (11, 12), (12, 13), (1, 0), (0, 14), (14, 16), (0, 15), (15, 17))
_RIGHT = {2, 3, 4, 8, 9, 10, 14, 16}
_LEFT = {5, 6, 7, 11, 12, 13, 15, 17}
PHOTO_EXTENSIONS = ('.png', '.jpg', '.jpeg', '.bmp', '.webp')
ISA_PREFIXES = ('sse', 'ssse', 'avx', 'fma', 'f16c', 'amx')

_QUICK = flags.DEFINE_bool('quick', False, 'A smoke run: 5 drawn persons, 3 timed rounds after '
                           '1 warm-up round (figures not comparable with a full run\'s); writes '
                           'into a temporary directory unless --output is given.')
_ITEMS = flags.DEFINE_integer('items', None, 'Drawn test persons (default 50, quick 5).')
_RUNS = flags.DEFINE_integer('runs', None, 'Timed rounds of every path (default 20, quick 3).')
_OUTPUT = flags.DEFINE_string('output', None, f'Where the JSON goes (default: {FULL_OUTPUT}; '
                              'with --quick, frontend.json in a new temporary directory).')
_MARKDOWN = flags.DEFINE_string('markdown', None, 'Also write the tables as Markdown here.')
_RESULTS_MD = flags.DEFINE_string(
        'results_md', None, 'Also write the tables into this Markdown file (bench/RESULTS.md), '
        f'between its markers <!-- figures {BLOCK}: ... --> and <!-- end of figures {BLOCK} -->, '
        'as bench.results does for its blocks.')
_INPUT = flags.DEFINE_string('input', None, 'Measure nothing: print (and write with --markdown '
                             '/ --results_md) the tables of this JSON.')
_WORK_DIR = flags.DEFINE_string('work_dir', None, 'Keep the exported front end here (default: '
                                'a temporary directory, removed at the end).')
_CONTACT_SHEET = flags.DEFINE_string('contact_sheet', None, 'Write one contact sheet PNG per '
                                     'photo of --photos into this directory (and run nothing '
                                     'else, unless --bench).')
_BENCH = flags.DEFINE_bool('bench', None, 'Run the benchmark (default: unless --contact_sheet is '
                           'given; with both, the sheets are drawn after it, by its module).')
_PHOTOS = flags.DEFINE_list('photos', [demo.PHOTO], 'Photos for --contact_sheet: files or '
                            'folders of photos.')


# ---------------------------------------------------------------------------------- machine


def _cpuinfo():
    """(model name with family, model and stepping; ISA flags) of the first CPU in
    /proc/cpuinfo."""
    fields, isa = {}, []
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                key, _, value = line.partition(':')
                key = key.strip()
                if not key:  # the first processor's block ends
                    break
                if key == 'flags':
                    isa = sorted(flag for flag in value.split() if flag.startswith(ISA_PREFIXES))
                fields[key] = value.strip()
    except OSError:
        return None, []
    if 'model name' not in fields:
        return None, isa
    numbers = ', '.join(f'{key} {fields[key]}' for key in ('cpu family', 'model', 'stepping')
                        if key in fields)
    return fields['model name'] + (f' ({numbers})' if numbers else ''), isa


def _git(*arguments):
    try:
        return subprocess.run(['git', *arguments], capture_output=True, text=True, timeout=10,
                              check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None


def machine():
    """The CPU (model, ISA flags from /proc/cpuinfo), the software and the load right now."""
    model, isa = _cpuinfo()
    described = timing.machine()
    try:
        mediapipe = importlib.metadata.version('mediapipe')
    except importlib.metadata.PackageNotFoundError:
        mediapipe = None
    changed = _git('status', '--porcelain', '--', 'everywear_tf/inference/frontend')
    return {**described, 'cpu': model or described['cpu'], 'isa': isa, 'mediapipe': mediapipe,
            'commit': _git('rev-parse', '--short', 'HEAD'),
            'frontend_changes_uncommitted': changed.splitlines() if changed else []}


# ---------------------------------------------------------------------------------- accuracy


def torso_height(truth):
    """Neck to mid-hip of COCO-18 keypoints [18, 3]."""
    hips = (truth[coco.R_HIP, :2] + truth[coco.L_HIP, :2]) / 2
    return float(np.hypot(*(truth[coco.NECK, :2] - hips)))


def keypoint_errors(got, truth):
    """{COCO index: error in px} over the truth's visible keypoints (None where ``got`` misses
    it: an infinite error)."""
    out = {}
    for j in np.flatnonzero(truth[:, 2] > 0):
        out[int(j)] = (float(np.hypot(*(got[j, :2] - truth[j, :2]))) if got[j, 2] > 0
                       else None)
    return out


def _error(value):
    return float('inf') if value is None else value


def label_ious(got, truth):
    """{label name: IoU} for each of LABELS present in either parse (None when in neither), and
    the person's precision and recall (parse > 0: the share of the estimate in the truth, of the
    truth in the estimate)."""
    out = {}
    for name, labels in LABELS.items():
        a = got > 0 if labels is None else np.isin(got, labels)
        b = truth > 0 if labels is None else np.isin(truth, labels)
        union = int((a | b).sum())
        out[name] = float((a & b).sum() / union) if union else None
    a, b = got > 0, truth > 0
    both = float((a & b).sum())
    out['person_precision'] = both / a.sum() if a.any() else None
    out['person_recall'] = both / b.sum() if b.any() else None
    return out


def evaluate(front_end, name, photo, truth_keypoints, truth_parse, category=None):
    """One photo's figures: keypoint errors, PCK@0.1, IoUs, what the front end reported."""
    try:
        estimate = front_end(photo, name)
        got_keypoints, got_parse = estimate.keypoints, estimate.parse
        found = {'people': estimate.people, 'face_found': estimate.face_found,
                 'skin_split': estimate.skin_split, 'error': None}
    except errors.InputError as e:  # nobody, or no shoulders: nothing estimated
        got_keypoints = np.zeros((spec.NUM_KEYPOINTS, 3), np.float32)
        got_parse = np.zeros(photo.shape[:2], np.uint8)
        found = {'people': 0, 'face_found': False, 'skin_split': False, 'error': str(e)}
    torso = torso_height(truth_keypoints)
    errors_px = keypoint_errors(got_keypoints, truth_keypoints)
    values = [_error(e) for e in errors_px.values()]
    return {'name': name, 'category': category, **found, 'torso_px': torso,
            'keypoint_errors_px': {KEYPOINT_NAMES[j]: e for j, e in errors_px.items()},
            'pck': float(np.mean([e <= PCK_ALPHA * torso for e in values])),
            'median_error_px': _finite(np.median(values)),
            'iou': label_ious(got_parse, truth_parse)}


def _finite(value):
    return None if value is None or not np.isfinite(value) else float(value)


def summarise(items):
    """Pooled keypoint figures and per-label IoU statistics of evaluated photos."""
    errors_px, hits, by_joint = [], 0, {}
    for item in items:
        for joint, error in item['keypoint_errors_px'].items():
            error = _error(error)
            errors_px.append(error)
            hit = error <= PCK_ALPHA * item['torso_px']
            hits += hit
            by_joint.setdefault(joint, []).append((error, hit))
    iou = {}
    for name in PARSE_FIGURES:
        values = [(item['iou'][name], item['name']) for item in items
                  if item['iou'][name] is not None]
        if not values:
            continue
        worst = min(values)
        iou[name] = {'mean': float(np.mean([v for v, _ in values])), 'min': worst[0],
                     'min_item': worst[1], 'photos': len(values)}
    single = [iou[name]['mean'] for name in SINGLE if name in iou]
    return {'photos': len(items), 'detected': sum(item['people'] > 0 for item in items),
            'keypoints': len(errors_px), 'pck': hits / max(len(errors_px), 1),
            'median_error_px': _finite(np.median(errors_px)) if errors_px else None,
            'missed_keypoints': int(np.isinf(errors_px).sum()),
            'by_joint': {joint: {'pck': float(np.mean([h for _, h in pairs])),
                                 'median_error_px': _finite(np.median([e for e, _ in pairs]))}
                         for joint, pairs in by_joint.items()},
            'iou': iou, 'mean_iou': float(np.mean(single)) if single else None}


# The bounds on drawn persons: PCK@0.1 over every visible keypoint; per photo, the
# category's garment (the drawn top for tops, the pants for pants) and the whole person.
BOUNDS = {'pck': 0.9, 'upper_clothes': 0.9, 'pants': 0.85, 'person': 0.95}


def bounds(items):
    """Whether the drawn persons meet BOUNDS: the pooled PCK, and the photos below each IoU."""
    out = {'pck': {'bound': BOUNDS['pck'], 'value': summarise(items)['pck']}}
    out['pck']['holds'] = out['pck']['value'] >= BOUNDS['pck']
    for label, kind in (('upper_clothes', 'top'), ('pants', 'pants'), ('person', None)):
        checked = [item for item in items if kind is None or _KIND[item['category']] == kind]
        below = [(item['name'], item['iou'][label]) for item in checked
                 if (item['iou'][label] or 0.0) < BOUNDS[label]]
        out[label] = {'bound': BOUNDS[label], 'photos': kind or 'all', 'checked': len(checked),
                      'below': dict(below), 'holds': not below}
    return out


def synthetic_person(i, height=SIZE[0], width=SIZE[1], seed=SEED, start=TEST_START):
    """(name, category, Sample) of the ``i``-th drawn test person (categories in turn)."""
    category = spec.CATEGORIES[i % len(spec.CATEGORIES)]
    index = start + i
    sample = synthetic_tryon.dress(*synthetic_tryon.item(seed, index, category, height, width),
                                   category)
    return f'{category}/{index}', category, sample


def demo_truth():
    """The demo photo, its keypoints and its parse."""
    photo = images.read_image(demo.PHOTO)
    return (photo, coco.read_keypoints(demo.PHOTO_POSE),
            parsing.read_parse(demo.PHOTO_PARSE, image_size=photo.shape[:2]))


def accuracy(front_end, count, log):
    """The figures of the demo photo and of ``count`` drawn test persons."""
    photo, keypoints, parse = demo_truth()
    demo_item = evaluate(front_end, 'demo', photo, keypoints, parse)
    items = []
    for i in range(count):
        name, category, sample = synthetic_person(i)
        items.append(evaluate(front_end, name, sample.person, sample.keypoints, sample.parse,
                              category))
        if (i + 1) % 10 == 0:
            log(f'accuracy: {i + 1}/{count} drawn persons')
    by_category = {category: summarise([item for item in items
                                        if item['category'] == category])
                   for category in spec.CATEGORIES}
    return {'demo': {**summarise([demo_item]), 'item': demo_item,
                     'size': list(photo.shape[:2])},
            'synthetic': {**summarise(items), 'seed': SEED, 'first_item': TEST_START,
                          'size': list(SIZE), 'by_category': by_category,
                          'bounds': bounds(items), 'items': items}}


# ------------------------------------------------------------------------------------- speed


def _numpy(outputs):
    return {key: value.numpy() for key, value in outputs.items()}


def _timed(function):
    start = time.perf_counter()
    result = function()
    return result, time.perf_counter() - start


class Parts:
    """The front end's three parts called one by one on a photo, each fed the outputs before."""

    def __init__(self, pose, face, parse):
        self.pose, self.face, self.parse = pose, face, parse

    def inputs(self, photo):
        """The photo and the parts' outputs as constants, to time each part alone."""
        image = tf.constant(photo)
        pose = _numpy(self.pose(image))
        face = _numpy(self.face(image, tf.constant(pose['landmarks'])))
        return {'image': image, 'landmarks': tf.constant(pose['landmarks']),
                'mask': tf.constant(pose['mask']),
                'face_landmarks': tf.constant(face['face_landmarks']),
                'face_found': tf.constant(face['found'])}

    def functions(self, inputs):
        """{part: a call returning numpy}."""
        return {
                'pose': lambda: _numpy(self.pose(inputs['image'])),
                'face': lambda: _numpy(self.face(inputs['image'], inputs['landmarks'])),
                'parse': lambda: _numpy(self.parse(inputs['image'], inputs['landmarks'],
                                                   inputs['mask'], inputs['face_landmarks'],
                                                   inputs['face_found']))}


def _first_calls_of_parts(photo):
    """Fresh parts: the conversion time and each part's first call (tracing) on ``photo``."""
    (pose, face), convert = _timed(lambda: (pose_lib.PoseModel.from_mediapipe(),
                                            face_lib.FaceModel.from_mediapipe()))
    parts = Parts(pose, face, parse_lib.ParseModel())
    image = tf.constant(photo)
    pose_out, pose_first = _timed(lambda: _numpy(parts.pose(image)))
    landmarks = tf.constant(pose_out['landmarks'])
    face_out, face_first = _timed(lambda: _numpy(parts.face(image, landmarks)))
    _, parse_first = _timed(lambda: _numpy(parts.parse(
            image, landmarks, tf.constant(pose_out['mask']),
            tf.constant(face_out['face_landmarks']), tf.constant(face_out['found']))))
    return parts, {'convert_seconds': convert, 'pose': pose_first, 'face': face_first,
                   'parse': parse_first}


def _agreement(reference, other):
    """How far another path's Estimate is from the in-process one."""
    return {'keypoints_max_abs_px': float(np.abs(other.keypoints - reference.keypoints).max()),
            'parse_equal_fraction': float((other.parse == reference.parse).mean())}


def speed(module, front_end, first_call, runs, warmup, work_dir, log):
    """Per-photo times of every path and part on the demo photo; first calls; agreement."""
    photo = images.read_image(demo.PHOTO)
    setup = {'in_process_convert_seconds': first_call['convert_seconds'],
             'in_process_first_call_seconds': first_call['first_call_seconds']}
    log('speed: first calls of the parts (a second conversion)')
    parts, parts_first = _first_calls_of_parts(photo)
    log('speed: exporting the front end')
    version_dir, setup['export_seconds'] = _timed(
            lambda: exporter.export_module(module, work_dir, spec.FRONTEND_MODEL))
    loaded, setup['saved_model_load_seconds'] = _timed(
            lambda: estimator.FrontEnd.from_saved_model(version_dir))
    _, setup['saved_model_first_call_seconds'] = _timed(lambda: loaded(photo))
    log('speed: starting the development server')
    config = serving_config.serving_config(work_dir, [spec.FRONTEND_MODEL])
    server, setup['server_start_seconds'] = _timed(
            lambda: dev_server.DevServer(config, file_system_poll_seconds=0).start())
    client = client_lib.Client(f'127.0.0.1:{server.grpc_port}')
    try:
        served = estimator.FrontEnd.through(client)
        _, setup['grpc_first_call_seconds'] = _timed(lambda: served(photo))
        reference = front_end(photo)
        agreement = {SAVED_MODEL: _agreement(reference, loaded(photo)),
                     GRPC: _agreement(reference, served(photo))}
        functions = {IN_PROCESS: lambda: front_end(photo), SAVED_MODEL: lambda: loaded(photo),
                     GRPC: lambda: served(photo), **parts.functions(parts.inputs(photo))}
        log(f'speed: {runs} rounds of {", ".join(functions)} in turn')
        stats = timing.interleaved(functions, runs, warmup=warmup)
    finally:
        client.close()
        server.stop()
    parts_total = sum(stats[part]['median'] for part in PARTS)
    return {'photo': 'demo', 'size': list(photo.shape[:2]), 'runs': runs, 'warmup': warmup,
            'paths': {path: stats[path] for path in PATHS},
            'parts': {part: stats[part] for part in PARTS},
            'parts_sum_median': parts_total, 'networks_median': stats['pose']['median']
            + stats['face']['median'], 'rules_median': stats['parse']['median'],
            'first_call': {**setup, 'parts': parts_first}, 'agreement': agreement}


# -------------------------------------------------------------------------------------- run


def run(items, runs, warmup, work_dir, log):
    """The whole benchmark; its results as a dict."""
    start = time.perf_counter()
    results = {'machine': machine(), 'settings': {'items': items, 'runs': runs, 'warmup': warmup,
                                                  'pck_alpha': PCK_ALPHA}}
    log(f"machine: {results['machine']['cpu']}, load {results['machine']['load_average']}")
    tf.reduce_sum(tf.function(lambda x: x * 2)(tf.ones([8]))).numpy()  # TensorFlow's own start
    photo = images.read_image(demo.PHOTO)
    module, convert = _timed(estimator.FrontEndModule.from_mediapipe)
    _, first = _timed(lambda: _numpy(module.serving_default(tf.constant(photo[None]))))
    front_end = estimator.FrontEnd(lambda inputs: _numpy(module.serving_default(
            tf.constant(inputs[spec.IMAGE]))))  # what FrontEnd.in_process() runs
    log(f'converted in {convert:.1f} s, first call {first:.1f} s; accuracy')
    results['accuracy'] = accuracy(front_end, items, log)
    results['speed'] = speed(module, front_end, {'convert_seconds': convert,
                                                 'first_call_seconds': first}, runs, warmup,
                             work_dir, log)
    results['machine']['load_average_end'] = list(os.getloadavg())
    results['seconds'] = time.perf_counter() - start
    return results, module


# ------------------------------------------------------------------------------------ tables


def _ms(seconds):
    return f'{seconds * 1e3:.1f}'


def _iou(value):
    return '-' if value is None else f'{value:.3f}'


def _px(value):
    return 'missed' if value is None or not np.isfinite(value) else f'{value:.1f}'


def machine_table(results, markdown=False):
    m = results['machine']
    rows = [('date', m['date']), ('cpu', f"{m['cpu']} ({m['cores']} cores)"),
            ('ISA flags (/proc/cpuinfo)', ' '.join(m['isa'])),
            ('load average (1, 5, 15 min) at start', ', '.join(f'{v:.2f}'
                                                               for v in m['load_average'])),
            ('load average at end', ', '.join(f'{v:.2f}' for v in m.get('load_average_end', []))),
            ('tensorflow / mediapipe / python', f"{m['tensorflow']} / {m['mediapipe']} / "
                                                f"{m['python']}"),
            ('commit', m['commit'] + (' (front end changed since: ' + '; '.join(
                    m['frontend_changes_uncommitted']) + ')' if m['frontend_changes_uncommitted']
                                      else '')),
            ('benchmark wall time', f"{results['seconds']:.0f} s")]
    return report._table(('', ''), rows, markdown)


def keypoints_table(results, markdown=False):
    a = results['accuracy']
    demo_, synthetic = a['demo'], a['synthetic']
    rows = [('demo photo', f"{demo_['size'][0]}×{demo_['size'][1]}", demo_['detected'],
             demo_['keypoints'], f"{demo_['pck']:.3f}", _px(demo_['median_error_px']),
             demo_['missed_keypoints']),
            (f"drawn test persons ({synthetic['photos']})",
             f"{synthetic['size'][0]}×{synthetic['size'][1]}", synthetic['detected'],
             synthetic['keypoints'], f"{synthetic['pck']:.3f}",
             _px(synthetic['median_error_px']), synthetic['missed_keypoints'])]
    for category, figures in synthetic['by_category'].items():
        if figures['photos']:
            rows.append((f"  {category} ({figures['photos']})", '', figures['detected'],
                         figures['keypoints'], f"{figures['pck']:.3f}",
                         _px(figures['median_error_px']), figures['missed_keypoints']))
    text = report._table(('photos', 'size', 'detected', 'keypoints', 'PCK@0.1',
                          'median error px', 'missed'), rows, markdown)
    joints = [(name, _px(demo_['item']['keypoint_errors_px'].get(name)),
               f"{synthetic['by_joint'][name]['pck']:.2f}",
               _px(synthetic['by_joint'][name]['median_error_px']))
              for name in KEYPOINT_NAMES if name in synthetic['by_joint']]
    return text + '\n\nBy keypoint\n\n' + report._table(
            ('keypoint', 'demo error px', 'drawn PCK@0.1', 'drawn median px'), joints, markdown)


def parse_table(results, markdown=False):
    a = results['accuracy']
    demo_iou, synthetic = a['demo']['iou'], a['synthetic']
    by_category = synthetic['by_category']
    rows = []
    for name in PARSE_FIGURES:
        s = synthetic['iou'].get(name)
        row = [name, _iou(demo_iou.get(name, {}).get('mean')),
               _iou(s and s['mean']), f"{_iou(s['min'])} ({s['min_item']})" if s else '-']
        row += [_iou(by_category[c]['iou'].get(name, {}).get('mean')) for c in spec.CATEGORIES]
        rows.append(row)
        if name == 'right_shoe':
            rows.append(['mean (11 labels)', _iou(a['demo']['mean_iou']),
                         _iou(synthetic['mean_iou']), '', *[_iou(by_category[c]['mean_iou'])
                                                            for c in spec.CATEGORIES]])
    return report._table(['label', 'demo IoU', 'drawn mean', 'drawn min (item)',
                          *[f'{c} mean' for c in spec.CATEGORIES]], rows, markdown)


def speed_table(results, markdown=False):
    s = results['speed']
    rows = [(path, _ms(s['paths'][path]['median']), _ms(s['paths'][path]['p90']))
            for path in PATHS]
    rows += [(f'part: {part}' + (' (network)' if part != 'parse' else ' (rules)'),
              _ms(s['parts'][part]['median']), _ms(s['parts'][part]['p90'])) for part in PARTS]
    rows.append(('parts, sum of medians', _ms(s['parts_sum_median']), ''))
    text = (f"Demo photo {s['size'][0]}×{s['size'][1]}, batch 1, {s['runs']} rounds in turn "
            f"after {s.get('warmup', 2)} warm-up rounds\n\n"
            + report._table(('path / part', 'median ms', 'p90 ms'), rows, markdown))
    f = s['first_call']
    once = [('convert from mediapipe (pose + face)', f"{f['in_process_convert_seconds']:.2f}"),
            ('in process: first call (tracing)', f"{f['in_process_first_call_seconds']:.2f}"),
            ('pose: first call', f"{f['parts']['pose']:.2f}"),
            ('face: first call', f"{f['parts']['face']:.2f}"),
            ('parse: first call', f"{f['parts']['parse']:.2f}"),
            ('export (export_module, after the first call)', f"{f['export_seconds']:.2f}"),
            ('SavedModel: load', f"{f['saved_model_load_seconds']:.2f}"),
            ('SavedModel: first call', f"{f['saved_model_first_call_seconds']:.2f}"),
            ('dev server: start (load + warmup)', f"{f['server_start_seconds']:.2f}"),
            ('gRPC: first call', f"{f['grpc_first_call_seconds']:.2f}")]
    text += '\n\nOnce per process (s)\n\n' + report._table(('step', 's'), once, markdown)
    agree = ', '.join(f"{path}: keypoints within {v['keypoints_max_abs_px']:g} px, parse "
                      f"{v['parse_equal_fraction']:.4%} equal" for path, v in
                      s['agreement'].items())
    return text + f'\n\nAgainst in process: {agree}'


def _bound_line(label, v):
    where = f"{label.replace('_', ' ')} IoU ≥ {v['bound']} on {v['photos']} photos"
    if v['holds']:
        return f"{where}: holds on all {v['checked']}"
    lowest = sorted(v['below'].items(), key=lambda pair: pair[1])[:3]
    return (f"{where}: {len(v['below'])} of {v['checked']} below (lowest "
            + ', '.join(f'{name} {iou:.3f}' for name, iou in lowest) + ')')


def _accuracy_line(title, figures):
    iou = figures['iou']
    return (f"{title}: PCK@0.1 {figures['pck']:.3f}, median keypoint error "
            f"{_px(figures['median_error_px'])} px; IoU person {_iou(iou['person']['mean'])}, "
            f"upper clothes {_iou(iou['upper_clothes']['mean'])}, pants "
            f"{_iou(iou['pants']['mean'])}, mean of 11 labels {_iou(figures['mean_iou'])}")


def key_figures(results, markdown=False):
    a, s = results['accuracy'], results['speed']
    synthetic = a['synthetic']
    lines = [_accuracy_line(f"drawn test persons ({synthetic['photos']}, {synthetic['size'][0]}×"
                            f"{synthetic['size'][1]})", synthetic),
             _accuracy_line('demo photo', a['demo'])]
    b = synthetic.get('bounds')
    if b:
        pck = b['pck']
        lines.append(f"the issue's bounds on the drawn persons: PCK@0.1 ≥ {pck['bound']} "
                     f"{'holds' if pck['holds'] else 'fails'} ({pck['value']:.3f}); "
                     + '; '.join(_bound_line(label, v) for label, v in b.items()
                                 if label != 'pck'))
    paths = ', '.join(f"{path} {_ms(s['paths'][path]['median'])}" for path in PATHS)
    lines.append(f"speed per {s['size'][0]}×{s['size'][1]} photo (median ms): {paths}; of it the "
                 f"networks (pose + face) {_ms(s['networks_median'])}, the parse rules "
                 f"{_ms(s['rules_median'])}; first call (tracing) "
                 f"{s['first_call']['in_process_first_call_seconds']:.1f} s")
    bullet = '- ' if markdown else '  '
    return '\n'.join(bullet + line for line in lines)


SECTIONS = (('Key figures', key_figures), ('Machine', machine_table),
            ('Keypoints', keypoints_table),
            ('Parse: IoU per label', parse_table), ('Speed per photo', speed_table))


def text(results, markdown=False):
    """Every table, titled."""
    heading = '### ' if markdown else '== '
    return '\n\n'.join(f'{heading}{title}\n\n{section(results, markdown)}'
                       for title, section in SECTIONS) + '\n'


def write_block(document_path, results, source):
    """Replaces the ``frontend`` block of ``document_path`` (bench.results' markers)."""
    report.write_block(document_path, BLOCK, 'bench.frontend', results, source,
                       text(results, markdown=True).replace('### ', '#### '))


# ---------------------------------------------------------------------------- contact sheets


def photo_files(entries):
    """The photos of ``entries`` (files, or folders: their photo files, sorted)."""
    out = []
    for entry in entries:
        entry = os.path.expanduser(entry)
        if os.path.isdir(entry):
            out += sorted(os.path.join(entry, name) for name in os.listdir(entry)
                          if name.lower().endswith(PHOTO_EXTENSIONS))
        else:
            out.append(entry)
    return out


def _limb_colour(a, b):
    if a in _RIGHT or b in _RIGHT:
        return (255, 80, 40)
    if a in _LEFT or b in _LEFT:
        return (40, 120, 255)
    return (40, 220, 40)


def draw_keypoints(photo, keypoints, scale):
    """The photo (resized by ``scale``) with COCO-18 limbs and points drawn."""
    height, width = photo.shape[:2]
    canvas = cv2.resize(photo, (round(width * scale), round(height * scale)),
                        interpolation=cv2.INTER_AREA)
    points = [(round((x + 0.5) * scale - 0.5), round((y + 0.5) * scale - 0.5)) if c > 0 else None
              for x, y, c in keypoints]
    for a, b in LIMBS:
        if points[a] and points[b]:
            cv2.line(canvas, points[a], points[b], _limb_colour(a, b), 2, cv2.LINE_AA)
    for j, point in enumerate(points):
        if point:
            cv2.circle(canvas, point, 4, _limb_colour(j, j), -1, cv2.LINE_AA)
            cv2.circle(canvas, point, 4, (255, 255, 255), 1, cv2.LINE_AA)
    return canvas


def colour_parse(parse):
    """uint8 [H, W, 3] of a LIP label map in LIP's palette."""
    return np.asarray(lip.PALETTE, np.uint8)[parse]


def contact_sheet(photo, outputs, height=480):
    """photo | keypoints | parse side by side at ``height`` rows, a legend strip below."""
    scale = height / photo.shape[0]
    size = (round(photo.shape[1] * scale), height)
    parse = outputs[spec.PARSE][0]
    panels = [cv2.resize(photo, size, interpolation=cv2.INTER_AREA),
              draw_keypoints(photo, outputs[spec.POSE][0], scale),
              cv2.resize(colour_parse(parse), size, interpolation=cv2.INTER_NEAREST)]
    gap = np.full((height, 6, 3), 255, np.uint8)
    row = np.concatenate([panels[0], gap, panels[1], gap, panels[2]], axis=1)
    people = int(np.asarray(outputs[spec.PEOPLE]).reshape(-1)[0])
    face_found = bool(np.asarray(outputs[spec.FACE_FOUND]).reshape(-1)[0])
    skin_split = bool(np.asarray(outputs[spec.SKIN_SPLIT]).reshape(-1)[0])
    lines = [f'people {people}, face found {face_found}, skin split {skin_split}, '
             f'{int((outputs[spec.POSE][0][:, 2] > 0).sum())}/18 keypoints']
    labels, counts = np.unique(parse, return_counts=True)
    entries = [(int(label), f'{lip.NAMES[label]} {count / parse.size:.1%}')
               for label, count in zip(labels, counts, strict=True)]
    legend_rows = 1 + (len(entries) + 3) // 4
    strip = np.full((22 * legend_rows + 8, row.shape[1], 3), 255, np.uint8)
    cv2.putText(strip, lines[0], (6, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1,
                cv2.LINE_AA)
    column = max(row.shape[1] // 4, 1)
    for k, (label, caption) in enumerate(entries):
        x, y = 6 + (k % 4) * column, 22 * (1 + k // 4) + 4
        cv2.rectangle(strip, (x, y), (x + 14, y + 14), lip.PALETTE[label], -1)
        cv2.rectangle(strip, (x, y), (x + 14, y + 14), (0, 0, 0), 1)
        cv2.putText(strip, caption, (x + 20, y + 12), cv2.FONT_HERSHEY_SIMPLEX, 0.45,
                    (0, 0, 0), 1, cv2.LINE_AA)
    return np.concatenate([row, strip], axis=0), lines[0], entries


def write_contact_sheets(directory, entries, module=None):
    """One sheet per photo into ``directory`` by ``module`` (default: converted here); returns
    the written paths."""
    files = photo_files(entries)
    if not files:
        raise app.UsageError(f'no photos in {entries}')
    module = module or estimator.FrontEndModule.from_mediapipe()
    os.makedirs(directory, exist_ok=True)
    written = []
    for path in files:
        photo = images.read_image(path)
        outputs = _numpy(module.serving_default(tf.constant(photo[None])))
        sheet, summary, entries_ = contact_sheet(photo, outputs)
        stem = os.path.splitext(os.path.basename(path))[0]
        target = os.path.join(directory, f'{stem}_frontend.png')
        images.write_png(target, sheet)
        print(f'{path}: {summary}; ' + ', '.join(caption for _, caption in entries_))
        written.append(target)
    print(f'wrote {len(written)} contact sheets into {directory}')
    return written


# -------------------------------------------------------------------------------------- main


def _output_path():
    if _OUTPUT.value:
        return _OUTPUT.value
    if _QUICK.value:
        return os.path.join(tempfile.mkdtemp(prefix='everywear-bench-frontend-'),
                            'frontend.json')
    return FULL_OUTPUT


def _rounded(value, digits=5):
    """``value`` with every float rounded (seconds to 10 µs, pixels and IoUs to 1e-5)."""
    if isinstance(value, float):
        return round(value, digits)
    if isinstance(value, dict):
        return {key: _rounded(item, digits) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_rounded(item, digits) for item in value]
    return value


def _write_tables(results, source):
    if _MARKDOWN.value:
        fileio.atomic_write_bytes(_MARKDOWN.value, text(results, markdown=True).encode())
    if _RESULTS_MD.value:
        write_block(_RESULTS_MD.value, results, source)
        print(f'wrote the figures of {source} into block {BLOCK!r} of {_RESULTS_MD.value}')


def main(argv):
    """Runs what the flags ask; returns the exit status."""
    if len(argv) > 1:
        raise app.UsageError(f'unexpected arguments: {argv[1:]}')
    logging.set_verbosity(logging.WARNING)  # SavedModel writing logs every asset at INFO
    bench = _BENCH.value if _BENCH.value is not None else not _CONTACT_SHEET.value
    if _CONTACT_SHEET.value and not bench:
        write_contact_sheets(_CONTACT_SHEET.value, _PHOTOS.value)
        return 0
    if _INPUT.value:
        with open(_INPUT.value) as f:
            results = json.load(f)
        print(text(results))
        _write_tables(results, _INPUT.value)
        return 0
    if _QUICK.value and _RESULTS_MD.value and os.path.realpath(
            _RESULTS_MD.value) == os.path.realpath(COMMITTED_RESULTS):
        raise app.UsageError('--quick figures do not go into the committed bench/RESULTS.md')
    items = _ITEMS.value or (5 if _QUICK.value else 50)
    runs = _RUNS.value or (3 if _QUICK.value else 20)
    warmup = 1 if _QUICK.value else 2

    def log(message):
        print(f'bench.frontend: {message}', file=sys.stderr, flush=True)

    if _WORK_DIR.value:
        results, module = run(items, runs, warmup, _WORK_DIR.value, log)
    else:
        with tempfile.TemporaryDirectory(prefix='everywear-frontend-export-') as work_dir:
            results, module = run(items, runs, warmup, work_dir, log)
    results['settings']['quick'] = _QUICK.value
    results['command'] = ' '.join(['python -m bench.frontend'] + sys.argv[1:])
    results = _rounded(results)  # what the JSON keeps is what the tables show
    output = _output_path()
    os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
    fileio.atomic_write_bytes(output, (json.dumps(results, indent=1) + '\n').encode())
    print(text(results))
    _write_tables(results, output)
    print(f'wrote {output}')
    if _CONTACT_SHEET.value:
        write_contact_sheets(_CONTACT_SHEET.value, _PHOTOS.value, module)
    return 0


if __name__ == '__main__':
    app.run(lambda argv: sys.exit(main(argv)))
