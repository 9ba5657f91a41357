"""Losses run in float32 even inside the loop's bf16 autocast region."""
from __future__ import annotations

import functools
from typing import Callable, TypeVar

import torch

F = TypeVar("F", bound=Callable)


def float32_loss(fn: F) -> F:
    """Run ``fn`` with autocast off on its tensors' device, so its matmuls stay float32.

    Casting inputs with ``.float()`` is not enough: autocast recasts the operands
    of every matmul to bf16, and a bf16 cross-correlation or covariance matrix
    (8-bit mantissa, sums over the batch) is too coarse for Barlow Twins' and
    VICReg's terms.
    """

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        device = next((a.device.type for a in args if isinstance(a, torch.Tensor)), "cpu")
        with torch.autocast(device, enabled=False):
            return fn(*args, **kwargs)

    return wrapper  # type: ignore[return-value]
