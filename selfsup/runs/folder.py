"""What a run folder holds, read back: its config, its trained backbone, its logged metrics.

A run folder (written by ``selfsup.train.loop.train``) holds ``config.yaml``,
``last.pt`` (the whole method, optimizer and loader state), ``backbone.safetensors``
(the trained encoder, on success), ``done.json``, ``metrics.jsonl`` and the
``eval*.json`` results the protocols write beside them.
"""
from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np

from selfsup.backbones.base import Backbone
from selfsup.config import RUN_CONFIG, RunConfig, read_config
from selfsup.train import checkpoint
from selfsup.train.build import make_backbone

BACKBONE_FILE = "backbone.safetensors"
CHECKPOINT_FILE = "last.pt"


def read_run_config(run_dir: str | Path) -> RunConfig:
    path = Path(run_dir) / RUN_CONFIG
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: {run_dir} is not a selfsup run folder")
    return read_config(path)


def weights_file(run_dir: str | Path) -> Path:
    """The file the trained backbone is read from: the safetensors export, else the last checkpoint."""
    run_dir = Path(run_dir)
    for name in (BACKBONE_FILE, CHECKPOINT_FILE):
        if (run_dir / name).exists():
            return run_dir / name
    raise FileNotFoundError(f"{run_dir} has neither {BACKBONE_FILE} nor {CHECKPOINT_FILE}: was it trained?")


def load_backbone(run_dir: str | Path) -> tuple[Backbone, RunConfig]:
    """The run's trained backbone in eval mode, and the run's config."""
    from safetensors.torch import load_file

    cfg = read_run_config(run_dir)
    backbone = make_backbone(cfg)
    path = weights_file(run_dir)
    if path.name == BACKBONE_FILE:
        backbone.load_state_dict(load_file(str(path)))
    else:
        saved = checkpoint.load(path)
        if not (Path(run_dir) / "done.json").exists():
            warnings.warn(f"{run_dir} has not finished training: evaluating its checkpoint at step {saved['step']} "
                          f"of train.steps={cfg.train.steps}", stacklevel=2)
        state = saved["method"]
        backbone.load_state_dict({k[len("backbone."):]: v for k, v in state.items() if k.startswith("backbone.")})
    return backbone.eval(), cfg


def last_pretext_acc(run_dir: str | Path) -> float | None:
    """The pretext task's own accuracy at the end of training (logged by pretext methods), else None.

    Recorded beside the linear accuracy so the two can be compared across methods.
    """
    log = Path(run_dir) / "metrics.jsonl"
    if not log.exists():
        return None
    values = [r["pretext_acc"] for r in map(json.loads, log.read_text().splitlines()) if "pretext_acc" in r]
    return float(np.mean(values[-5:])) if values else None  # the last few logged batches: one batch is noisy
