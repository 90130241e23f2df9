"""``python -m bench.frontend --quick`` writes every table and finite figures; the front end meets
the issue's bounds on drawn persons of the synthetic test split (computed here, from the library).

The quick run (with a contact sheet of the demo photo) is a subprocess started as the session
starts (tests/early.py; or by the module fixture when these tests run alone), so that it works
while the rest of the suite and the bounds are computed in this process (both are mostly
single-threaded tracing); the bounds' test comes first in the file.
"""

import json
import math
import os
import platform
import sys

import numpy as np
import pytest

from everywear_tf import spec
from everywear_tf.data import images
from everywear_tf.data import keypoints as coco
from everywear_tf.data import lip
from everywear_tf.data import synthetic_tryon
from everywear_tf.inference.frontend import estimator

from tests import early

_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

pytestmark = pytest.mark.slow

_LABELS = ('background', 'hair', 'upper_clothes', 'pants', 'face', 'left_arm', 'right_arm',
           'left_leg', 'right_leg', 'left_shoe', 'right_shoe', 'arms', 'legs', 'shoes', 'person')
_DOCUMENT = ('# Results\n\nprose\n\n<!-- figures frontend: old -->\nold\n'
             '<!-- end of figures frontend -->\nmore prose\n')


# Started as the session starts (tests/early.py): it runs while the rest of the suite does.
_QUICK = early.Command(
        ('test_the_quick_run_writes_every_table', 'test_a_contact_sheet_of_the_demo_photo'),
        [sys.executable, '-m', 'bench.frontend', '--quick', '--output={directory}/frontend.json',
         '--markdown={directory}/frontend.md', '--results_md={directory}/RESULTS.md',
         '--contact_sheet={directory}/sheets', '--bench'], cwd=_ROOT,
        prepare=lambda directory: (directory / 'RESULTS.md').write_text(_DOCUMENT))


@pytest.fixture(scope='module')
def quick():
    """(its directory, the running quick benchmark with a contact sheet of the demo photo)."""
    _QUICK.start()
    finished = {}

    def wait():
        if not finished:
            result = _QUICK.result(timeout=600)
            assert result.returncode == 0, result.stderr[-3000:]
            finished['stdout'] = result.stdout
        return finished['stdout']

    yield _QUICK.directory, wait
    _QUICK.stop()


# The bounds (tests/inference/frontend/parse_test.py's on the truth's own pose and mask;
# here on the front end's estimate from the photo alone).
_PCK = 0.9
_UPPER_CLOTHES = 0.9  # on tops: the category's garment is the drawn top
_PANTS = 0.85  # on pants: the category's garment is the drawn pants
_PERSON = 0.95
_ITEMS = 6  # the bench's first six test persons: two of each category
_TOPS = (spec.MEN_TSHIRTS, spec.MEN_LONG)


def _iou(a, b):
    return float((a & b).sum() / (a | b).sum())


def test_the_bounds_on_drawn_persons(quick):  # quick: the benchmark runs meanwhile
    front_end = estimator.FrontEnd.in_process()
    hits, seen, figures, failures = 0, 0, [], []
    for i in range(_ITEMS):
        category = spec.CATEGORIES[i % len(spec.CATEGORIES)]
        index = 2000 + i  # the test split synthetic_tryon.write_dataset writes (seed 0)
        sample = synthetic_tryon.dress(*synthetic_tryon.item(0, index, category, 512, 384),
                                       category)
        name = f'{category}/{index}'
        estimate = front_end(sample.person, name)
        truth = sample.keypoints
        torso = np.hypot(*(truth[coco.NECK, :2] - (truth[coco.R_HIP, :2]
                                                   + truth[coco.L_HIP, :2]) / 2))
        item_hits = 0
        visible = np.flatnonzero(truth[:, 2] > 0)
        for j in visible:
            got = estimate.keypoints[j]
            item_hits += got[2] > 0 and np.hypot(*(got[:2] - truth[j, :2])) <= 0.1 * torso
        hits, seen = hits + item_hits, seen + len(visible)
        item = {'item': name, 'pck': round(item_hits / len(visible), 3),
                'person': round(_iou(estimate.parse > 0, sample.parse > 0), 3)}
        if category in _TOPS:
            item['upper_clothes'] = round(_iou(estimate.parse == lip.UPPER_CLOTHES,
                                               sample.parse == lip.UPPER_CLOTHES), 3)
        else:
            item['pants'] = round(_iou(estimate.parse == lip.PANTS, sample.parse == lip.PANTS),
                                  3)
        figures.append(item)
    # The bounds are the split's figures (PCK over every visible keypoint, each IoU the mean
    # over the items that have the label), here over a handful of its items; the bench reports
    # them over the whole split with the worst items.
    pck = hits / seen
    means = {key: np.mean([item[key] for item in figures if key in item])
             for key in ('person', 'upper_clothes', 'pants')}
    for what, value, bound in (('PCK@0.1', pck, _PCK),
                               ('upper clothes IoU', means['upper_clothes'], _UPPER_CLOTHES),
                               ('pants IoU', means['pants'], _PANTS),
                               ('person IoU', means['person'], _PERSON)):
        if value < bound:
            failures.append(f'{what} {value:.3f} < {bound}')
    print(f'\nPCK@0.1 {pck:.3f} over {seen} keypoints; ' + '; '.join(
            ', '.join(f'{k} {v}' for k, v in item.items()) for item in figures))
    assert not failures, (failures, figures)


