"""selfsup: self-supervised visual representation learning, methods and evaluation in one code base."""
__version__ = "0.1.0"
