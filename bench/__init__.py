"""Runnable benchmarks (``python -m bench.<name>``); the code they run is everywear_tf.bench."""
