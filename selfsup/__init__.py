"""selfsup: self-supervised visual representation learning, methods and evaluation in one code base."""
from selfsup.backbones import backbone_names, build_backbone
from selfsup.methods import build_method

__version__ = "0.1.0"
__all__ = ["backbone_names", "build_backbone", "build_method"]
