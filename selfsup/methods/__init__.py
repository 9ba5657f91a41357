"""Every method, registered by name. Adding one: its file, one line here, its config."""
from selfsup.methods.barlow_twins import BarlowTwins
from selfsup.methods.base import DATASET_SIZE_ARG, Method, StepOutput
from selfsup.methods.byol import BYOL
from selfsup.methods.colorization import Colorization
from selfsup.methods.deepcluster import DeepCluster
from selfsup.methods.dino import DINO
from selfsup.methods.exemplar import Exemplar
from selfsup.methods.inpainting import Inpainting
from selfsup.methods.jigsaw import Jigsaw
from selfsup.methods.moco import MoCo
from selfsup.methods.mocov3 import MoCoV3
from selfsup.methods.npid import NPID
from selfsup.methods.pirl import PIRL
from selfsup.methods.relative_location import RelativeLocation
from selfsup.methods.rotation import Rotation
from selfsup.methods.simclr import SimCLR
from selfsup.methods.simsiam import SimSiam
from selfsup.methods.swav import SwAV
from selfsup.methods.vicreg import VICReg
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
METHODS.register("moco", MoCo)
METHODS.register("mocov3", MoCoV3)
METHODS.register("byol", BYOL)
METHODS.register("simsiam", SimSiam)
METHODS.register("barlow_twins", BarlowTwins)
METHODS.register("vicreg", VICReg)
METHODS.register("swav", SwAV)
METHODS.register("dino", DINO)


def build_method(name: str, **kwargs) -> Method:
    """``build_method("simclr", backbone=..., augment=..., temperature=0.2)``."""
    return METHODS.build(name, **kwargs)


__all__ = ["DATASET_SIZE_ARG", "METHODS", "Method", "StepOutput", "build_method"]
