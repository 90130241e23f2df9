"""Which ops a SavedModel needs, and which of them this process's TensorFlow does not register.

Stock TF Serving links core TF only (ARCHITECTURE.md §6). Run the check in a process that
has not imported tensorflow_addons (a fresh interpreter), so the registry holds core ops alone.
"""

import os

from tensorflow.core.protobuf import saved_model_pb2
from tensorflow.python.framework import op_def_registry

from everywear_tf import errors


def saved_model_ops(saved_model_dir):
    """Every op type in every graph and graph function of ``saved_model.pb``."""
    path = os.path.join(saved_model_dir, 'saved_model.pb')
    errors.require_file(path)
    saved_model = saved_model_pb2.SavedModel()
    with open(path, 'rb') as f:
        saved_model.ParseFromString(f.read())
    ops = set()
    for meta_graph in saved_model.meta_graphs:
        ops |= {node.op for node in meta_graph.graph_def.node}
        for function in meta_graph.graph_def.library.function:
            ops |= {node.op for node in function.node_def}
    return ops


def unregistered_ops(saved_model_dir):
    """Sorted op types that this process's TensorFlow does not know (custom-op libraries)."""
    return sorted(op for op in saved_model_ops(saved_model_dir)
                  if op_def_registry.get(op) is None)


def main(argv):
    """``python -m everywear_tf.export.opcheck DIR...``: exit 1 if any op is not core TF."""
    failed = False
    for directory in argv[1:]:
        missing = unregistered_ops(directory)
        print(f'{directory}: ' + (f'NOT core TF: {missing}' if missing else 'core TF ops only'))
        failed |= bool(missing)
    return 1 if failed else 0


if __name__ == '__main__':
    import sys
    sys.exit(main(sys.argv))
