"""Both dataset layouts on the committed fixtures, as items and as tf.data, and their errors."""

import hashlib
import os
import shutil

import numpy as np
import pytest
import scipy.io
from PIL import Image

from everywear_tf import errors
from everywear_tf import spec
from everywear_tf.data import cloth_mask
from everywear_tf.data import datasets
from everywear_tf.data import images
from everywear_tf.data import keypoints
from everywear_tf.data import lip
from everywear_tf.data import parsing
from everywear_tf.data import synthetic_tryon

from tests.data.fixtures import path
from tests.testdata import make_fixtures


def _check_item(item):
    for key in spec.MODULE_INPUTS[spec.GMM]:
        dtype, shape = spec.INPUT_SPECS[key]
        assert item[key].dtype == np.dtype(dtype) and item[key].shape == shape[1:], key
    assert isinstance(item['person_id'], str) and isinstance(item['cloth_id'], str)


def _cpvton_sample(i, cloth_of=None):
    style, product = synthetic_tryon.item(make_fixtures.SEED, i, spec.MEN_TSHIRTS)
    if cloth_of is not None:
        product = synthetic_tryon.item(make_fixtures.SEED, cloth_of, spec.MEN_TSHIRTS)[1]
    return synthetic_tryon.dress(style, product, spec.MEN_TSHIRTS)


def _viton_sample(i):
    return synthetic_tryon.render_sample(np.random.default_rng([make_fixtures.SEED, 100 + i]),
                                         spec.MEN_TSHIRTS)


def _tree_digest(root):
    digest = hashlib.sha256()
    for directory, _, files in sorted(os.walk(root)):
        for name in sorted(files):
            full = os.path.join(directory, name)
            digest.update(full.encode() + open(full, 'rb').read())
            digest.update(str(os.stat(full).st_mtime_ns).encode())
    return digest.hexdigest()


def test_cpvton_layout_reads_the_synthetic_split():
    dataset = datasets.CpVtonDataset(path('cpvton'), 'test')
    assert len(dataset) == 2
    for i in range(2):
        item = dataset.read(i)
        _check_item(item)
        assert (item['person_id'], item['cloth_id']) == (f'{i:06d}_0', f'{i:06d}_1')
        sample = _cpvton_sample(i)
        np.testing.assert_array_equal(item[spec.PERSON], sample.person)
        np.testing.assert_array_equal(item[spec.PARSE], sample.parse)
        np.testing.assert_array_equal(item[spec.CLOTH], sample.cloth)
        np.testing.assert_array_equal(item[spec.CLOTH_MASK], sample.cloth_mask)
        present = sample.keypoints[:, 2] > 0
        np.testing.assert_allclose(item[spec.KEYPOINTS][present], sample.keypoints[present, :2],
                                   rtol=0, atol=1e-3)
        assert np.all(item[spec.KEYPOINTS][~present] == spec.MISSING_KEYPOINT)


def test_unpaired_targets():
    dataset = datasets.CpVtonDataset(path('cpvton'), 'test', pairs='test_pairs_unpaired.txt',
                                     targets=('image-swap', 'image-parse-swap'))
    item = dataset.read(0)
    assert (item['person_id'], item['cloth_id']) == ('000000_0', '000001_1')
    target = _cpvton_sample(0, cloth_of=1)
    np.testing.assert_array_equal(item[datasets.TARGET_PERSON], target.person)
    np.testing.assert_array_equal(item[datasets.TARGET_PARSE], target.parse)
    np.testing.assert_array_equal(item[spec.CLOTH], target.cloth)
    assert not np.array_equal(item[datasets.TARGET_PERSON], item[spec.PERSON])


