"""``selfsup grid GRID.yaml``: a grid of (method x backbone x width x seed) pre-trainings, then evaluations.

Every cell is an ordinary run folder (``selfsup.train.loop.train`` then
``selfsup.runs.evaluate.evaluate_run``), named ``<method>-<backbone>-w<width>-s<seed>``
under the grid's ``out_dir``, so ``selfsup eval`` and ``selfsup report`` read it
like any other run. The grid is resumable: a cell with ``done.json`` and every
requested protocol in its ``eval.json`` is skipped; a cell with ``last.pt`` but
no ``done.json`` (killed mid-training) is resumed from its checkpoint; a cell
that raised is recorded (``error.txt`` in its folder, and ``grid_status.json``
in ``out_dir``) and the grid goes on with the others. A signal (Ctrl-C, SIGTERM,
SIGUSR1) stops the grid after its cell's checkpoint, the cell marked ``interrupted``.

The grid file (see selfsup/configs/grids/*.yaml)::

    out_dir: runs/grids/fmnist_small
    methods:            # bundled config names or YAML paths; a mapping adds its own overrides
      - rotation
      - {config: simclr, label: simclr-t05, overrides: {method.temperature: 0.5}}
      - {config: byol, seeds: [0, 1, 2]}   # its own seeds instead of the grid's
      - {config: swav, steps: 2000}        # its own step count instead of the budget's
    backbones:          # each replaces the config's whole backbone section
      - {name: resnet18_v1, widths: [0.25, 0.5], options: {stem: small}}
    seeds: [0]
    overrides: {data.subset: 10000, train.batch_size: 128}   # every cell, after the method's config
    budget: {steps: 300}        # or {minutes: 3}
    protocols: [knn, linear]
    eval: {train_subset: null, pool_to: 9216, device: auto, splits: [val, test], val_protocols: [knn]}

A budget in minutes is turned into a step count before the cell trains, by
timing a few real training steps of that cell: the run then has a normal,
complete learning-rate schedule (warm-up and cosine decay to the end) of that
many steps, rather than a long schedule cut off when the clock runs out, which
would compare methods at different points of their schedules. The count is
stored in the cell's config.yaml, so a resumed cell keeps it (a resumed cell always
continues with the config it started with, even if the grid file changed since).
"""
from __future__ import annotations

import contextlib
import json
import math
import shutil
import subprocess
import time
import traceback
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Callable

from selfsup.config import CONFIG_DIR, RunConfig, from_dict, read_yaml, resolve_config_path
from selfsup.data.splits import locked_test_split
from selfsup.hardware import machine_info, resolve_device, synchronize
from selfsup.registry import ConfigError, Preempted
from selfsup.runs.evaluate import PROTOCOLS, evaluate_run, missing_protocols
from selfsup.runs.folder import read_run_config
from selfsup.train.build import check_config, load_checked_config, load_train_data, make_loader, method_from_config
from selfsup.train.loop import train
from selfsup.train.step import TrainStep, epoch_batches

GRID_DIR = CONFIG_DIR / "grids"
STATUS_FILE = "grid_status.json"
CELL_FILE = "cell.json"  # per cell: its grid coordinates, step count and timings (the report reads it)



@dataclass
class Budget:
    """Training length of every cell: ``steps``, or ``minutes`` turned into steps by timing a few."""

    steps: int | None = None
    minutes: float | None = None
    warmup_fraction: float | None = None  # None: the method config's own warmup_steps / steps
    calibration_steps: int = 5


@dataclass
class MethodEntry:
    config: str  # a bundled config name or a YAML path
    label: str | None = None  # the method's name in tables and cell folders (default: the config's)
    overrides: dict[str, Any] = field(default_factory=dict)
    seeds: list[int] | None = None  # this method's seeds (None: the grid's)
    steps: int | None = None  # this method's cells train this many steps instead of the budget's (no calibration)


@dataclass
class BackboneEntry:
    name: str
    widths: list[float] = field(default_factory=lambda: [1.0])
    options: dict[str, Any] = field(default_factory=dict)  # backbone options other than name and width


@dataclass
class GridEval:
    train_subset: int | None = None
    pool_to: int = 9216
    device: str = "auto"
    splits: list[str] = field(default_factory=lambda: ["val", "test"])  # val for choices, test for final numbers
    val_protocols: list[str] | None = None  # those scored on val (None: all); e.g. no fine-tuning where none is chosen


