"""Config tuning on the validation split: variants of a method's bundled config, trained as leaderboard cells are.

``selfsup grid tune`` trains the variants of ``selfsup/configs/grids/tune.yaml`` under the leaderboard's budget
and overrides, and scores them on the validation split only (the grid then runs with the test split locked).
``selfsup tuning runs/grids/tune`` writes one result file per finished variant into ``docs/results/tuning/``,
beside a copy of the method's leaderboard cell as it stood when its first variant was collected (the config
before tuning), and generates ``docs/tuning.md``: per method, each config's differences from the one before
tuning and its validation figures. A variant that beats the bundled config on validation kNN becomes the
bundled config, and its leaderboard cell is trained again.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from selfsup.registry import InputError
from selfsup.runs.report import leaderboard as lb

RESULTS_DIR = lb.ROOT / "docs" / "results" / "tuning"
DOC = lb.ROOT / "docs" / "tuning.md"
BOOKKEEPING = {"name", "out_dir", "train.steps", "train.warmup_steps"}  # differ between cells by construction


def flat(tree: dict, prefix: str = "") -> dict[str, Any]:
    """``{"train": {"lr": 0.3}}`` -> ``{"train.lr": 0.3}``."""
    out = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            out.update(flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def differences(config: dict, reference: dict) -> dict[str, Any]:
    """The keys of ``config`` whose values differ from ``reference``'s (a key it lacks: None), bookkeeping aside."""
    a, b = flat(config), flat(reference)
    return {k: a.get(k) for k in sorted((set(a) | set(b)) - BOOKKEEPING) if a.get(k) != b.get(k)}


def collect(grid_dir: Path, results_dir: Path = RESULTS_DIR, leaderboard_dir: Path = lb.RESULTS_DIR,
            print_fn=print) -> list[Path]:
    """A result file per finished variant under ``grid_dir``, and the leaderboard cell each is compared with."""
    results_dir = Path(results_dir)
    written = []
    for run_dir in lb.finished_cells(grid_dir, results_dir, "tune", ("val",), print_fn):
        record = {**lb.cell_result(run_dir, ("val",)), "kind": "variant"}
        record["label"] = record.pop("method")
        record["method"] = record["config"]["method"]["name"]
        written.append(lb.write_result(results_dir / f"{run_dir.name}.json", record))
        before = results_dir / f"{record['method']}-before.json"
        if not before.exists():  # kept from the first collection on: the bundled config before tuning
            cell = _leaderboard_cell(Path(leaderboard_dir), record["method"])
            record = {**cell, "kind": "before", "label": "leaderboard cell before tuning"}
            written.append(lb.write_result(before, record))
    return written


def _leaderboard_cell(leaderboard_dir: Path, method: str) -> dict:
    cell = lb.seed_zero_cell(lb.read_results(leaderboard_dir), method)
    if cell is None:
        raise InputError(f"{leaderboard_dir}: no seed-0 leaderboard cell of {method!r} to compare its variants with "
                         f"(run `selfsup grid leaderboard --only '{method}-*'` first)")
    return cell


def read_results(results_dir: Path = RESULTS_DIR) -> dict[str, list[dict]]:
    """Method -> its config before tuning, then its variants."""
    groups: dict[str, list[dict]] = {}
    for path in sorted(Path(results_dir).glob("*.json")):
        record = json.loads(path.read_text())
        groups.setdefault(record["method"], []).append(record)
    return {m: sorted(rs, key=lambda r: r["kind"] != "before") for m, rs in sorted(groups.items())}


def _value(v: Any) -> str:
    return "null" if v is None else json.dumps(v) if isinstance(v, list) else str(v)


def table(records: list[dict], bundled: dict | None) -> str:
    """One method's configs: differences from the one before tuning, validation figures, which is bundled now."""
    before = next((r for r in records if r["kind"] == "before"), records[0])
    best = max(records, key=lambda r: r["val"].get("knn_top1", 0.0))
    lines = ["| config | differs from the config before tuning | steps | trained on | val kNN | val linear "
             "| val 10% labels | bundled now |", "|---|---|---:|---|---:|---:|---:|:---:|"]
    for r in records:
        diff = differences(r["config"], before["config"])
        changes = ", ".join(f"`{k}={_value(v)}`" for k, v in diff.items()) or "-"
        knn, linear, few = (r["val"].get(k) for k in ("knn_top1", "linear_top1", "fewshot_10%"))
        figure = "-" if knn is None else f"**{knn:.2f}**" if r is best else f"{knn:.2f}"
        now = bundled is not None and not differences(r["config"], bundled["config"])
        lines.append(f"| {r['label']} | {changes} | {r['steps']} | {lb.cpus([r])} | {figure} | " + " | ".join(
            "-" if v is None else f"{v:.2f}" for v in (linear, few)) + f" | {'yes' if now else ''} |")
    return "\n".join(lines)


def write_docs(results_dir: Path = RESULTS_DIR, doc: Path = DOC, leaderboard_dir: Path = lb.RESULTS_DIR) -> None:
    """docs/tuning.md from the result files; "bundled now" compares with the current leaderboard cell's config."""
    groups = read_results(results_dir)
    if not groups:
        raise InputError(f"{results_dir}: no result files (run `selfsup tuning GRID_DIR` on a finished grid)")
    board = lb.read_results(leaderboard_dir)
    parts = [TUNING_HEAD]
    for method, records in groups.items():
        parts.append(f"## {method}\n\n{table(records, lb.seed_zero_cell(board, method))}")
    parts.append(TUNING_TAIL)
    Path(doc).write_text("\n\n".join(parts) + "\n")


TUNING_HEAD = """# Tuning on the validation split

<!-- generated by `selfsup tuning` from docs/results/tuning/*.json: edit those, not this file -->

Variants of the bundled configs, each trained as a [leaderboard](leaderboard.md) cell is (same overrides,
ResNet-18 v1 x0.25, and the step count the leaderboard's budget of minutes gave that method's cell, since
the CPU changes between sessions and 15 minutes with it) by
[`selfsup/configs/grids/tune.yaml`](../selfsup/configs/grids/tune.yaml), and scored on the validation split
only: that grid runs with the test split locked, so no choice here has seen a test image. Each method's first
row is its leaderboard cell as it stood before its variants; the best validation kNN is in bold. A variant
that wins becomes the bundled config ("bundled now": the current leaderboard cell was trained with it), and
the leaderboard cell is trained again to report its test figures."""

TUNING_TAIL = """Reproduce: `selfsup grid tune` (resumable), then `selfsup tuning runs/grids/tune` writes the result
files and regenerates this page; `selfsup tuning` with no folder only regenerates it."""
