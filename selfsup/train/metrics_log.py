"""A run's metrics.jsonl: one JSON record per line, appended while it trains.

A process killed mid-write leaves a torn last line; readers drop it with a warning naming
the file, so ``--resume`` and ``selfsup report`` go on. A bad line anywhere else is damage
we cannot explain, and an error naming the file and line.
"""
from __future__ import annotations

import json
import warnings
from pathlib import Path

from selfsup.registry import InputError

METRICS = "metrics.jsonl"


def read_records(path: str | Path) -> list[dict]:
    """The records of a metrics.jsonl (empty when absent), without a torn last line."""
    path = Path(path)
    if not path.exists():
        return []
    lines = [(n, line) for n, line in enumerate(path.read_text().splitlines(), 1) if line.strip()]
    records = []
    for i, (n, line) in enumerate(lines):
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            record = None
        if isinstance(record, dict):
            records.append(record)
        elif i == len(lines) - 1:
            warnings.warn(f"{path}: dropped its torn last line {n} (the process was killed while writing it)",
                          stacklevel=2)
        else:
            raise InputError(f"{path} line {n} is not a JSON record: {line[:80]!r}")
    return records


def truncate(path: str | Path, step: int) -> None:
    """Keep the records up to ``step`` (a resumed run logs the later ones again), dropping a torn last line."""
    path = Path(path)
    if path.exists():
        keep = [r for r in read_records(path) if r.get("step", 0) <= step]
        path.write_text("".join(json.dumps(r) + "\n" for r in keep))