@dataclass
class GridFile:
    """A grid file's sections, typed like a run config (unknown keys are errors with a "did you mean")."""

    methods: list[MethodEntry]
    backbones: list[BackboneEntry]
    out_dir: str = "runs/grid"
    seeds: list[int] = field(default_factory=lambda: [0])
    overrides: dict[str, Any] = field(default_factory=dict)  # every cell, after the method's config
    budget: Budget = field(default_factory=Budget)
    protocols: list[str] = field(default_factory=lambda: ["knn"])
    eval: GridEval = field(default_factory=GridEval)


@dataclass
class Cell:
    name: str  # the run folder's name
    method: str  # the method's label in tables
    config: str  # the bundled config name or YAML path
    backbone: str
    width: float
    seed: int
    overrides: list[str]  # key=value, applied after the config file
    steps: int | None = None  # fixed by its method entry (None: the grid's budget)


@dataclass
class Grid:
    out_dir: Path
    cells: list[Cell]
    protocols: tuple[str, ...]
    budget: Budget
    train_subset: int | None = None
    pool_to: int = 9216
    device: str = "auto"
    splits: tuple[str, ...] = ("val", "test")
    val_protocols: tuple[str, ...] | None = None
    source: str = ""
    configs: dict[str, RunConfig] = field(default_factory=dict, repr=False)  # cell name -> validated config

    def protocols_of(self, split: str) -> tuple[str, ...]:
        """The protocols scored on ``split``."""
        return self.val_protocols if split == "val" and self.val_protocols is not None else self.protocols


def _flat_overrides(section: dict, where: str) -> list[str]:
    """``{data: {subset: 10}, train.lr: 0.1}`` -> ["data.subset=10", "train.lr=0.1"] (values as JSON, which is YAML)."""
    out = []
    for key, value in section.items():
        if isinstance(value, dict) and value:
            out += [f"{key}.{o}" for o in _flat_overrides(value, f"{where}.{key}")]
        else:
            out.append(f"{key}={json.dumps(value)}")
    return out


def _positive(value: Any, key: str, number: type = int) -> None:
    kinds = (int, float) if number is float else number  # "minutes: 15" is a number too
    if value is not None and (not isinstance(value, kinds) or isinstance(value, bool) or value <= 0):
        raise ConfigError(f"grid key {key!r}={value!r} must be a positive {'integer' if number is int else 'number'}")


