"""Bad inputs that ask for far more memory than they take (issue 15, item 6), each read in a
child process whose peak memory is measured: a clear error naming the file (and the limit),
memory growth under BOUND_MB, nothing written.

The children run under an address-space limit (CHILD_LIMIT) so that a reader that does allocate
what a file declares fails fast instead of taking the machine's memory.
"""

import json
import os
import pickle
import struct
import subprocess
import sys
import zipfile
import zlib

import numpy as np
import pytest
from PIL import Image

from tests.convert import pth_writer

pytestmark = pytest.mark.slow  # children processes

BOUND_MB = 150  # what a refused file may cost the reader, above its imports
CHILD_LIMIT = 1536 << 20  # address space of the child (its imports take ~300 MB)
_CHILD = r'''
import json, resource, sys
resource.setrlimit(resource.RLIMIT_AS, (int(sys.argv[1]), int(sys.argv[1])))
from everywear_tf import errors
from everywear_tf.data import bundle, images, keypoints, parsing, safe_pickle
from everywear_tf.convert import torch_pth


def high_water_kb():
    # This process's own peak RSS (VmHWM: its address space's, which exec starts anew);
    # ru_maxrss would carry the forking pytest's size across exec and hide what the read costs.
    with open('/proc/self/status') as f:
        return next(int(line.split()[1]) for line in f if line.startswith('VmHWM:'))


before = high_water_kb()
out = {}
try:
    eval(sys.argv[2])
    out['accepted'] = True
except errors.EverywearError as e:
    out['error'], out['message'] = type(e).__name__, str(e)
except BaseException as e:  # what the test must not see: a traceback
    out['untyped'], out['message'] = type(e).__name__, str(e)[:300]
out['grew_mb'] = (high_water_kb() - before) / 1024
print(json.dumps(out))
'''


def _read_in_child(expression, path, refused=True):
    env = dict(os.environ, OPENBLAS_NUM_THREADS='1', OMP_NUM_THREADS='1')
    done = subprocess.run([sys.executable, '-c', _CHILD, str(CHILD_LIMIT), expression],
                          capture_output=True, text=True, timeout=120, env=env,
                          cwd=os.path.dirname(os.path.dirname(os.path.dirname(
                                  os.path.abspath(__file__)))))
    assert done.returncode == 0, f'the reader crashed ({done.returncode}): {done.stderr[-800:]}'
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result['grew_mb'] < BOUND_MB, f'{path}: peak memory grew {result["grew_mb"]:.0f} MB'
    if refused:
        assert 'error' in result, f'{path}: not refused with a typed error: {result}'
        assert result['message'].startswith(f'{path}: '), result['message']
    else:
        assert 'untyped' not in result, result
    return result


def _check(tmp_path, expression, path, *words, refused=True):
    before = sorted(os.listdir(tmp_path))
    result = _read_in_child(expression.format(path=repr(str(path))), str(path), refused)
    for word in words:
        assert word in result['message'], result['message']
    assert sorted(os.listdir(tmp_path)) == before  # nothing written
    return result


# -- pickles ---------------------------------------------------------------------------------

def _global(module, name):
    return (pickle.SHORT_BINUNICODE + bytes([len(module)]) + module.encode()
            + pickle.SHORT_BINUNICODE + bytes([len(name)]) + name.encode() + pickle.STACK_GLOBAL)


