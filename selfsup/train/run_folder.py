"""The run folder while it trains: one writer at a time, a resume that keeps its settings, no stale leftovers.

``selfsup train`` never overwrites a run by accident, refuses a second process writing the same
folder, and on ``--resume`` refuses settings that differ from the run's config.yaml, except the
few listed in ``CHANGEABLE_ON_RESUME`` (docs/hardening.md#resume).
"""
from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import socket
import time
from pathlib import Path
from typing import Any, Iterator

from selfsup.config import RUN_CONFIG, RunConfig, read_config, save_config
from selfsup.registry import ConfigError, InputError
from selfsup.train.metrics_log import METRICS

CHECKPOINT = "last.pt"
DONE = "done.json"
LOCK = ".lock"

# settings that do not change what is trained: where the data and the run live, how often to log or save,
# where to run, evaluation; and train.steps, to extend (or shorten) a run. Anything else is refused.
CHANGEABLE_ON_RESUME = ("name", "out_dir", "data.root", "data.cache_dir", "data.workers", "train.steps",
                        "train.device", "train.progress", "train.ckpt_every", "train.log_every", "train.probe_every",
                        "train.probe_bank", "train.probe_val", "eval.")


class RunExistsError(FileExistsError):
    """The run folder already holds a run: we never overwrite one by accident."""


class RunLockedError(FileExistsError):
    """Another process is writing the run folder."""


def check_state(run_dir: Path, resume: bool) -> None:
    """A fresh start needs a folder without a run; a resume needs an unfinished one."""
    if resume:
        if (run_dir / DONE).exists():
            raise RunExistsError(f"{run_dir} holds a finished run: nothing to resume")
        if not (run_dir / CHECKPOINT).exists():
            raise FileNotFoundError(f"--resume: {run_dir} has no checkpoint ({CHECKPOINT}) to resume from")
    elif (run_dir / CHECKPOINT).exists() or (run_dir / DONE).exists():
        raise RunExistsError(
            f"{run_dir} already holds a run; pass --resume to continue it, or choose another name=... / out_dir=..."
        )


def resume_mode(cfg: RunConfig, resume: bool | str) -> bool | None:
    """``--resume auto``: True for an unfinished run, False for an empty folder, None for a finished run."""
    if resume != "auto":
        return bool(resume)
    if (cfg.run_dir / DONE).exists():
        return None
    return (cfg.run_dir / CHECKPOINT).exists()


def config_changes(saved: dict[str, Any], new: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    """(dotted key, saved value, new value) for every setting that differs, in the config's order."""
    out = []
    for key in dict.fromkeys([*saved, *new]):
        a, b = saved.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict) and key not in ("backbone", "method", "augment"):
            out += [(f"{key}.{k}", x, y) for k, x, y in config_changes(a, b)]
        elif isinstance(a, dict) and isinstance(b, dict):  # constructor sections: keys may come and go
            out += [(f"{key}.{k}", a.get(k), b.get(k)) for k in dict.fromkeys([*a, *b]) if a.get(k) != b.get(k)]
        elif a != b:
            out.append((key, a, b))
    return out


def check_resume_config(cfg: RunConfig) -> list[str]:
    """Refuse a resume whose settings differ from config.yaml's, except ``CHANGEABLE_ON_RESUME``; return those."""
    path = cfg.run_dir / RUN_CONFIG
    if not path.exists():
        return []
    changes = config_changes(read_config(path).to_dict(), cfg.to_dict())
    refused = [c for c in changes if not c[0].startswith(CHANGEABLE_ON_RESUME)]
    if refused:
        listed = "; ".join(f"{k}: {a!r} in config.yaml, {b!r} now" for k, a, b in refused)
        raise ConfigError(
            f"--resume would change what {cfg.run_dir} trains ({listed}); resume with the run's settings, start a new "
            f"run (name=...), or edit {path} if you mean it"
        )
    return [k for k, _, _ in changes]


def create(run_dir: Path) -> None:
    """Make the run folder; an unusable output path is one line naming it."""
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        probe = run_dir / f".write-test{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as err:
        raise InputError(f"cannot write the run folder {run_dir}: {err.strerror or err} (choose out_dir=...)") from None


@contextlib.contextmanager
def locked(run_dir: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``run_dir`` (released when the process ends, however it ends)."""
    with open(run_dir / LOCK, "a+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            holder = f.read().strip() or "another process"
            raise RunLockedError(f"{run_dir} is being written by {holder}; wait for it, or choose another name=..."
                                 ) from None
        f.seek(0)
        f.truncate()
        f.write(f"pid {os.getpid()} on {socket.gethostname()} since {time.strftime('%Y-%m-%d %H:%M:%S')}\n")
        f.flush()
        try:
            yield
        finally:
            f.truncate(0)


def start(cfg: RunConfig, resume: bool, changed: list[str]) -> None:
    """Under the lock: remove what a killed process left, then write config.yaml for a fresh start or a change."""
    run_dir = cfg.run_dir
    for stale in run_dir.glob(".*.tmp*"):  # a checkpoint or export whose write was killed
        stale.unlink(missing_ok=True)
    if not resume:  # a run that died before its first checkpoint starts over
        (run_dir / METRICS).unlink(missing_ok=True)
        shutil.rmtree(run_dir / "tb", ignore_errors=True)
    if not resume or changed:
        save_config(cfg, run_dir)