def test_the_quick_run_writes_every_table(quick):
    directory, wait = quick
    stdout = wait()
    for title in ('== Key figures', "the issue's bounds", '== Machine', '== Keypoints',
                  'By keypoint', '== Parse: IoU per label', '== Speed per photo',
                  'Once per process'):
        assert title in stdout, title
    results = json.loads((directory / 'frontend.json').read_text())
    machine = results['machine']
    assert machine['cpu'] and machine['cores'] >= 1 and machine['mediapipe']
    if platform.machine() == 'x86_64':
        assert 'sse2' in machine['isa'], machine['isa']
    for key in ('load_average', 'load_average_end'):
        assert len(machine[key]) == 3 and all(math.isfinite(v) for v in machine[key])
    assert results['settings']['quick'] and results['settings']['items'] == 5
    accuracy = results['accuracy']
    assert accuracy['synthetic']['photos'] == 5 and accuracy['demo']['photos'] == 1
    assert set(accuracy['synthetic']['by_category']) == set(spec.CATEGORIES)
    for part in ('demo', 'synthetic'):
        figures = accuracy[part]
        assert 0 <= figures['pck'] <= 1 and math.isfinite(figures['median_error_px'])
        assert 0 <= figures['mean_iou'] <= 1
        for label in _LABELS:
            assert 0 <= figures['iou'][label]['mean'] <= 1, (part, label)
    bounds = accuracy['synthetic']['bounds']
    assert set(bounds) == {'pck', 'upper_clothes', 'pants', 'person'}
    assert bounds['person']['checked'] == 5 and bounds['pants']['checked'] == 1
    speed = results['speed']
    assert speed['runs'] == 3 and speed['size'] == [720, 720]
    for group in ('paths', 'parts'):
        for name, stats in speed[group].items():
            assert math.isfinite(stats['median']) and stats['median'] > 0, name
    assert set(speed['paths']) == {'in_process', 'saved_model', 'grpc'}
    assert set(speed['parts']) == {'pose', 'face', 'parse'}
    first = speed['first_call']
    for name, seconds in [*first.items(), *first['parts'].items()]:
        if name != 'parts':
            assert math.isfinite(seconds) and seconds > 0, name
    # The three paths run one graph: the same keypoints and parse.
    for path, agreement in speed['agreement'].items():
        assert agreement == {'keypoints_max_abs_px': 0.0, 'parse_equal_fraction': 1.0}, path
    assert (directory / 'frontend.md').read_text().startswith('### Key figures')
    document = (directory / 'RESULTS.md').read_text()
    assert document.startswith('# Results\n\nprose\n\n<!-- figures frontend: generated')
    assert document.endswith('<!-- end of figures frontend -->\nmore prose\n')
    assert '#### Speed per photo' in document and '\nold\n' not in document


def test_a_contact_sheet_of_the_demo_photo(quick):
    directory, wait = quick
    assert 'photo.jpg: people 1' in wait()
    sheet = directory / 'sheets' / 'photo_frontend.png'
    image = images.read_image(str(sheet))
    assert image.shape[0] > 480 and image.shape[1] == 3 * 480 + 2 * 6
    # The parse panel shows the palette's upper-clothes colour.
    assert (image[:480, -480:] == lip.PALETTE[lip.UPPER_CLOTHES]).all(axis=-1).any()
