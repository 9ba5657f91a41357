"""Losses, each a plain function of tensors with typed keyword arguments."""
from selfsup.losses.info_nce import nt_xent

__all__ = ["nt_xent"]
from selfsup.losses.dino import dino_loss, update_center
from selfsup.losses.swav import swapped_prediction

__all__ += ["dino_loss", "swapped_prediction", "update_center"]