def test_concatenated_reads_each_part_in_order():
    paired = datasets.CpVtonDataset(path('cpvton'), 'test')
    unpaired = datasets.CpVtonDataset(path('cpvton'), 'test', pairs='test_pairs_unpaired.txt')
    both = datasets.Concatenated([paired, unpaired, paired])
    assert len(both) == 6
    expected = [(0, paired, 0), (1, paired, 1), (2, unpaired, 0), (3, unpaired, 1),
                (4, paired, 0), (5, paired, 1)]
    for i, part, j in expected:
        item, alone = both.read(i), part.read(j)
        assert (item['person_id'], item['cloth_id']) == (alone['person_id'], alone['cloth_id'])
        np.testing.assert_array_equal(item[spec.CLOTH], alone[spec.CLOTH])
    for bad in (-1, 6):
        with pytest.raises(IndexError, match=f'item {bad} of a dataset of 6'):
            both.read(bad)
    with pytest.raises(ValueError):
        datasets.Concatenated([])


def test_viton_layout_with_pose_mat_and_pose_pickle():
    dataset = datasets.VitonDataset(path('viton'))
    assert len(dataset) == 2
    for i in range(2):  # item 0's pose is pose/000000_0.mat, item 1's is in pose.pkl
        item = dataset.read(i)
        _check_item(item)
        assert (item['person_id'], item['cloth_id']) == (f'{i:06d}_0', f'{(i + 1) % 2:06d}_1')
        sample = _viton_sample(i)
        assert np.abs(item[spec.PERSON].astype(int) - sample.person).mean() < 4  # JPEG
        with Image.open(path('viton', 'women_top', f'{i:06d}_0.jpg')) as jpeg:
            assert np.abs(item[spec.PERSON].astype(int) - np.asarray(jpeg)).max() <= 8
        expected = sample.keypoints[:, :2].astype(np.float32)
        expected[3] = spec.MISSING_KEYPOINT
        np.testing.assert_allclose(item[spec.KEYPOINTS], expected, rtol=0, atol=1e-4)
        segment = scipy.io.loadmat(path('viton', 'segment', f'{i:06d}_0.mat'))['segment']
        reference = np.asarray(Image.fromarray(segment.T).resize((256, 256), Image.NEAREST))
        np.testing.assert_array_equal(item[spec.PARSE], reference[:, :192])
        assert (item[spec.PARSE] == sample.parse).mean() > 0.99
        cloth = images.read_image(path('viton', 'women_top', item['cloth_id'] + '.jpg'))
        np.testing.assert_array_equal(item[spec.CLOTH], cloth)
        np.testing.assert_array_equal(item[spec.CLOTH_MASK], cloth_mask.compute_cloth_mask(cloth))
        other = _viton_sample((i + 1) % 2)
        assert (item[spec.CLOTH_MASK] != other.cloth_mask).mean() < 0.01


def test_tf_dataset_matches_read_and_shuffles_deterministically():
    dataset = datasets.CpVtonDataset(path('cpvton'), 'test', pairs='test_pairs_unpaired.txt',
                                     targets=('image-swap', 'image-parse-swap'))
    tf_dataset = dataset.as_tf_dataset()
    for key in spec.MODULE_INPUTS[spec.GMM]:
        assert tf_dataset.element_spec[key].shape.as_list() == list(spec.INPUT_SPECS[key][1][1:])
    assert tf_dataset.element_spec[datasets.TARGET_PERSON].shape.as_list() == [256, 192, 3]
    items = list(tf_dataset.as_numpy_iterator())
    assert [item['person_id'] for item in items] == [b'000000_0', b'000001_0']
    for i, item in enumerate(items):
        expected = dataset.read(i)
        for key, value in expected.items():
            if isinstance(value, str):
                assert item[key] == value.encode()
            else:
                np.testing.assert_array_equal(item[key], value)
    orders = [[item['person_id'] for item in
               datasets.CpVtonDataset(path('cpvton'), 'test').as_tf_dataset(shuffle=True, seed=s)
               .repeat(4).as_numpy_iterator()] for s in (3, 3)]
    assert orders[0] == orders[1] and sorted(orders[0]) == [b'000000_0'] * 4 + [b'000001_0'] * 4
    batch = next(iter(datasets.VitonDataset(path('viton')).as_tf_dataset().batch(2)))
    assert batch[spec.PERSON].shape == (2,) + spec.FRAME_SHAPE + (3,)
    assert batch[spec.KEYPOINTS].dtype.name == 'float32'
    assert batch['cloth_id'].numpy().tolist() == [b'000001_1', b'000000_1']