def parse_grid(data: dict, source: str = "", out_dir: str | Path | None = None) -> Grid:
    """Check a grid mapping and every cell's run config; nothing is trained or written."""
    if isinstance(data, dict):  # shorthand: a bare name stands for {config: NAME} / {name: NAME}
        data = {**data, **{key: [{short: e} if isinstance(e, str) else e for e in data[key]]
                           for key, short in (("methods", "config"), ("backbones", "name"))
                           if isinstance(data.get(key), list)}}
    g = from_dict(data, GridFile, kind="grid")
    for name in (*g.protocols, *(g.eval.val_protocols or ())):
        PROTOCOLS.get(name)  # unknown protocol: the error lists the choices
    b = g.budget
    if b.steps is not None and b.minutes is not None:
        raise ConfigError("grid key 'budget' takes steps or minutes, not both")
    _positive(b.steps, "budget.steps")
    _positive(b.minutes, "budget.minutes", float)
    _positive(b.calibration_steps, "budget.calibration_steps")
    if b.warmup_fraction is not None and not 0 <= b.warmup_fraction < 1:
        raise ConfigError(f"grid key 'budget.warmup_fraction'={b.warmup_fraction!r} must be in [0, 1)")
    _positive(g.eval.train_subset, "eval.train_subset")
    _positive(g.eval.pool_to, "eval.pool_to")
    if not g.eval.splits or len(set(g.eval.splits)) < len(g.eval.splits):
        raise ConfigError(f"grid key 'eval.splits'={g.eval.splits!r} must name distinct splits, e.g. [val, test]")
    shared = _flat_overrides(g.overrides, "overrides")
    if (b.steps or b.minutes) and any(o.split("=")[0] in ("train.steps", "train.warmup_steps") for o in shared):
        raise ConfigError("grid 'overrides' must not set train.steps or train.warmup_steps "
                          "when 'budget' sets the length")

    methods = [(str(m.label or Path(m.config).stem), m.config, _flat_overrides(m.overrides, f"methods[{i}].overrides"),
                g.seeds if m.seeds is None else m.seeds, m.steps) for i, m in enumerate(g.methods)]
    if len({m[0] for m in methods}) < len(methods):
        raise ConfigError("grid 'methods' has two entries with the same label; give one a distinct 'label'")
    backbones = []
    for i, entry in enumerate(g.backbones):
        if "width" in entry.options or "name" in entry.options:
            raise ConfigError(f"grid key backbones[{i}].options must be a mapping of backbone options "
                              "other than name and width")
        for w in entry.widths:
            _positive(w, f"backbones[{i}].widths", float)
            backbones.append((entry.name, float(w), entry.options))

    grid = Grid(out_dir=Path(out_dir or g.out_dir), cells=[], protocols=tuple(g.protocols), budget=b,
                train_subset=g.eval.train_subset, pool_to=g.eval.pool_to, device=g.eval.device,
                splits=tuple(g.eval.splits), source=source,
                val_protocols=None if g.eval.val_protocols is None else tuple(g.eval.val_protocols))
    for i, (label, config, method_overrides, seeds, steps) in enumerate(methods):
        _positive(steps, f"methods[{i}].steps")
        if steps is not None and not (b.steps or b.minutes):
            raise ConfigError(f"grid key methods[{i}].steps needs a 'budget' (steps or minutes) for the other cells")
        for bb, width, options in backbones:
            for seed in seeds:
                name = f"{label}-{bb}-w{width:g}-s{seed}"
                if name in grid.configs:
                    raise ConfigError(f"grid cell {name} comes twice: a repeated seed or width")
                section = {"name": bb, "width": width, **options}
                overrides = [*shared, *method_overrides, f"backbone={json.dumps(section)}", f"train.seed={seed}",
                             f"name={json.dumps(name)}", f"out_dir={json.dumps(str(grid.out_dir))}"]
                if not any(o.startswith("train.progress=") for o in overrides):
                    overrides.append("train.progress=false")  # one progress line per cell instead
                cell = Cell(name, label, config, bb, width, seed, overrides, steps)
                try:
                    grid.configs[name] = load_checked_config(config, overrides)
                    with_budget(grid.configs[name], b, steps=b.steps or 1000)  # the budgeted config is valid too
                except ConfigError as err:
                    raise ConfigError(f"grid cell {name}: {err}") from None
                grid.cells.append(cell)
    return grid


def load_grid(name_or_path: str | Path, out_dir: str | Path | None = None) -> Grid:
    path = resolve_config_path(name_or_path, GRID_DIR, "grid")
    data = read_yaml(path) or {}
    return parse_grid(data, source=str(path), out_dir=out_dir)


def with_budget(cfg: RunConfig, budget: Budget, steps: int | None) -> RunConfig:
    """``cfg`` trained for ``steps``, its warm-up scaled to keep the schedule's shape (None: unchanged)."""
    if steps is None or (budget.steps is None and budget.minutes is None):
        return cfg
    t = cfg.train
    fraction = budget.warmup_fraction if budget.warmup_fraction is not None else t.warmup_steps / t.steps
    data = cfg.to_dict()
    data["train"].update(steps=int(steps), warmup_steps=int(fraction * steps))
    return check_config(from_dict(data))


def calibrate_steps(cfg: RunConfig, minutes: float, probe_steps: int = 5) -> tuple[int, float]:
    """The number of steps of ``cfg`` that fits in ``minutes``, from ``probe_steps`` timed training steps.

    Two untimed steps come first (allocator and kernel warm-up). The opening of the first epoch is timed
    too and shared among an epoch's steps: DeepCluster clusters the whole training set there every epoch.
    Returns (steps, seconds per step).
    """
    device = resolve_device(cfg.train.device)
    dataset = load_train_data(cfg)
    method = method_from_config(cfg, dataset, device)
    step = TrainStep(method, cfg.train)  # the loop's own step
    loader = make_loader(cfg, dataset, device)
    batches = epoch_batches(loader, method, dataset, device)
    start = time.perf_counter()
    first = next(batches)  # runs the method's epoch hook
    epoch_start = time.perf_counter() - start
    step(first, 0)
    for i in range(1, 2 + probe_steps):
        if i == 2:
            synchronize(device)
            start = time.perf_counter()
        step(next(batches), i)
    synchronize(device)
    per_step = (time.perf_counter() - start) / probe_steps + epoch_start / max(1, len(loader))
    return max(2, math.floor(minutes * 60 / per_step)), per_step


