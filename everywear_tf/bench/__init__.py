"""Benchmarks of the modules and the whole try-on (issue 7): the library the bench/ scripts call."""
