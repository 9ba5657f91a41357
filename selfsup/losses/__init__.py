"""Losses, each a plain function of tensors with typed keyword arguments."""
from selfsup.losses.info_nce import nt_xent

__all__ = ["nt_xent"]
from selfsup.losses.info_nce import info_nce_in_batch, info_nce_with_queue
from selfsup.losses.byol import negative_cosine, normalized_mse
from selfsup.losses.barlow_twins import barlow_twins_loss, cross_correlation
from selfsup.losses.vicreg import covariance_term, invariance_term, variance_term, vicreg_loss

__all__ += ["info_nce_with_queue", "info_nce_in_batch", "normalized_mse", "negative_cosine", "barlow_twins_loss",
            "cross_correlation", "vicreg_loss", "invariance_term", "variance_term", "covariance_term"]