def cell_state(run_dir: Path, protocols: dict[str, tuple[str, ...]]) -> str:
    """finished | needs_eval | interrupted | new; ``protocols``: split -> the protocols scored on it."""
    if (run_dir / "done.json").exists():
        missing = any(missing_protocols(run_dir, names, split=s) for s, names in protocols.items())
        return "needs_eval" if missing else "finished"
    return "interrupted" if (run_dir / "last.pt").exists() else "new"


def run_grid(grid: Grid, print_fn: Callable | None = None) -> dict[str, dict]:
    """Train and evaluate every unfinished cell; returns (and writes) the grid status, cell name -> record.

    A grid that scores no test split (a tuning grid) runs with the test split locked: nothing in it can read it.
    """
    with locked_test_split() if "test" not in grid.splits else contextlib.nullcontext():
        return _run_grid(grid, print_fn)


def _run_grid(grid: Grid, print_fn: Callable | None) -> dict[str, dict]:
    print_fn = print_fn or partial(print, flush=True)
    grid.out_dir.mkdir(parents=True, exist_ok=True)
    status_path = grid.out_dir / STATUS_FILE
    status = json.loads(status_path.read_text()) if status_path.exists() else {}
    cells_status = status.setdefault("cells", {})
    status.update(grid=grid.source, protocols=list(grid.protocols))
    device = str(resolve_device(grid.device))
    t_grid = time.perf_counter()
    # architectures whose random init was evaluated (in their first finished cell): kept in grid_status.json so
    # a later invocation (e.g. with --only) does not evaluate it again; failed ones are retried next invocation
    baselines: list[str] = status.setdefault("baselines", [])
    failed_baselines: set[str] = set()

    def random_init_baseline(cell: Cell, run_dir: Path, head: str) -> None:
        """The same protocols on the cell's architecture at random init, once per architecture and seed,
        so the report can show what pre-training added."""
        key = json.dumps([grid.configs[cell.name].backbone, cell.seed, grid.protocols], sort_keys=True, default=str)
        if key in baselines or key in failed_baselines:
            return
        t0 = time.perf_counter()
        try:
            results = evaluate_splits(run_dir, random_init=True)
        except Exception as err:  # noqa: BLE001 -- a missing baseline must not fail the cell it sits in
            failed_baselines.add(key)
            print_fn(f"{head}: random-init baseline FAILED ({type(err).__name__}: {err})")
            return
        baselines.append(key)
        if results:
            print_fn(f"{head}: random init of {cell.backbone} x{cell.width:g}: "
                     f"{_summary({'eval_seconds': time.perf_counter() - t0}, results)}")

    def evaluate_splits(run_dir: Path, random_init: bool = False) -> dict:
        """The protocols each split's results file lacks, split -> the results file (only the splits evaluated)."""
        results = {}
        for split in grid.splits:
            missing = missing_protocols(run_dir, grid.protocols_of(split), random_init=random_init, split=split)
            if missing:
                results[split] = evaluate_run(run_dir, missing, random_init=random_init, progress=False,
                                              train_subset=grid.train_subset, pool_to=grid.pool_to, device=device,
                                              split=split)
        return results

    def save():
        status["updated"] = time.strftime("%Y-%m-%d %H:%M:%S")
        status_path.write_text(json.dumps(status, indent=2))

    for i, cell in enumerate(grid.cells, 1):
        run_dir = grid.out_dir / cell.name
        state = cell_state(run_dir, {s: grid.protocols_of(s) for s in grid.splits})
        head = f"[{i}/{len(grid.cells)}] {cell.name}"
        record = cells_status.get(cell.name, {})
        if state == "finished":
            record["status"] = "done"
            cells_status[cell.name] = record
            print_fn(f"{head}: finished earlier, skipped")
            random_init_baseline(cell, run_dir, head)
            continue
        info_path = run_dir / CELL_FILE
        info = json.loads(info_path.read_text()) if info_path.exists() else {}
        info.update(method=cell.method, config=cell.config, backbone=cell.backbone, width=cell.width, seed=cell.seed)
        record = {"status": "running", "started_as": state}
        cells_status[cell.name] = record
        save()
        doing = {"interrupted": "resuming", "needs_eval": "evaluating"}.get(state, "starting")
        print_fn(f"{head}: {doing}...")
        try:
            if state in ("new", "interrupted"):
                info["train_seconds"] = info.get("train_seconds", 0.0) if state == "interrupted" else 0.0
                cfg = _start(cell, grid, run_dir, info) if state == "new" else read_run_config(run_dir)
                trained_by = {"commit": source_commit(), "machine": machine_info(resolve_device(cfg.train.device))}
                if trained_by not in info.setdefault("trained_by", []):
                    info["trained_by"].append(trained_by)  # a cell resumed elsewhere lists each machine
                t0 = time.perf_counter()
                train(cfg, resume=state == "interrupted")
                info["train_seconds"] += time.perf_counter() - t0
                info["steps"] = cfg.train.steps
                _write_json(info_path, info)
            t0 = time.perf_counter()
            results = evaluate_splits(run_dir)
            info["eval_seconds"] = info.get("eval_seconds", 0.0) + time.perf_counter() - t0
            _write_json(info_path, info)
            (run_dir / "error.txt").unlink(missing_ok=True)
            record.update(status="done", steps=info.get("steps"), train_seconds=round(info.get("train_seconds", 0), 1),
                          eval_seconds=round(info["eval_seconds"], 1))
            print_fn(f"{head}: {state}: {_summary(info, results)}")
            random_init_baseline(cell, run_dir, head)
        except Preempted:  # a signal stops the grid, not only the cell; the cell resumes with the grid
            info["train_seconds"] += time.perf_counter() - t0
            _write_json(info_path, info)
            record["status"] = "interrupted"
            save()
            raise
        except Exception as err:  # noqa: BLE001 -- one failing cell must not stop the grid
            run_dir.mkdir(parents=True, exist_ok=True)
            (run_dir / "error.txt").write_text(traceback.format_exc())
            record.update(status="failed", error=f"{type(err).__name__}: {err}")
            print_fn(f"{head}: FAILED ({type(err).__name__}: {err}); traceback in {run_dir / 'error.txt'}")
        save()
    failed = [n for n in (c.name for c in grid.cells) if cells_status[n]["status"] == "failed"]
    minutes = (time.perf_counter() - t_grid) / 60
    print_fn(f"grid: {len(grid.cells) - len(failed)}/{len(grid.cells)} cells done in {minutes:.1f} min"
             + (f"; failed: {', '.join(failed)}" if failed else "") + f"; status in {status_path}")
    save()
    return {c.name: cells_status[c.name] for c in grid.cells}


