"""A FIFO queue of past keys, kept as buffers so a checkpoint carries it (MoCo's dictionary)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class FeatureQueue(nn.Module):
    """The K most recent keys, oldest overwritten first.

    MoCo (arXiv:1911.05722, Sec. 3.2): "The samples in the dictionary are
    progressively replaced. The current mini-batch is enqueued to the dictionary,
    and the oldest mini-batch in the queue is removed." The queue starts as random
    unit vectors, as in the paper's released code; they are pushed out after
    K / batch steps. Unlike that code, K need not be a multiple of the batch size:
    a batch that runs past the end wraps around to the front.
    """

    features: torch.Tensor
    ptr: torch.Tensor

    def __init__(self, size: int, dim: int):
        super().__init__()
        if size <= 0:
            raise ValueError(f"queue size must be positive, got {size}")
        self.register_buffer("features", F.normalize(torch.randn(size, dim), dim=1))  # (K, dim)
        self.register_buffer("ptr", torch.zeros((), dtype=torch.long))  # next row to overwrite

    def __len__(self) -> int:
        return self.features.shape[0]

    @torch.no_grad()
    def enqueue(self, keys: torch.Tensor) -> None:
        """Write ``keys`` (N, dim) over the N oldest rows, wrapping around the end."""
        k = len(self)
        if keys.ndim != 2 or keys.shape[1] != self.features.shape[1]:
            raise ValueError(f"keys must be (N, {self.features.shape[1]}), got {tuple(keys.shape)}")
        if keys.shape[0] > k:
            keys = keys[-k:]  # only the newest K survive a batch longer than the queue
        n = keys.shape[0]
        rows = (int(self.ptr) + torch.arange(n, device=keys.device)) % k  # (N,)
        self.features[rows] = keys.to(self.features.dtype)
        self.ptr.fill_((int(self.ptr) + n) % k)
