"""Figures of evaluation results, each a function of plain dicts that writes one PNG (usable from notebooks too).

Inputs are what ``selfsup eval`` writes beside a run (eval.json, invariance.npz,
metrics.jsonl), keyed by a label such as "pirl / resnet18_v1".
"""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from selfsup.train.metrics_log import METRICS, read_records  # noqa: E402


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
    """Overlaid histograms of per-image distances between f(x) and f(t(x)), one per encoder (PIRL, Fig. 3).

    ``metric="relative"``: the distances divided by the encoder's mean distance between two images
    (the ``*_relative`` arrays of invariance.npz), which compares encoders of different spreads.
    """
    fig, ax = plt.subplots(figsize=(6, 3.6))
    hi = max(float(np.max(d)) for d in distances.values())
    bins = np.linspace(0, hi * 1.02 + 1e-9, 40)
    for label, d in distances.items():
        ax.hist(d, bins=bins, alpha=0.5, label=f"{label} (mean {np.mean(d):.3f})")
    if metric == "relative":
        ax.set_xlabel(f"L2(x, {transform}(x)) / mean L2 between two images (normalized representations)", fontsize=9)
    else:
        ax.set_xlabel(f"{metric} between normalized representations of x and {transform}(x)", fontsize=9)
    ax.set_ylabel("images")
    ax.legend(fontsize=8)
    return _save(fig, path)


def read_invariance(run_dir: str | Path, transform: str = "jigsaw", metric: str = "l2", suffix: str = "") -> np.ndarray:
    """The per-image distances ``selfsup eval --protocol invariance`` stored beside a run."""
    with np.load(Path(run_dir) / f"invariance{suffix}.npz") as f:
        return f[f"{transform}_{metric}"]


def training_curves(runs: dict[str, str | Path], path: str | Path, key: str = "loss", title: str | None = None) -> Path:
    """``key`` from each run's metrics.jsonl against the step."""
    fig, ax = plt.subplots(figsize=(6, 3.6))
    if title:
        ax.set_title(title, fontsize=10)
    for label, run_dir in runs.items():
        records = read_records(Path(run_dir) / METRICS)
        points = [(r["step"], r[key]) for r in records if key in r]
        if points:
            ax.plot(*zip(*points), label=label)
    ax.set_xlabel("step")
    ax.set_ylabel(key)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, path)


def probe_curves(series: dict[str, list[tuple[float, float]]], path: str | Path,
                 xlabel: str = "training minutes", ylabel: str = "online kNN top-1 on validation (%)") -> Path:
    """The online probe's ``val_knn_top1`` against training time, one line per run (docs/leaderboard.md)."""
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for label, points in series.items():
        if points:
            ax.plot(*zip(*points), marker=".", label=label)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    return _save(fig, path)


def pretext_vs_linear(points: dict[str, tuple[float, float]], path: str | Path,
                      ylabel: str = "linear probe top-1 (%)") -> Path:
    """Each pretext run's own accuracy against its linear-probe (or ``ylabel``) accuracy (do they correlate?)."""
    fig, ax = plt.subplots(figsize=(5, 4))
    for label, (pretext, linear) in points.items():
        ax.scatter(pretext, linear)
        ax.annotate(label, (pretext, linear), fontsize=8, xytext=(3, 3), textcoords="offset points")
    ax.set_xlabel("pretext-task accuracy (fraction of the last logged batches)")
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    return _save(fig, path)


def accuracy_vs_width(series: dict[str, list[tuple[float, float]]], path: str | Path,
                      ylabel: str = "top-1 (%)") -> Path:
    """Accuracy against the backbone's width multiplier, one line per (method, architecture) ("Revisiting" Fig. 4)."""
    fig, ax = plt.subplots(figsize=(6, 3.6))
    for label, points in series.items():
        widths, accs = zip(*sorted(points))
        ax.plot(widths, accs, marker="o", label=label)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("width multiplier")
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, path)


def rank_correlation_heatmaps(matrices: dict[str, tuple[list[str], np.ndarray]], path: str | Path) -> Path:
    """One heatmap per title: pairwise rank correlations in [-1, 1] (NaN cells, too few shared items, left blank)."""
    cols = min(2, len(matrices))  # two per row: a row of four left their labels and titles overlapping
    rows = -(-len(matrices) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5.4 * cols + 0.8, 4.8 * rows), squeeze=False, layout="constrained")
    for ax in axes.flat[len(matrices):]:
        ax.set_axis_off()
    for ax, (title, (labels, m)) in zip(axes.flat, matrices.items()):
        im = ax.imshow(np.ma.masked_invalid(m), vmin=-1, vmax=1, cmap="RdBu")
        ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right", fontsize=7)
        ax.set_yticks(range(len(labels)), labels, fontsize=7)
        for i in range(len(labels)):
            for j in range(len(labels)):
                if np.isfinite(m[i, j]):
                    ax.text(j, i, f"{m[i, j]:.2f}", ha="center", va="center", fontsize=7)
        ax.set_title(title.replace(": ", ":\n", 1), fontsize=9)
    fig.colorbar(im, ax=axes.flat[: len(matrices)], shrink=0.6)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def _show(ax, image: np.ndarray, colour: str | None = None) -> None:
    """A uint8 (H, W, C) image without ticks, framed in ``colour``."""
    ax.imshow(image[..., 0] if image.shape[-1] == 1 else image, cmap="gray", vmin=0, vmax=255)
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_edgecolor(colour or "black")
        spine.set_linewidth(2.5 if colour else 0.5)


def retrieval_grid(queries: np.ndarray, neighbours: np.ndarray, path: str | Path, query_labels=None,
                   neighbour_labels=None, class_names: list[str] | None = None, title: str | None = None) -> Path:
    """Query images (Q, H, W, C) in the first column, their k nearest training images (Q, k, H, W, C) beside them.

    With labels, a neighbour of the query's class is framed green, any other red.
    """
    q, k = neighbours.shape[:2]
    fig, axes = plt.subplots(q, k + 1, figsize=(0.9 * (k + 1) + 0.6, 0.9 * q + 0.5), squeeze=False)
    for i in range(q):
        _show(axes[i, 0], queries[i])
        if query_labels is not None:
            name = class_names[query_labels[i]] if class_names else str(query_labels[i])
            axes[i, 0].set_ylabel(name[:12], fontsize=7)
        for j in range(k):
            colour = None
            if query_labels is not None and neighbour_labels is not None:
                colour = "tab:green" if neighbour_labels[i][j] == query_labels[i] else "tab:red"
            _show(axes[i, j + 1], neighbours[i, j], colour)
    axes[0, 0].set_title("query", fontsize=8)
    for j in range(k):
        axes[0, j + 1].set_title(f"#{j + 1}", fontsize=8)
    if title:
        fig.suptitle(title, fontsize=9)
    return _save(fig, path)


def embedding_map(points: np.ndarray, labels, path: str | Path, class_names: list[str] | None = None,
                  title: str | None = None) -> Path:
    """A 2-D map (N, 2) of test images coloured by class (e.g. from t-SNE)."""
    fig, ax = plt.subplots(figsize=(5.6, 4.6))
    labels = np.zeros(len(points), dtype=int) if labels is None else np.asarray(labels)
    cmap = plt.get_cmap("tab10" if labels.max() < 10 else "tab20")
    for c in np.unique(labels):
        sel = labels == c
        name = class_names[c] if class_names and c < len(class_names) else str(c)
        ax.scatter(points[sel, 0], points[sel, 1], s=4, color=cmap(int(c) % cmap.N), label=name)
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, markerscale=3, loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False)
    return _save(fig, path)