def _int(value):
    raw = value.to_bytes((value.bit_length() + 8) // 8, 'little', signed=True)
    return pickle.LONG1 + bytes([len(raw)]) + raw


def _call(callable_opcodes, *args):
    return callable_opcodes + pickle.MARK + b''.join(args) + pickle.TUPLE + pickle.REDUCE


PICKLES = {
        # 41 bytes that make a gigabyte of zeros.
        'bytearray(1e9)': _call(_global('builtins', 'bytearray'), _int(10 ** 9)),
        'frozenset(range(3e7))': _call(_global('builtins', 'frozenset'),
                                       _call(_global('builtins', 'range'), _int(3 * 10 ** 7))),
        # One 1 MB string, encoded 1000 times: 1 GB from a 1 MB file.
        'encode x 1000': pickle.EMPTY_LIST + pickle.MARK
        + _call(_global('_codecs', 'encode') + pickle.BINPUT + b'\x00',
                pickle.BINUNICODE + struct.pack('<I', 1 << 20) + b'x' * (1 << 20)
                + pickle.BINPUT + b'\x01', pickle.SHORT_BINUNICODE + b'\x06latin1')
        + _call(pickle.BINGET + b'\x00', pickle.BINGET + b'\x01',
                pickle.SHORT_BINUNICODE + b'\x06latin1') * 999 + pickle.APPENDS,
        # An object array whose state declares 1e8 items and brings one (NumPy crashes on it).
        'object array, short state': (
                _call(_global('numpy.core.multiarray', '_reconstruct'),
                      _global('numpy', 'ndarray'), pickle.EMPTY_TUPLE,
                      pickle.SHORT_BINBYTES + b'\x01b')
                + pickle.MARK + _int(1) + pickle.MARK + _int(10 ** 8) + pickle.TUPLE
                + _call(_global('numpy', 'dtype'), pickle.SHORT_BINUNICODE + b'\x02O8')
                + pickle.NEWFALSE + pickle.MARK + _int(1) + pickle.LIST + pickle.TUPLE
                + pickle.BUILD),
        # Ten bytes: the C unpickler grows its memo to twice the index a PUT names.
        'memo index 6e7': pickle.NONE + pickle.LONG_BINPUT + struct.pack('<I', 60_000_000),
}


@pytest.mark.parametrize('name', list(PICKLES))
def test_pickle_bombs_are_refused_in_bounded_memory(tmp_path, name):
    target = tmp_path / 'bomb.pkl'
    target.write_bytes(b'\x80\x04' + PICKLES[name] + pickle.STOP)
    assert target.stat().st_size < (1 << 20) + 30_000
    # The memo pickle is None, honestly: read in bounded memory, it is no error.
    _check(tmp_path, 'safe_pickle.load({path})', target, refused=not name.startswith('memo'))


def test_a_bundle_and_a_pose_pickle_bomb_are_refused_naming_the_file(tmp_path):
    bomb = b'\x80\x04' + PICKLES['frozenset(range(3e7))'] + pickle.STOP
    (tmp_path / 'body_pickle').write_bytes(bomb)
    result = _check(tmp_path, 'bundle.read_bundle({path})', tmp_path / 'body_pickle', 'limit')
    assert result['error'] == 'UnsafePickleError'
    (tmp_path / 'pose.pkl').write_bytes(bomb)
    _check(tmp_path, 'keypoints.read_keypoints({path})', tmp_path / 'pose.pkl', 'limit')


# -- .mat ------------------------------------------------------------------------------------

def _mat_variable(name, shape, chunk=1 << 22):
    """A zlib-compressed MAT v5 element: a uint8 array of zeros of ``shape``, compressed in
    chunks (the array is never in memory)."""
    nbytes = int(np.prod(shape))

    def element(kind, payload):
        return struct.pack('<II', kind, len(payload)) + payload + b'\0' * (-len(payload) % 8)

    head = (element(6, struct.pack('<II', 9, 0))  # array flags: mxUINT8_CLASS
            + element(5, struct.pack(f'<{len(shape)}i', *shape)) + element(1, name.encode()))
    pad = -nbytes % 8
    compressor = zlib.compressobj(1)
    parts = [compressor.compress(struct.pack('<II', 14, len(head) + 8 + nbytes + pad) + head
                                 + struct.pack('<II', 2, nbytes))]  # miMATRIX, miUINT8 data
    zeros, left = bytes(chunk), nbytes + pad
    while left:
        parts.append(compressor.compress(zeros[:min(left, chunk)]))
        left -= min(left, chunk)
    parts.append(compressor.flush())
    compressed = b''.join(parts)
    return struct.pack('<II', 15, len(compressed)) + compressed


def write_mat_bomb(path, **variables):
    """A MAT v5 file of uint8 zero arrays {name: shape}."""
    header = b'MATLAB 5.0 MAT-file'.ljust(116) + b'\0' * 8 + struct.pack('<H', 0x0100) + b'IM'
    with open(path, 'wb') as f:
        f.write(header + b''.join(_mat_variable(n, s) for n, s in variables.items()))
    return path


def test_a_parse_mat_bomb_is_refused_before_decoding(tmp_path):
    target = write_mat_bomb(tmp_path / 'segment.mat', segment=(20000, 20000))
    assert target.stat().st_size < 2_000_000  # 400 MB declared
    _check(tmp_path, 'parsing.read_parse({path}, image_size=(641, 641))', target, 'limit',
           '"segment"')


def test_a_pose_mat_bomb_is_refused_before_decoding(tmp_path):
    target = write_mat_bomb(tmp_path / 'pose.mat', candidate=(100_000_000, 4), subset=(1, 20))
    _check(tmp_path, 'keypoints.read_keypoints({path})', target, 'limit', '"candidate"')


# -- .pth ------------------------------------------------------------------------------------

def _pth_with_storage(path, numel, write_storage):
    storage = pth_writer.Storage(np.zeros(1, np.float32), key=0)
    storage.data = np.broadcast_to(np.float32(0), (numel,))  # only its size is pickled
    main = pth_writer._pickle({'w': pth_writer.Tensor(storage, 0, (numel,), (1,))}, {},
                              legacy=False, renames={})
    with zipfile.ZipFile(path, 'w', zipfile.ZIP_STORED) as archive:
        archive.writestr('archive/data.pkl', main)
        archive.writestr('archive/byteorder', 'little')
        write_storage(archive)
    return path


def test_a_pth_zip_bomb_is_refused_before_inflating(tmp_path):
    numel = 100_000_000  # 400 MB of float32 zeros, deflated to ~400 kB

    def deflated(archive):
        info = zipfile.ZipInfo('archive/data/0')
        info.compress_type = zipfile.ZIP_DEFLATED
        with archive.open(info, 'w', force_zip64=True) as record:
            zeros, left = bytes(1 << 22), numel * 4
            while left:
                record.write(zeros[:min(left, len(zeros))])
                left -= min(left, len(zeros))

    target = _pth_with_storage(tmp_path / 'bomb.pth', numel, deflated)
    assert target.stat().st_size < 2_000_000
    _check(tmp_path, 'torch_pth.read_state_dict({path})', target, 'limit')


def test_a_pth_whose_pickle_names_a_huge_memo_index_is_refused(tmp_path):
    target = tmp_path / 'memo.pth'
    with zipfile.ZipFile(target, 'w', zipfile.ZIP_STORED) as archive:
        archive.writestr('archive/data.pkl', b'\x80\x02' + PICKLES['memo index 6e7'] + b'.')
    _check(tmp_path, 'torch_pth.read_state_dict({path})', target)


# -- images ----------------------------------------------------------------------------------

def _png_chunk(kind, payload):
    return (struct.pack('>I', len(payload)) + kind + payload
            + struct.pack('>I', zlib.crc32(kind + payload)))


def write_png_bomb(path, width, height):
    """A grey 8-bit PNG of zeros, ``width`` × ``height``, compressed row by row."""
    compressor = zlib.compressobj(1)
    row = bytes(width + 1)  # filter byte 0 and the row
    data = b''.join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    with open(path, 'wb') as f:
        f.write(b'\x89PNG\r\n\x1a\n'
                + _png_chunk(b'IHDR', struct.pack('>IIBBBBB', width, height, 8, 0, 0, 0, 0))
                + _png_chunk(b'IDAT', data) + _png_chunk(b'IEND', b''))
    return path


def test_a_png_bomb_is_refused_from_its_header(tmp_path):
    target = write_png_bomb(tmp_path / 'photo.png', 20000, 20000)
    assert target.stat().st_size < 2_000_000
    _check(tmp_path, 'images.read_image({path})', target, 'limit', '20000x20000')


def test_a_parse_png_bomb_is_refused_from_its_header(tmp_path):
    target = write_png_bomb(tmp_path / 'parse.png', 12000, 12000)  # below Pillow's own limit
    _check(tmp_path, 'parsing.read_parse({path})', target, 'limit')


def test_a_jpeg_whose_header_declares_20000_squared_is_refused(tmp_path):
    Image.new('L', (16, 16), 128).save(tmp_path / 'small.jpg', quality=90)
    data = bytearray((tmp_path / 'small.jpg').read_bytes())
    sof = data.index(b'\xff\xc0')  # height and width follow the marker, length and precision
    data[sof + 5:sof + 9] = struct.pack('>HH', 20000, 20000)
    (tmp_path / 'small.jpg').unlink()
    (tmp_path / 'photo.jpg').write_bytes(bytes(data))
    _check(tmp_path, 'images.read_image({path})', tmp_path / 'photo.jpg', 'limit')


def test_the_pixel_limit_is_a_parameter(tmp_path):
    target = write_png_bomb(tmp_path / 'photo.png', 300, 200)
    _check(tmp_path, 'images.read_image({path}, max_pixels=50_000)', target, '60000 pixels',
           'limit of 50000')
    _read_ok = (f'images.read_image({repr(str(target))}, max_pixels=60_000).shape == (200, 300, 3) '
                'or 1 / 0')
    done = subprocess.run([sys.executable, '-c', _CHILD, str(CHILD_LIMIT), _read_ok],
                          capture_output=True, text=True, timeout=120)
    assert json.loads(done.stdout.strip().splitlines()[-1]).get('accepted'), done.stdout


# -- JSON ------------------------------------------------------------------------------------

def test_a_pose_json_above_the_size_cap_is_refused_before_parsing(tmp_path):
    target = tmp_path / 'pose.json'
    with open(target, 'w') as f:  # 40 MB: a list of 20 million zeros
        f.write('{"people": [{"pose_keypoints_2d": [')
        chunk = '0,' * 1_000_000
        for _ in range(20):
            f.write(chunk)
        f.write('0]}]}')
    _check(tmp_path, 'keypoints.read_keypoints({path})', target, 'limit')


def test_a_pose_json_with_a_100k_digit_number_is_a_clear_error(tmp_path):
    target = tmp_path / 'pose.json'
    target.write_text('{"people": [{"pose_keypoints_2d": [' + '9' * 100_000 + ']}]}')
    _check(tmp_path, 'keypoints.read_keypoints({path})', target, 'not valid JSON')
