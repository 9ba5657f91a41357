"""Losses, each a plain function of tensors with typed keyword arguments."""
from selfsup.losses.info_nce import nt_xent
from selfsup.losses.nce import estimate_log_z, memory_info_nce, nce_loss
from selfsup.losses.triplet import batch_hard_triplet

__all__ = ["nt_xent"]
__all__ += ["batch_hard_triplet"]
__all__ += ["estimate_log_z", "memory_info_nce", "nce_loss"]
