"""How much slower a training step gets when another process takes one of the cores, per thread setting.

Each setting runs in a fresh process (OpenMP reads OMP_WAIT_POLICY when it starts), times the demo's
training step (SimCLR, batch 256, ResNet-18 x0.25) after a warm-up, once on the idle machine and once
while another process holds one core: a spinning Python loop, or a one-thread PyTorch job (matrix
products, as another training would run). One JSON file per CPU and other process goes to
``docs/results/hardening/busy-CPUTAG[-torch].json``. Run it with nothing else on the machine.

    python3 scripts/busy_machine.py [--steps 12] [--settings all passive one_thread auto] [--other python|torch]
"""
from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

os.environ["SELFSUP_LOCK_TEST"] = "1"  # a timing needs no test images: the timed process inherits the lock
ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "docs" / "results" / "hardening"
DOC = ROOT / "docs" / "hardening.md"
TABLE_START, TABLE_END = "<!-- busy-machine table: scripts/busy_machine.py -->", "<!-- end busy-machine table -->"
SETTINGS = {  # name -> environment of the timed process
    "all": {"SELFSUP_THREADS": "all"},  # PyTorch's thread count: selfsup before it chose one
    "passive": {"SELFSUP_THREADS": "all", "OMP_WAIT_POLICY": "PASSIVE"},
    "one_thread": {"SELFSUP_THREADS": "1"},
    "auto": {"SELFSUP_THREADS": "auto"},  # the default
}
TIMED = """
import json, sys, time, torch
from selfsup.train.build import load_checked_config, load_train_data, make_loader, method_from_config
from selfsup.train.step import TrainStep, epoch_batches
from selfsup.hardware import choose_threads
steps = int(sys.argv[1])
choose_threads()
cfg = load_checked_config("demo", ["data.subset=4096", "train.progress=false"])
ds = load_train_data(cfg)
method = method_from_config(cfg, ds, torch.device("cpu"))
step = TrainStep(method, cfg.train)
batches = epoch_batches(make_loader(cfg, ds, torch.device("cpu")), method, ds, torch.device("cpu"))
times = []
for i in range(steps + 3):
    b = next(batches)
    t0 = time.perf_counter()
    step(b, i)
    times.append(time.perf_counter() - t0)
print(json.dumps({"seconds": times[3:], "threads": torch.get_num_threads()}))
"""


OTHERS = {  # another user's job, holding one core
    "python": "while True: pass",
    "torch": "import torch\ntorch.set_num_threads(1)\na = torch.randn(512, 512)\nwhile True: a @ a",
}


def spinner(other: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", OTHERS[other]])


def timed(setting: str, steps: int, busy: bool, other_job: str) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT), **SETTINGS[setting]}
    other = spinner(other_job) if busy else None
    try:
        time.sleep(2.0 if busy else 0)  # the other job is running (torch imported) before selfsup starts
        out = subprocess.run([sys.executable, "-c", TIMED, str(steps)], env=env, capture_output=True, text=True,
                             check=True).stdout
    finally:
        if other is not None:
            other.kill()
            other.wait()
    record = json.loads(out.strip().splitlines()[-1])
    return {"setting": setting, "busy": busy, "other": other_job, "threads": record["threads"],
            "median_s": statistics.median(record["seconds"]), "seconds": record["seconds"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    parser.add_argument("--other", default="python", choices=list(OTHERS), help="what holds the busy core")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    import torch

    from selfsup.hardware import device_name, machine_info
    from selfsup.runs.report.leaderboard import write_between_markers

    rows = []
    for setting in args.settings:
        for busy in (False, True):
            rows.append(timed(setting, args.steps, busy, args.other))
            r = rows[-1]
            print(f"{setting:10s} {'one core busy' if busy else 'idle':14s} {r['threads']} threads  "
                  f"{r['median_s']:.3f} s/step", flush=True)
    idle = {r["setting"]: r["median_s"] for r in rows if not r["busy"]}
    fastest_idle = min(idle.values())
    for r in rows:
        r["vs_fastest_idle"] = r["median_s"] / fastest_idle
    cpu = re.sub(r"[^a-z0-9]+", "-", re.sub(r"\((r|tm)\)", "", device_name(torch.device("cpu")).lower())).strip("-")
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"busy-{cpu}{'' if args.other == 'python' else '-' + args.other}.json"
    path.write_text(json.dumps({"measured": time.strftime("%Y-%m-%d %H:%M"), "machine": machine_info(
        torch.device("cpu")), "cores": os.cpu_count(), "steps": args.steps, "rows": rows}, indent=1))
    print(f"wrote {path}")
    write_between_markers(DOC, TABLE_START, TABLE_END, table(sorted(RESULTS.glob("busy-*.json"))), "busy-machine table")
    print(f"table written: {DOC}")


def table(paths: list[Path]) -> str:
    """docs/hardening.md's table, from every CPU's result file."""
    lines = ["| CPU | the busy core runs | threads setting | threads idle / busy | idle s/step "
             "| one core busy s/step | busy vs fastest idle |",
             "|---|---|---|---|---|---|---|"]
    for path in paths:
        result = json.loads(path.read_text())
        rows = {(r["setting"], r["busy"]): r for r in result["rows"]}
        fastest = min(r["median_s"] for r in result["rows"] if not r["busy"])
        for setting in dict.fromkeys(r["setting"] for r in result["rows"]):
            idle, busy = rows[setting, False], rows[setting, True]
            other = {"python": "a Python loop", "torch": "a 1-thread torch job"}[busy.get("other", "python")]
            lines.append(f"| {result['machine']['cpu']} | {other} | `{setting}` | {idle['threads']} / "
                         f"{busy['threads']} | {idle['median_s']:.3f} | {busy['median_s']:.3f} | "
                         f"{busy['median_s'] / fastest:.2f}x |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
