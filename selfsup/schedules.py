"""Per-step schedules, computed once as arrays (easy to plot, test and resume)."""
from __future__ import annotations

import numpy as np


def warmup_cosine(peak: float, steps: int, warmup_steps: int = 0, final: float = 0.0, start: float = 0.0) -> np.ndarray:
    """Linear warm-up from ``start`` to ``peak`` over ``warmup_steps``, then cosine decay to ``final``.

    Returns one value per step, shape (steps,).
    """
    if not 0 <= warmup_steps <= steps:
        raise ValueError(f"warmup_steps={warmup_steps} must be in [0, steps={steps}]")
    warm = np.linspace(start, peak, warmup_steps, endpoint=False)
    t = np.arange(steps - warmup_steps) / max(1, steps - warmup_steps)  # 0 .. 1 (exclusive)
    cos = final + 0.5 * (peak - final) * (1 + np.cos(np.pi * t))
    return np.concatenate([warm, cos])


def ema_momentum(base: float, steps: int) -> np.ndarray:
    """BYOL's target momentum: 1 - (1 - base) * (cos(pi k / K) + 1) / 2, rising from ``base`` to 1."""
    return warmup_cosine(peak=base, steps=steps, final=1.0)
