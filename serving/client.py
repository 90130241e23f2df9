r"""Batch try-on through TF Serving: everywear-batch with --server required.

  python serving/client.py --server=localhost:8500 --input_dir=shoot --workspace=ws --workers=8

Flags as `everywear-batch --help` lists them; the input layout and the workspace written are in
BUILD.md §11 and everywear_tf/inference/batch.py.
"""

from absl import flags

from everywear_tf.cli import batch

if __name__ == '__main__':
    flags.mark_flag_as_required('server')
    batch.run()