def _copy(tmp_path, name):
    root = tmp_path / name
    shutil.copytree(path(name), root)
    return root


def test_cpvton_layout_errors_name_the_file(tmp_path):
    with pytest.raises(errors.DatasetError) as raised:
        datasets.CpVtonDataset(tmp_path / 'nowhere', 'test')
    assert str(raised.value).startswith(f'{tmp_path / "nowhere"}: missing directory')
    root = _copy(tmp_path, 'cpvton')
    with pytest.raises(errors.DatasetError, match=f'{root / "train"}: missing directory'):
        datasets.CpVtonDataset(root, 'train')
    with pytest.raises(errors.DatasetError, match='image-parse-new: missing directory'):
        datasets.CpVtonDataset(root, 'test', parse_dir='image-parse-new')
    with pytest.raises(errors.InputNotFoundError, match='other_pairs.txt: no such file'):
        datasets.CpVtonDataset(root, 'test', pairs='other_pairs.txt')
    (root / 'test_pairs.txt').write_text('000000_0.png 000000_1.png\n\n000000_0.png\n')
    with pytest.raises(errors.DatasetError) as raised:
        datasets.CpVtonDataset(root, 'test')
    assert str(raised.value) == (f'{root / "test_pairs.txt"}: line 3: expected "person cloth", '
                                 "got '000000_0.png'")
    (root / 'test_pairs.txt').write_text('\n \n')
    with pytest.raises(errors.DatasetError, match='lists no pairs'):
        datasets.CpVtonDataset(root, 'test')
    (root / 'test_pairs.txt').write_text('000000_0.png 000000_1.png\n000001_0.png 000001_1.png\n')
    for victim in ('pose/000000_0_keypoints.json', 'cloth-mask/000000_1.png',
                   'image-parse/000000_0.png', 'image/000000_0.png', 'cloth/000000_1.png'):
        os.rename(root / 'test' / victim, tmp_path / 'aside')
        dataset = datasets.CpVtonDataset(root, 'test')
        with pytest.raises(errors.InputNotFoundError) as raised:
            dataset.read(0)
        assert str(raised.value) == f'{root / "test" / victim}: no such file'
        dataset.read(1)
        os.rename(tmp_path / 'aside', root / 'test' / victim)
    shutil.rmtree(root / 'test' / 'cloth-mask')
    with pytest.raises(errors.DatasetError, match='cloth-mask: missing directory'):
        datasets.CpVtonDataset(root, 'test')


def test_cpvton_wrong_sizes_and_bad_files(tmp_path):
    root = _copy(tmp_path, 'cpvton')
    images.write_png(root / 'test' / 'image' / '000001_0.png', np.zeros((10, 10, 3), np.uint8))
    (root / 'test' / 'pose' / '000000_0_keypoints.json').write_text('{"people": [')
    dataset = datasets.CpVtonDataset(root, 'test')
    with pytest.raises(errors.KeypointsError, match='000000_0_keypoints.json: not valid JSON'):
        dataset.read(0)
    with pytest.raises(errors.ImageError, match=r'000001_0.png: is 10x10 \(HxW\), expected '
                                                '256x192'):
        dataset.read(1)


def test_cpvton_mask_may_be_a_png_beside_a_jpeg_cloth(tmp_path):
    root = _copy(tmp_path, 'cpvton')
    cloth = images.read_image(root / 'test' / 'cloth' / '000000_1.png')
    Image.fromarray(cloth).save(root / 'test' / 'cloth' / '000000_1.jpg', quality=95)
    (root / 'test_pairs.txt').write_text('000000_0.png 000000_1.jpg\n')
    item = datasets.CpVtonDataset(root, 'test').read(0)
    assert item['cloth_id'] == '000000_1'
    np.testing.assert_array_equal(item[spec.CLOTH_MASK], _cpvton_sample(0).cloth_mask)


