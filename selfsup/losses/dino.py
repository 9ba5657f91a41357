"""DINO's self-distillation loss and teacher centering (Caron et al. 2021, arXiv:2104.14294, Sec. 3.1)."""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from selfsup.nn.distributed import all_reduce


def dino_loss(
    student: Sequence[torch.Tensor],
    teacher: Sequence[torch.Tensor],
    center: torch.Tensor,
    student_temperature: float = 0.1,
    teacher_temperature: float = 0.04,
) -> torch.Tensor:
    """Cross-entropy from the centred, sharpened teacher to the student, over pairs of different views.

    "min_theta_s sum_{x in {x1g, x2g}} sum_{x' in V, x' != x} H(P_t(x), P_s(x'))"
    (Eq. 3), P = softmax(g(x) / tau); the teacher's output is centred first:
    "g_t(x) <- g_t(x) + c" with c the running mean of its outputs (Eq. 4),
    i.e. the centre is subtracted. The teacher's side carries no gradient.

    Args:
        student: V logits (B, K); view i of the student is the same crop as
            teacher view i for i < len(teacher) (global crops first).
        teacher: G logits (B, K) of the global crops.
        center: (K,) or (1, K) running centre of the teacher's logits.
        student_temperature, teacher_temperature: tau_s and tau_t (the paper's 0.1 and 0.04-0.07).
    """
    if not 1 <= len(teacher) <= len(student) or len(student) < 2:
        raise ValueError(f"need >= 2 student views and 1..V teacher views, got {len(student)} and {len(teacher)}")
    targets = [F.softmax((t.detach().float() - center) / teacher_temperature, dim=1) for t in teacher]  # G x (B, K)
    log_p = [F.log_softmax(s.float() / student_temperature, dim=1) for s in student]  # V x (B, K)
    terms = [-(q * lp).sum(dim=1).mean() for i, q in enumerate(targets) for v, lp in enumerate(log_p) if v != i]
    return torch.stack(terms).mean()


@torch.no_grad()
def update_center(center: torch.Tensor, teacher: Sequence[torch.Tensor], momentum: float = 0.9) -> torch.Tensor:
    """c <- m c + (1 - m) mean of the teacher's logits over the batch (Eq. 4), in place; returns ``center``.

    "The center c is updated with an exponential moving average, which allows
    the approach to work well across different batch sizes": the batch mean is
    taken over every rank's batch (sum and count all-reduced).
    """
    logits = torch.cat([t.detach().float() for t in teacher])  # (G*B, K)
    stats = torch.cat([logits.sum(dim=0), logits.new_tensor([logits.shape[0]])])  # (K + 1,) sum, then count
    all_reduce(stats)
    batch_mean = stats[:-1] / stats[-1]  # (K,)
    return center.mul_(momentum).add_(batch_mean.view_as(center), alpha=1.0 - momentum)
