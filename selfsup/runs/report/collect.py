"""Run folders -> plain dicts: one record per run with its grid coordinates and headline numbers.

A record reads only what ``selfsup train``, ``selfsup eval`` and ``selfsup grid``
leave in a run folder (config.yaml, done.json, metrics.jsonl, eval.json,
cell.json), so runs trained by hand and grid cells are reported alike.
"""
from __future__ import annotations

import json
from pathlib import Path

import yaml

from selfsup.registry import InputError
from selfsup.train.metrics_log import METRICS, read_records

RUN_MARKER = "config.yaml"


def find_runs(root: str | Path, exclude: Path | None = None) -> list[Path]:
    """Every run folder under ``root`` (a folder with config.yaml), sorted; ``root`` itself may be one."""
    root = Path(root)
    found = []
    for marker in sorted(root.rglob(RUN_MARKER)):
        run = marker.parent
        if exclude is not None and (run == exclude or exclude in run.parents):
            continue
        if "features" in run.relative_to(root).parts:
            continue
        found.append(run)
    return found


def _json(path: Path) -> dict:
    try:
        return json.loads(path.read_text()) if path.exists() else {}
    except json.JSONDecodeError:
        return {}


def read_metrics(run_dir: str | Path) -> list[dict]:
    """The records of a run's metrics.jsonl (empty when absent; a torn last line dropped with a warning)."""
    return read_records(Path(run_dir) / METRICS)


def training_minutes(records: list[dict], batch_size: int) -> float | None:
    """Training time estimated from the logged throughput (each record covers the steps since the previous one)."""
    total, prev = 0.0, 0
    for r in records:
        if r.get("img_per_s"):  # probe records carry no throughput and do not split the window
            total += (r["step"] - prev) * batch_size / r["img_per_s"]
            prev = r["step"]
    return total / 60 if total else None


def read_run(run_dir: str | Path) -> dict:
    """One run as a flat dict: coordinates (method, backbone, width, seed), headline numbers, and the raw eval.json.

    A folder whose config.yaml or metrics.jsonl cannot be read gives only name, dir and ``broken`` (why), so
    a report lists it as broken rather than failing for every run.
    """
    run_dir = Path(run_dir)
    try:
        return _read_run(run_dir)
    except (InputError, yaml.YAMLError, OSError, AttributeError, TypeError, ValueError) as err:
        reason = f"{type(err).__name__}: {err}".splitlines()[0]
        return {"name": run_dir.name, "dir": str(run_dir), "broken": reason}


def _read_run(run_dir: Path) -> dict:
    cfg = yaml.safe_load((run_dir / RUN_MARKER).read_text()) or {}
    if not isinstance(cfg, dict):
        raise InputError(f"{run_dir / RUN_MARKER} does not hold a mapping")
    cell = _json(run_dir / "cell.json")
    done = _json(run_dir / "done.json")
    results = _json(run_dir / "eval.json")
    baseline = _json(run_dir / "eval_random_init.json")
    val = _json(run_dir / "eval_val.json")
    backbone = cfg.get("backbone") or {}
    train = cfg.get("train") or {}
    records = read_metrics(run_dir)
    nmi = _first_nmi(results)
    pretext = results.get("pretext_acc")
    if pretext is None:
        accs = [r["pretext_acc"] for r in records if "pretext_acc" in r]
        pretext = sum(accs[-5:]) / len(accs[-5:]) if accs else None
    minutes = (cell["train_seconds"] / 60 if "train_seconds" in cell
               else training_minutes(records, train.get("batch_size", 0)))
    return {
        "name": run_dir.name,
        "dir": str(run_dir),
        "method": cell.get("method") or (cfg.get("method") or {}).get("name", "?"),
        "backbone": backbone.get("name", "?"),
        "width": float(backbone.get("width", 1.0)),
        "seed": int(train.get("seed", 0)),
        "dataset": (cfg.get("data") or {}).get("name"),
        "finished": bool(done),
        "steps": done.get("steps") or (records[-1]["step"] if records else None),
        "minutes": minutes,
        "knn_top1": results.get("knn_top1"),
        "linear_top1": results.get("linear_top1"),
        "pretext_acc": pretext,
        "nmi": nmi,
        "eval": results,
        "val": {"knn_top1": val.get("knn_top1"), "linear_top1": val.get("linear_top1"), "nmi": _first_nmi(val)},
        "random_init": {"knn_top1": baseline.get("knn_top1"), "linear_top1": baseline.get("linear_top1"),
                        "nmi": _first_nmi(baseline)} if baseline else None,
        "failed": (run_dir / "error.txt").exists(),
        "broken": None,
    }


def _first_nmi(results: dict) -> float | None:
    clustering = results.get("clustering") or {}
    return next(iter(clustering.values()), {}).get("nmi")  # k = number of classes comes first


def read_failures(root: str | Path) -> list[dict]:
    """Cells that ``selfsup grid`` recorded as failed, from every grid_status.json under ``root``."""
    out = []
    for status_file in sorted(Path(root).rglob("grid_status.json")):
        for name, rec in (_json(status_file).get("cells") or {}).items():
            if rec.get("status") == "failed":
                out.append({"cell": name, "grid": str(status_file.parent), "error": rec.get("error", "")})
    return out
