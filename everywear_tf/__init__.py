"""everywear-tf: TensorFlow 2 port of the Everywear virtual try-on pipeline."""

__version__ = '0.1.0'
