"""Losses, each a plain function of tensors with typed keyword arguments."""
from selfsup.losses.info_nce import nt_xent

__all__ = ["nt_xent"]