def source_commit() -> str:
    """The git commit of the selfsup source in use ("+dirty" with uncommitted changes; "unknown" outside git)."""
    root = Path(__file__).resolve().parents[2]
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True,
                              timeout=10)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return head.stdout.strip() + ("+dirty" if dirty else "") if head.returncode == 0 else "unknown"


def _start(cell: Cell, grid: Grid, run_dir: Path, info: dict) -> RunConfig:
    """A cell's config with its step budget; clears what an attempt left before its first checkpoint."""
    for stale in ("metrics.jsonl", "error.txt", "tb"):
        path = run_dir / stale
        shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)
    cfg, steps = grid.configs[cell.name], cell.steps or grid.budget.steps
    if cell.steps is None and grid.budget.minutes is not None:
        t0 = time.perf_counter()
        steps, per_step = calibrate_steps(cfg, grid.budget.minutes, grid.budget.calibration_steps)
        info["calibration"] = {"minutes": grid.budget.minutes, "seconds_per_step": per_step, "steps": steps,
                               "seconds": time.perf_counter() - t0}
    return with_budget(cfg, grid.budget, steps)


def _summary(info: dict, results: dict[str, dict]) -> str:
    parts = []
    if "train_seconds" in info:
        parts.append(f"{info.get('steps')} steps in {info['train_seconds'] / 60:.1f} min")
    parts.append(f"eval {info.get('eval_seconds', 0):.0f} s")
    for split, scores in results.items():
        for key, label in (("knn_top1", "kNN"), ("linear_top1", "linear")):
            if key in scores:
                parts.append(f"{split} {label} {scores[key]:.1f}%")
    return ", ".join(parts)


def _write_json(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2))
