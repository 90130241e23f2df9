r"""Batch try-on through TF Serving (DESIGN.md §3): everywear-batch with --server required.

  python serving/client.py --server=localhost:8500 --input_dir=shoot --workspace=ws --workers=8

Flags, input layout and outputs as `everywear-batch --helpfull` and everywear_tf/batch.py say.
"""

from absl import flags

from everywear_tf.cli import batch

if __name__ == '__main__':
    flags.mark_flag_as_required('server')
    batch.run()