def test_viton_layout_errors_name_the_file(tmp_path):
    root = _copy(tmp_path, 'viton')
    with pytest.raises(errors.InputNotFoundError, match='viton_train_images.txt'):
        datasets.VitonDataset(root, 'viton_train_images.txt')
    os.remove(root / 'pose.pkl')
    dataset = datasets.VitonDataset(root)
    dataset.read(0)
    with pytest.raises(errors.InputNotFoundError) as raised:
        dataset.read(1)
    assert str(raised.value) == f'{root / "pose" / "000001_0.mat"}: no such file (and no pose.pkl)'
    shutil.rmtree(root / 'pose')
    with pytest.raises(errors.DatasetError, match='pose: missing'):
        datasets.VitonDataset(root)
    shutil.copytree(path('viton', 'pose'), root / 'pose')
    os.remove(root / 'segment' / '000000_0.mat')
    with pytest.raises(errors.InputNotFoundError, match='000000_0.mat: no such file'):
        datasets.VitonDataset(root).read(0)
    shutil.rmtree(root / 'segment')
    with pytest.raises(errors.DatasetError, match='segment: missing directory'):
        datasets.VitonDataset(root)


def test_viton_pose_pickle_without_the_id(tmp_path):
    root = _copy(tmp_path, 'viton')
    os.remove(root / 'pose' / '000000_0.mat')
    with pytest.raises(errors.KeypointsError) as raised:
        datasets.VitonDataset(root).read(0)
    assert str(raised.value).startswith(f"{root / 'pose.pkl'}: no pose for '000000_0'")


def test_reading_datasets_changes_nothing():
    before = [_tree_digest(path(name)) for name in ('cpvton', 'viton')]
    for dataset in (datasets.CpVtonDataset(path('cpvton'), 'test'),
                    datasets.VitonDataset(path('viton'))):
        for i in range(len(dataset)):
            dataset.read(i)
    assert [_tree_digest(path(name)) for name in ('cpvton', 'viton')] == before


def test_estimated_inputs_come_from_the_front_ends_files_and_the_truth_stays(tmp_path):
    root = _copy(tmp_path, 'cpvton')
    split = root / 'test'
    with pytest.raises(errors.DatasetError, match=datasets.ESTIMATED_POSE):
        datasets.CpVtonDataset(str(root), 'test', estimated_inputs=True)
    (split / datasets.ESTIMATED_POSE).mkdir()
    (split / datasets.ESTIMATED_PARSE).mkdir()
    truth = datasets.CpVtonDataset(str(root), 'test').read(1)
    stem = truth['person_id']
    # An "estimate" that differs from the drawn truth: shifted keypoints, a relabelled region.
    estimated_points = np.concatenate([truth[spec.KEYPOINTS] + 3.0,
                                       np.ones((spec.NUM_KEYPOINTS, 1), np.float32)], axis=1)
    keypoints.write_openpose_json(str(split / datasets.ESTIMATED_POSE / f'{stem}_keypoints.json'),
                                  estimated_points)
    estimated_parse = truth[spec.PARSE].copy()
    estimated_parse[:40] = lip.HAIR
    parsing.write_parse_png(str(split / datasets.ESTIMATED_PARSE / f'{stem}.png'),
                            estimated_parse)
    dataset = datasets.CpVtonDataset(str(root), 'test', estimated_inputs=True)
    item = dataset.read(1)
    np.testing.assert_allclose(item[spec.KEYPOINTS], truth[spec.KEYPOINTS] + 3.0, atol=1e-3)
    np.testing.assert_array_equal(item[spec.PARSE], estimated_parse)
    np.testing.assert_array_equal(item[spec.TRUE_PARSE], truth[spec.PARSE])
    np.testing.assert_array_equal(item[spec.PERSON], truth[spec.PERSON])
    with pytest.raises(errors.InputNotFoundError, match=datasets.ESTIMATED_POSE):
        dataset.read(0)  # person 0 has no estimate: the error names the missing file
