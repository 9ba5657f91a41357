"""Losses, each a plain function of tensors with typed keyword arguments."""
from selfsup.losses.barlow_twins import barlow_twins_loss, cross_correlation
from selfsup.losses.byol import negative_cosine, normalized_mse
from selfsup.losses.dino import dino_loss, update_center
from selfsup.losses.info_nce import info_nce_in_batch, info_nce_with_queue, nt_xent
from selfsup.losses.nce import estimate_log_z, memory_info_nce, nce_loss
from selfsup.losses.swav import swapped_prediction
from selfsup.losses.triplet import batch_hard_triplet
from selfsup.losses.vicreg import covariance_term, invariance_term, variance_term, vicreg_loss

__all__ = [
    "barlow_twins_loss",
    "batch_hard_triplet",
    "covariance_term",
    "cross_correlation",
    "dino_loss",
    "estimate_log_z",
    "info_nce_in_batch",
    "info_nce_with_queue",
    "invariance_term",
    "memory_info_nce",
    "nce_loss",
    "negative_cosine",
    "normalized_mse",
    "nt_xent",
    "swapped_prediction",
    "update_center",
    "variance_term",
    "vicreg_loss",
]
