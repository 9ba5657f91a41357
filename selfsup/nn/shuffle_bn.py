"""Shuffling BN (MoCo, arXiv:1911.05722, Sec. 3.3): keep a key's BN statistics apart from its query's.

"We shuffle the sample order in the current mini-batch before distributing it
among GPUs (and shuffle back after encoding); the sample order of the mini-batch
for the query encoder is not altered." Without it, "the model appears to 'cheat'
the pretext task": a query and its key normalised with the same batch statistics
leak which sample is the positive.

- Distributed run: the keys of all ranks are gathered, permuted with one
  permutation broadcast from rank 0, encoded on the rank that holds them after
  the shuffle, gathered back and un-shuffled.
- One process with ``groups`` > 1: the emulation of ``groups`` devices. Queries
  are encoded in ``groups`` contiguous chunks (one BN batch each), keys in
  ``groups`` chunks of a random permutation, then put back in order.
- One process with ``groups`` == 1: no shuffling; BN sees the whole batch.
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.distributed as dist

from selfsup.nn.distributed import gather, rank, world_size

Encoder = Callable[[torch.Tensor], torch.Tensor]


def grouped_forward(encoder: Encoder, x: torch.Tensor, groups: int = 1) -> torch.Tensor:
    """``encoder`` on ``groups`` contiguous chunks of ``x`` (B, ...), each its own BN batch; (B, D)."""
    if groups == 1 or world_size() > 1:  # across ranks each rank already is one group
        return encoder(x)
    _check_groups(x.shape[0], groups)
    return torch.cat([encoder(c) for c in x.chunk(groups)])


@torch.no_grad()
def shuffled_forward(encoder: Encoder, x: torch.Tensor, groups: int = 1) -> torch.Tensor:
    """``encoder`` (a key encoder, no gradients) on ``x`` (B, ...) with BN batches shuffled; (B, D) in input order."""
    if world_size() > 1:
        b = x.shape[0]
        x_all = gather(x)  # (W*B, ...)
        perm = torch.randperm(x_all.shape[0], device=x.device)
        dist.broadcast(perm, src=0)  # every rank must use the same permutation
        mine = perm[rank() * b : (rank() + 1) * b]
        y_all = gather(encoder(x_all[mine]))  # (W*B, D) in shuffled order
        return y_all[torch.argsort(perm)][rank() * b : (rank() + 1) * b]
    if groups == 1:
        return encoder(x)
    _check_groups(x.shape[0], groups)
    perm = torch.randperm(x.shape[0], device=x.device)
    y = torch.cat([encoder(c) for c in x[perm].chunk(groups)])  # (B, D) in shuffled order
    return y[torch.argsort(perm)]


def _check_groups(batch: int, groups: int) -> None:
    if groups < 1 or batch % groups or batch // groups < 2:
        raise ValueError(f"shuffle_bn_groups={groups} must divide the batch of {batch} into groups of >= 2 samples")
