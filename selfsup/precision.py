"""Which float type the heavy work runs in, decided in one place for training and evaluation alike."""
from __future__ import annotations

from contextlib import nullcontext
from typing import ContextManager, Literal

import torch

from selfsup.hardware import cpu_has_fast_bf16
from selfsup.registry import InputError

Precision = Literal["auto", "fp32", "bf16"]


def autocast_dtype(precision: Precision, device: torch.device | str) -> torch.dtype | None:
    """bf16 where asked, or for ``auto`` where the hardware runs it fast (CUDA with bf16, CPUs whose
    flags include ``amx_bf16`` or ``avx512_bf16``); None (plain fp32) otherwise."""
    if precision not in ("auto", "fp32", "bf16"):
        raise InputError(f"precision must be 'auto', 'fp32' or 'bf16', got {precision!r}")
    device = torch.device(device)
    if precision == "fp32":
        return None
    if precision == "bf16":
        return torch.bfloat16
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else None
    return torch.bfloat16 if cpu_has_fast_bf16() else None


def resolved(precision: Precision, device: torch.device | str) -> Literal["fp32", "bf16"]:
    """``precision`` with ``auto`` decided for ``device``: the name results files record."""
    return "bf16" if autocast_dtype(precision, device) == torch.bfloat16 else "fp32"


def autocast(device: torch.device | str, dtype: torch.dtype | None) -> ContextManager:
    """``torch.autocast`` to ``dtype`` on ``device``'s type; a no-op context for None (fp32)."""
    device = torch.device(device)
    return torch.autocast(device.type, dtype=dtype) if dtype is not None else nullcontext()
