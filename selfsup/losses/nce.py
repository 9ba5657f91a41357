"""Noise-contrastive estimation against a memory bank (NPID, PIRL).

NPID (Wu et al., arXiv:1805.01978, Sec. 3.2) treats each image as its own class
with the non-parametric softmax P(i|v) = exp(v_i . v / tau) / Z and, since Z
sums over every image, trains it with NCE: tell the positive (image i's memory
row) from N noise rows drawn uniformly (P_n = 1/n) through the posterior
h(i, v) = P(i|v) / (P(i|v) + N P_n(i)), and minimise
-log h(positive) - sum over the N noise rows of log(1 - h(noise)).
Z is a Monte-Carlo estimate, n times the mean of exp(s / tau), taken once on
the first batch and then kept fixed (NPID: estimating it from the initial
batches suffices in practice).

PIRL (Misra & van der Maaten, arXiv:1912.01991, Sec. 3) writes the same
h with cosine similarity and tau = 0.07; its released code (VISSL's
``nce_loss_with_memory``, a port of NPID's) divides by the same once-estimated
Z, which we follow: without Z, exp(s / 0.07) of unrelated images (s ~ 0) is
~1 against a noise term N/n < 1, and every negative would be saturated at the
start. ``memory_info_nce`` is the softmax (InfoNCE) form over the positive and
the same N negatives that most later reimplementations use instead.

All scores are cosine similarities (dot products of unit vectors).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from selfsup.nn.distributed import gather


def _check(pos: torch.Tensor, neg: torch.Tensor) -> None:
    if pos.ndim != 1 or neg.ndim != 2 or neg.shape[0] != pos.shape[0]:
        raise ValueError(f"pos must be (B,) and neg (B, N), got {tuple(pos.shape)} and {tuple(neg.shape)}")


def estimate_log_z(pos: torch.Tensor, neg: torch.Tensor, num_samples: int, temperature: float = 0.07) -> torch.Tensor:
    """log Z with Z = n * mean(exp(s / tau)) over every score of the batch, positives (B,) and negatives (B, N).

    In a distributed run the mean is over the batch of all ranks, so every rank
    holds the same Z (the one process's on the global batch).
    """
    _check(pos, neg)
    scores = torch.cat([pos[:, None], neg], dim=1).detach().float() / temperature  # (B, 1+N)
    stats = torch.stack([torch.logsumexp(scores.flatten(), 0), scores.new_tensor(float(scores.numel()))])  # (2,)
    stats = gather(stats[None])  # (W, 2): each rank's log-sum-exp and count
    return math.log(num_samples) + torch.logsumexp(stats[:, 0], 0) - math.log(int(stats[:, 1].sum()))


def nce_loss(
    pos: torch.Tensor,
    neg: torch.Tensor,
    *,
    num_samples: int,
    log_z: torch.Tensor | float,
    temperature: float = 0.07,
) -> torch.Tensor:
    """Binary NCE with uniform noise over ``num_samples`` images, averaged over the batch.

    Args:
        pos: (B,) similarity of each anchor with its positive memory row.
        neg: (B, N) similarities with N noise rows drawn uniformly from the bank.
        num_samples: n, the bank size (the noise distribution is 1/n).
        log_z: log of the softmax normaliser Z (``estimate_log_z``, once).
        temperature: tau.

    Computed in log space: log h = log P - logaddexp(log P, log(N/n)) and
    log(1 - h) = log(N/n) - logaddexp(log P, log(N/n)), with log P = s/tau - log Z.
    """
    _check(pos, neg)
    log_noise = math.log(neg.shape[1] / num_samples)  # log(N * P_n)
    log_p_pos = pos.float() / temperature - log_z  # (B,)
    log_p_neg = neg.float() / temperature - log_z  # (B, N)
    noise = torch.full_like(log_p_pos, log_noise)
    log_h_pos = log_p_pos - torch.logaddexp(log_p_pos, noise)  # (B,)
    log_not_h_neg = log_noise - torch.logaddexp(log_p_neg, noise[:, None])  # (B, N)
    return -(log_h_pos + log_not_h_neg.sum(1)).mean()


def memory_info_nce(pos: torch.Tensor, neg: torch.Tensor, *, temperature: float = 0.07) -> torch.Tensor:
    """Softmax cross-entropy picking the positive (B,) among itself and its N negatives (B, N)."""
    _check(pos, neg)
    logits = torch.cat([pos[:, None], neg], dim=1).float() / temperature  # (B, 1+N), the positive in column 0
    return F.cross_entropy(logits, torch.zeros(len(pos), dtype=torch.long, device=pos.device))
