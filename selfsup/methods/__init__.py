"""Every method, registered by name. Adding one: its file, one line here, its config."""
from selfsup.methods.base import Method, StepOutput
from selfsup.methods.rotation import Rotation
from selfsup.methods.simclr import SimCLR
from selfsup.methods.swav import SwAV
from selfsup.methods.dino import DINO
from selfsup.registry import Registry

METHODS = Registry("method")
METHODS.register("rotation", Rotation)
METHODS.register("simclr", SimCLR)
METHODS.register("swav", SwAV)
METHODS.register("dino", DINO)


def build_method(name: str, **kwargs) -> Method:
    """``build_method("simclr", backbone=..., augment=..., temperature=0.2)``."""
    return METHODS.build(name, **kwargs)


__all__ = ["METHODS", "Method", "StepOutput", "build_method"]
