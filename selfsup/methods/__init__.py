"""Every method, registered by name. Adding one: its file, one line here, its config."""
from selfsup.methods.base import Method, StepOutput
from selfsup.methods.colorization import Colorization
from selfsup.methods.deepcluster import DeepCluster
from selfsup.methods.exemplar import Exemplar
from selfsup.methods.inpainting import Inpainting
from selfsup.methods.jigsaw import Jigsaw
from selfsup.methods.npid import NPID
from selfsup.methods.pirl import PIRL
from selfsup.methods.relative_location import RelativeLocation
from selfsup.methods.rotation import Rotation
from selfsup.methods.simclr import SimCLR
from selfsup.registry import Registry

METHODS = Registry("method")
METHODS.register("colorization", Colorization)
METHODS.register("inpainting", Inpainting)
METHODS.register("rotation", Rotation)
METHODS.register("simclr", SimCLR)
METHODS.register("jigsaw", Jigsaw)
METHODS.register("relative_location", RelativeLocation)
METHODS.register("exemplar", Exemplar)
METHODS.register("npid", NPID)
METHODS.register("pirl", PIRL)
METHODS.register("deepcluster", DeepCluster)


def build_method(name: str, **kwargs) -> Method:
    """``build_method("simclr", backbone=..., augment=..., temperature=0.2)``."""
    return METHODS.build(name, **kwargs)


__all__ = ["METHODS", "Method", "StepOutput", "build_method"]
