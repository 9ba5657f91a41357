"""``selfsup demo``: a few minutes of SimCLR on Fashion-MNIST, then the verdict.

The table compares the trained encoder with two baselines every representation
must beat: the same encoder at random init, and the raw pixels. Its figures are
the run's ordinary results (``eval.json``, ``eval_random_init.json``, the pixels
under ``raw_pixels`` in ``eval.json``), so ``selfsup report`` shows the demo like any run.
"""
from __future__ import annotations

import json
import time

from selfsup.config import RunConfig
from selfsup.eval.frozen import evaluate_pixels
from selfsup.runs.evaluate import eval_file, evaluate_run
from selfsup.train.build import load_checked_config, load_train_data
from selfsup.train.loop import train

PROTOCOLS = ("knn", "linear")


def run_demo(overrides: list[str] = (), out_dir: str = "runs") -> dict:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    cfg = load_checked_config("demo", [f"out_dir={out_dir}", f"name=demo-{stamp}", *overrides])
    print(f"selfsup demo: {cfg.method['name']} on {cfg.data.name}, {cfg.backbone['name']} "
          f"(width {cfg.backbone.get('width', 1.0)}), {cfg.train.steps} steps of {cfg.train.batch_size} images")
    t0 = time.perf_counter()
    run_dir = train(cfg)
    train_minutes = (time.perf_counter() - t0) / 60

    print("evaluating on the full training and test splits (kNN, then the L-BFGS linear probe)...")
    protocols = PROTOCOLS if cfg.eval.linear else PROTOCOLS[:1]
    trained = evaluate_run(run_dir, protocols, progress=False)
    random_init = evaluate_run(run_dir, protocols, random_init=True, progress=False)
    e = cfg.eval
    pixels = evaluate_pixels(load_train_data(cfg, split=cfg.data.split),
                             load_train_data(cfg, split=cfg.data.eval_split), knn_k=e.knn_k,
                             knn_temperature=e.knn_temperature, linear=e.linear, seed=cfg.train.seed)
    trained["raw_pixels"] = pixels
    eval_file(run_dir).write_text(json.dumps(trained, indent=2))
    rows = {f"{cfg.method['name']}-trained encoder ({train_minutes:.1f} min)": trained,
            "same encoder, random init": random_init, "raw pixels": pixels}
    table = format_table(rows, cfg)
    print("\n" + table)
    (run_dir / "demo.md").write_text(table + "\n")
    learned, *baselines = rows.values()
    beats = all(learned[k] > b[k] for b in baselines for k in ("knn_top1", "linear_top1") if k in learned)
    print("\nThe learned representation beats both baselines." if beats else
          "\nThe learned representation does NOT beat both baselines: train longer (train.steps=...).")
    print(f"run folder: {run_dir} (selfsup report {out_dir} shows it beside your other runs)")
    return rows


def format_table(rows: dict, cfg: RunConfig) -> str:
    e = cfg.eval
    lines = [f"{cfg.data.name} {cfg.data.eval_split} split; kNN: k={e.knn_k}, T={e.knn_temperature}, cosine; "
             "linear: L-BFGS logistic regression, L2 chosen on a held-out 10% of the training split.", "",
             "| representation | dims | kNN top-1 | linear top-1 |", "|---|---:|---:|---:|"]
    for name, r in rows.items():
        lin = f"{r['linear_top1']:.2f}" if "linear_top1" in r else "-"
        lines.append(f"| {name} | {r['dims']} | {r['knn_top1']:.2f} | {lin} |")
    return "\n".join(lines)
