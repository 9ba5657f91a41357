"""The report's tables as plain rows (lists of strings), and their Markdown and HTML renderings.

A "backbone" in rankings is an architecture at one width (``resnet50_v2 x2``):
"Revisiting" (Kolesnikov et al. 2019) shows that the ranking of methods can
change with the architecture, and asks how stable it is; the rank correlations
between the per-backbone orders answer that.
"""
from __future__ import annotations

import html
import math
from collections import defaultdict

import numpy as np

RESULT_COLUMNS = [  # header, record key, format
    ("method", "method", "{}"), ("backbone", "backbone", "{}"), ("width", "width", "{:g}"), ("seed", "seed", "{}"),
    ("kNN top-1 %", "knn_top1", "{:.1f}"), ("linear top-1 %", "linear_top1", "{:.1f}"),
    ("pretext acc", "pretext_acc", "{:.3f}"), ("clustering NMI", "nmi", "{:.3f}"), ("steps", "steps", "{}"),
    ("minutes", "minutes", "{:.2f}"),
]


def fmt(value, pattern: str = "{}") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return pattern.format(value)


def backbone_key(run: dict) -> str:
    return f"{run['backbone']} x{run['width']:g}"


def results_rows(runs: list[dict]) -> tuple[list[str], list[list[str]]]:
    """One row per run, sorted by backbone, width, method and seed, after each architecture's random-init row.

    Random-init rows come from runs with an ``eval_random_init.json`` (one per backbone, width and seed):
    the baseline a pre-training must beat.
    """
    baselines = {}
    for r in runs:
        if r.get("random_init"):
            baselines.setdefault((r["backbone"], r["width"], r["seed"]), {
                **r, **r["random_init"], "method": "(random init)", "pretext_acc": None, "steps": 0, "minutes": None})
    rows = sorted([*runs, *baselines.values()],
                  key=lambda r: (r["backbone"], r["width"], r["method"] != "(random init)", r["method"], r["seed"]))
    return [c[0] for c in RESULT_COLUMNS], [[fmt(r[key], f) for _, key, f in RESULT_COLUMNS] for r in rows]


def choose_metric(runs: list[dict], metric: str = "auto") -> str | None:
    """``linear_top1`` when every evaluated run has it, else ``knn_top1``; None when no run has either."""
    if metric != "auto":
        return metric if any(r.get(metric) is not None for r in runs) else None
    scored = [r for r in runs if r.get("knn_top1") is not None or r.get("linear_top1") is not None]
    if not scored:
        return None
    return "linear_top1" if all(r.get("linear_top1") is not None for r in scored) else "knn_top1"


def mean_scores(runs: list[dict], metric: str, group: str) -> dict[str, dict[str, float]]:
    """``{group value: {other value: score averaged over seeds}}``; group is "backbone" or "method"."""
    acc: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for r in runs:
        if r.get(metric) is None:
            continue
        b, m = backbone_key(r), r["method"]
        outer, inner = (b, m) if group == "backbone" else (m, b)
        acc[outer][inner].append(float(r[metric]))
    return {g: {k: float(np.mean(v)) for k, v in inner.items()} for g, inner in sorted(acc.items())}


def ranking_rows(scores: dict[str, dict[str, float]], what: str) -> tuple[list[str], list[list[str]]]:
    """One row per group: its items ordered best first, with their scores."""
    rows = []
    for group, items in scores.items():
        ordered = sorted(items.items(), key=lambda kv: -kv[1])
        rows.append([group, " > ".join(f"{k} ({v:.1f})" for k, v in ordered)])
    return ["", f"{what}, best first (score)"], rows


def rank_correlations(scores: dict[str, dict[str, float]], kind: str = "kendall") -> tuple[list[str], np.ndarray]:
    """Pairwise rank correlation of the groups' orders over the items they share (NaN under 2 shared items).

    ``kind``: "kendall" (tau-b) or "spearman".
    """
    from scipy import stats

    if kind not in ("kendall", "spearman"):
        raise ValueError(f"kind must be 'kendall' or 'spearman', got {kind!r}")
    labels = list(scores)
    n = len(labels)
    out = np.full((n, n), np.nan)
    for i in range(n):
        for j in range(n):
            shared = sorted(set(scores[labels[i]]) & set(scores[labels[j]]))
            if len(shared) < 2:
                continue
            a = [scores[labels[i]][k] for k in shared]
            b = [scores[labels[j]][k] for k in shared]
            if i == j:
                out[i, j] = 1.0
                continue
            fn = stats.kendalltau if kind == "kendall" else stats.spearmanr
            out[i, j] = fn(a, b)[0]
    return labels, out


def markdown_table(headers: list[str], rows: list[list[str]]) -> str:
    def cell(s: str) -> str:  # run names are user text: no HTML gets through to a Markdown renderer
        return html.escape(str(s), quote=False).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(cell(h) for h in headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def html_table(headers: list[str], rows: list[list[str]], table_id: str) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>\n" for row in rows)
    return f'<table id="{html.escape(table_id)}">\n<thead><tr>{head}</tr></thead>\n<tbody>\n{body}</tbody>\n</table>'
