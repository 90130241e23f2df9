"""Op types of a traced function, to check that exports stay within TF Serving's core ops."""


def op_types(concrete_function):
    graph = concrete_function.graph.as_graph_def()
    types = {node.op for node in graph.node}
    for function in graph.library.function:
        types |= {node.op for node in function.node_def}
    return types


def custom_ops(concrete_function):
    """Ops from custom-op libraries (tensorflow_addons registers them as ``Addons>Name``)."""
    return sorted(op for op in op_types(concrete_function) if '>' in op)
