"""Small validators for constructor arguments: each raises ValueError naming the argument and what it must be."""
from __future__ import annotations

import math
from typing import Sequence


def number(name: str, value: float, low: float = -math.inf, high: float = math.inf) -> float:
    """A real number in [low, high] (bools are not numbers here)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        raise ValueError(f"{name} must be a number in [{low}, {high}], got {value!r}")
    return float(value)


def probability(name: str, value: float) -> float:
    return number(name, value, 0.0, 1.0)


def positive(name: str, value: float) -> float:
    """A number > 0 (temperatures, epsilons)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ValueError(f"{name} must be > 0, got {value!r}")
    return float(value)


def unit_interval(name: str, value: float) -> float:
    """A number in [0, 1] (momenta)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
        raise ValueError(f"{name} must be in [0, 1], got {value!r}")
    return float(value)


def count(name: str, value: int, at_least: int = 0) -> int:
    """An int >= ``at_least`` (steps, sizes, iterations)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < at_least:
        raise ValueError(f"{name} must be an int >= {at_least}, got {value!r}")
    return value


def ordered_pair(
    name: str, value: Sequence[float], low: float, high: float, low_open: bool = False
) -> tuple[float, float]:
    """A (lo, hi) range with lo <= hi inside [low, high] ((low, high] when ``low_open``)."""
    ok = isinstance(value, (tuple, list)) and len(value) == 2
    ok = ok and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
    if ok:
        lo, hi = float(value[0]), float(value[1])
        ok = (lo > low if low_open else lo >= low) and lo <= hi <= high
    if not ok:
        bound = f"{'(' if low_open else '['}{low}, {high}]"
        raise ValueError(f"{name} must be an ordered pair (lo, hi) with lo <= hi inside {bound}, got {value!r}")
    return lo, hi
