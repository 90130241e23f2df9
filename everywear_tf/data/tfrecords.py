"""TFRecord shards of the compact signature inputs, and a reader the trainers use.

Each record is a tf.train.Example of one item: uint8 [H,W,3] images as RGB PNG bytes, uint8
[H,W] maps (label ids, masks) as greyscale PNG bytes (lossless, so label ids survive), float32
arrays as a float list plus their shape (``<key>/shape``), strings as bytes. Shards are named
``<prefix>-NNNNN-of-MMMMM.tfrecord``, items in order; ``TfRecordDataset`` reads a glob of them
back as a dataset with len() and read(i) (what train.loop takes), items equal to the source's.

The reader indexes the shards by their record headers (8-byte length, 4-byte length CRC, data,
4-byte data CRC) and seeks to a record on read, so a training run never holds a shard in memory.
CRCs are not checked (no CRC-32C here without TensorFlow's reader); a damaged record is a
DatasetError naming the shard when it does not parse.
"""

import glob
import os
import struct

import cv2
import numpy as np
import tensorflow as tf

from everywear_tf import errors
from everywear_tf.data import datasets
from everywear_tf.data import images

SUFFIX = '.tfrecord'
SHAPE = '/shape'


def shard_name(prefix, index, count):
    """``<prefix>-NNNNN-of-MMMMM.tfrecord``."""
    return f'{prefix}-{index:05d}-of-{count:05d}{SUFFIX}'


def _bytes(value):
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))


def encode(item):
    """Serialized tf.train.Example of an item dict (see the module docstring)."""
    features = {}
    for key, value in item.items():
        if isinstance(value, str):
            features[key] = _bytes(value.encode('utf-8'))
            continue
        value = np.asarray(value)
        if value.dtype == np.uint8 and (value.ndim == 2 or (value.ndim == 3 and
                                                            value.shape[2] == 3)):
            features[key] = _bytes(images.encode_png(value, key))
        elif value.dtype == np.float32:
            features[key] = tf.train.Feature(float_list=tf.train.FloatList(
                    value=value.reshape(-1).tolist()))
            features[key + SHAPE] = tf.train.Feature(int64_list=tf.train.Int64List(
                    value=list(value.shape)))
        else:
            raise ValueError(f'{key}: cannot store {value.dtype} {value.shape} (uint8 images or '
                             'maps, float32 arrays and strings only)')
    return tf.train.Example(features=tf.train.Features(feature=features)).SerializeToString()


def decode(data, path='<memory>'):
    """The item dict of a serialized Example written by ``encode``."""
    try:
        example = tf.train.Example.FromString(data)
    except Exception as e:  # protobuf's DecodeError
        raise errors.DatasetError(path, f'a record is not a tf.train.Example ({e})') from None
    features = example.features.feature
    item = {}
    for key, feature in features.items():
        if key.endswith(SHAPE):
            continue
        kind = feature.WhichOneof('kind')
        if kind == 'float_list':
            shape = tuple(features[key + SHAPE].int64_list.value)
            item[key] = np.asarray(feature.float_list.value, np.float32).reshape(shape)
        elif key in (datasets.PERSON_ID, datasets.CLOTH_ID):
            item[key] = feature.bytes_list.value[0].decode('utf-8')
        else:
            image = cv2.imdecode(np.frombuffer(feature.bytes_list.value[0], np.uint8),
                                 cv2.IMREAD_UNCHANGED)
            if image is None:
                raise errors.DatasetError(path, f'{key}: not a PNG')
            item[key] = cv2.cvtColor(image, cv2.COLOR_BGR2RGB) if image.ndim == 3 else image
    return item


def write_shard(path, items):
    """Writes ``items`` (an iterable of item dicts) to one shard, atomically: to a hidden
    temporary name beside it, renamed into place when complete. Returns the item count."""
    directory, name = os.path.split(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    temporary = os.path.join(directory, f'.{name}.partial')
    count = 0
    try:
        with tf.io.TFRecordWriter(temporary) as writer:
            for item in items:
                writer.write(encode(item))
                count += 1
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)
    return count


def _index(path):
    """[(offset of the data, length)] of the records of one shard, from their headers."""
    records = []
    size = os.path.getsize(path)
    with open(path, 'rb') as f:
        offset = 0
        while offset < size:
            header = f.read(12)
            if len(header) < 12:
                raise errors.DatasetError(path, f'truncated record header at byte {offset}')
            (length,) = struct.unpack('<Q', header[:8])
            if offset + 12 + length + 4 > size:
                raise errors.DatasetError(path, f'truncated record at byte {offset} (declares '
                                                f'{length} bytes)')
            records.append((offset + 12, length))
            offset += 12 + length + 4
            f.seek(offset)
    return records


class TfRecordDataset(datasets._Dataset):
    """The items of the shards matching ``pattern`` (sorted by name), in order."""

    def __init__(self, pattern):
        self.pattern = os.fspath(pattern)
        self.files = sorted(glob.glob(self.pattern))
        if not self.files:
            raise errors.InputNotFoundError(self.pattern, 'no TFRecord shard matches')
        self.records = [(path,) + record for path in self.files for record in _index(path)]
        if not self.records:
            raise errors.DatasetError(self.pattern, 'the shards hold no records')
        self.pairs = self.records  # len()

    def read(self, i):
        """Item ``i``."""
        path, offset, length = self.records[i]
        with open(path, 'rb') as f:
            f.seek(offset)
            data = f.read(length)
        return decode(data, path)
