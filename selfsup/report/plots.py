"""Figures of evaluation results, each a function of plain dicts that writes one PNG (usable from notebooks too).

Inputs are what ``selfsup eval`` writes beside a run (eval.json, invariance.npz,
metrics.jsonl), keyed by a label such as "pirl / resnet18_v1".
"""
from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def _save(fig, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def layer_curves(results: dict[str, dict], path: str | Path) -> Path:
    """Linear-probe top-1 against depth, one line per run (``results[label]["layers"]`` from eval.json)."""
    fig, ax = plt.subplots(figsize=(6, 3.6))
    for label, r in results.items():
        layers = r["layers"]
        ax.plot(list(layers), [v["top1"] for v in layers.values()], marker="o", label=label)
    ax.set_xlabel("layer (shallow to deep)")
    ax.set_ylabel("linear probe top-1 (%)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, path)


def invariance_histograms(distances: dict[str, np.ndarray], path: str | Path, transform: str = "jigsaw",
                          metric: str = "L2 distance") -> Path:
    """Overlaid histograms of per-image distances between f(x) and f(t(x)), one per encoder (PIRL, Fig. 3)."""
    fig, ax = plt.subplots(figsize=(6, 3.6))
    hi = max(float(np.max(d)) for d in distances.values())
    bins = np.linspace(0, hi * 1.02 + 1e-9, 40)
    for label, d in distances.items():
        ax.hist(d, bins=bins, alpha=0.5, label=f"{label} (mean {np.mean(d):.3f})")
    ax.set_xlabel(f"{metric} between normalized representations of x and {transform}(x)")
    ax.set_ylabel("images")
    ax.legend(fontsize=8)
    return _save(fig, path)


def read_invariance(run_dir: str | Path, transform: str = "jigsaw", metric: str = "l2", suffix: str = "") -> np.ndarray:
    """The per-image distances ``selfsup eval --protocol invariance`` stored beside a run."""
    with np.load(Path(run_dir) / f"invariance{suffix}.npz") as f:
        return f[f"{transform}_{metric}"]


def training_curves(runs: dict[str, str | Path], path: str | Path, key: str = "loss") -> Path:
    """``key`` from each run's metrics.jsonl against the step."""
    fig, ax = plt.subplots(figsize=(6, 3.6))
    for label, run_dir in runs.items():
        records = [json.loads(line) for line in (Path(run_dir) / "metrics.jsonl").read_text().splitlines() if line]
        points = [(r["step"], r[key]) for r in records if key in r]
        if points:
            ax.plot(*zip(*points), label=label)
    ax.set_xlabel("step")
    ax.set_ylabel(key)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, path)


def pretext_vs_linear(points: dict[str, tuple[float, float]], path: str | Path) -> Path:
    """Each pretext run's own accuracy against its linear-probe accuracy (do they correlate?)."""
    fig, ax = plt.subplots(figsize=(5, 4))
    for label, (pretext, linear) in points.items():
        ax.scatter(pretext, linear)
        ax.annotate(label, (pretext, linear), fontsize=8, xytext=(3, 3), textcoords="offset points")
    ax.set_xlabel("pretext-task accuracy (fraction of the last logged batches)")
    ax.set_ylabel("linear probe top-1 (%)")
    ax.grid(alpha=0.3)
    return _save(fig, path)
