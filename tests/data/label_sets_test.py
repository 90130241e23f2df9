import numpy as np
import pytest

from everywear_tf import errors
from everywear_tf.data import label_sets
from everywear_tf.data import lip


@pytest.mark.parametrize('label_set,count', [(label_sets.CIHP, 20), (label_sets.ATR, 18)])
def test_every_label_maps_as_the_table_says(label_set, count):
    table = label_sets.TABLES[label_set]
    assert sorted(table) == list(range(count))
    labels = np.random.default_rng(0).integers(0, count, (3, 40, 30)).astype(np.uint8)
    expected = np.vectorize(lambda v: table[int(v)][1])(labels)
    np.testing.assert_array_equal(label_sets.to_lip(labels, label_set), expected)


def test_the_differences_from_lip_are_said():
    assert label_sets.CIHP_TO_LIP[10] == ('torso_skin', lip.NECK)
    assert label_sets.ATR_TO_LIP[4][1] == lip.UPPER_CLOTHES
    assert label_sets.ATR_TO_LIP[6][1] == lip.PANTS
    assert label_sets.ATR_TO_LIP[5][1] == lip.SKIRT
    assert label_sets.ATR_TO_LIP[7][1] == lip.DRESS
    # Every source id whose LIP id differs (other than a plain renumbering by name) is said.
    for (label_set, source), _ in label_sets.UNMAPPED.items():
        assert source in label_sets.TABLES[label_set]
    for source, (name, target) in label_sets.ATR_TO_LIP.items():
        if name not in lip.NAMES or lip.NAMES.index(name) != target:
            assert (label_sets.ATR, source) in label_sets.UNMAPPED or name in lip.NAMES


def test_unknown_id_names_the_file():
    with pytest.raises(errors.ParseMapError, match=r'map\.png.*\[18\].*ATR'):
        label_sets.to_lip(np.array([[0, 18]], np.uint8), label_sets.ATR, 'map.png')
