"""``selfsup pictures``: one PNG per pretext task of what it sees (and, given trained runs, what it predicts)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from selfsup.registry import InputError
from selfsup.runs.pictures import DRAWERS


def _images(dataset: str, n: int) -> torch.Tensor:
    from selfsup.data import load_dataset

    ds = load_dataset(dataset, split="test")
    idx = np.linspace(0, len(ds) - 1, n).astype(int)  # spread over the split: several classes
    return torch.from_numpy(np.array(ds.images[idx])).permute(0, 3, 1, 2)  # uint8 (n, C, H, W)


def _trained_method(run_dir: Path):
    """The run's method with its final weights, built from the run's own config."""
    from selfsup.runs.folder import read_run_config
    from selfsup.train import checkpoint
    from selfsup.train.build import load_train_data, method_from_config

    cfg = read_run_config(run_dir)
    method = method_from_config(cfg, load_train_data(cfg))
    method.load_state_dict(checkpoint.load(run_dir / "last.pt")["method"])
    return method.eval(), cfg.method["name"]


def write_pictures(out_dir: str | Path, tasks: list[str] | None = None, runs: list[str] = (), n: int = 8) -> list[Path]:
    """Draw ``tasks`` (default: every pretext task) into ``out_dir``; a run of a task supplies its trained method."""
    out_dir = Path(out_dir)
    trained = dict((name, method) for method, name in map(_trained_method, map(Path, runs)))
    tasks = list(tasks or DRAWERS)
    unknown = sorted(set(tasks) - set(DRAWERS)) + sorted(set(trained) - set(DRAWERS))
    if unknown:
        raise InputError(f"no picture for {unknown}; pictures exist for {sorted(DRAWERS)}")
    written = []
    for task in tasks:
        images = _images("photos" if task == "colorization" else "fashion_mnist", n)
        with torch.no_grad():
            written.append(DRAWERS[task](images, out_dir / f"{task}.png", method=trained.get(task)))
    return written
