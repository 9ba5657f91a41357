"""The training loop shared by every method.

It reads top to bottom: build everything, restore a checkpoint if resuming, then
for each step take a batch, ask the method for its loss, step the optimizer,
update EMA targets, log, and checkpoint. Nothing in here knows any method.
"""
from __future__ import annotations

import json
import math
import os
import sys
import time
import warnings
from pathlib import Path

import torch
from tqdm import tqdm

from selfsup.config import RunConfig, save_config
from selfsup.hardware import keep_freed_cpu_memory, resolve_device
from selfsup.nn.monitors import embedding_std, rankme
from selfsup.registry import InputError
from selfsup.train import checkpoint, distributed
from selfsup.train.build import check_config, load_train_data, make_loader, method_from_config
from selfsup.train.probe import OnlineProbe
from selfsup.train.step import NonFiniteLossError, TrainStep, epoch_batches


class RunExistsError(FileExistsError):
    """The run folder already holds a run: we never overwrite one by accident."""


def prepare_run_dir(cfg: RunConfig, resume: bool) -> Path:
    run_dir = cfg.run_dir
    has_run = (run_dir / "last.pt").exists() or (run_dir / "done.json").exists()
    if resume:
        if (run_dir / "done.json").exists():
            raise RunExistsError(f"{run_dir} holds a finished run: nothing to resume")
        if not (run_dir / "last.pt").exists():
            raise FileNotFoundError(f"--resume: {run_dir} has no checkpoint (last.pt) to resume from")
    elif has_run:
        raise RunExistsError(
            f"{run_dir} already holds a run; pass --resume to continue it, or choose another name=... / out_dir=..."
        )
    run_dir.mkdir(parents=True, exist_ok=True)
    return run_dir


def train(cfg: RunConfig, resume: bool = False) -> Path:
    """Train ``cfg``'s method and return the run folder (config, checkpoints, metrics, export)."""
    t = check_config(cfg).train
    keep_freed_cpu_memory()
    device = distributed.setup(resolve_device(t.device))  # under torchrun: join the group, take this rank's GPU
    main = distributed.is_main()  # rank 0 alone writes files and shows progress
    dataset = load_train_data(cfg)  # bad paths and formats fail here, before a run folder exists
    if len(dataset) < t.batch_size:
        raise InputError(f"the training set has {len(dataset)} images, fewer than train.batch_size={t.batch_size}")
    run_dir = prepare_run_dir(cfg, resume)
    method = method_from_config(cfg, dataset, device)
    if t.compile:  # in place: state_dict keys stay the same, so checkpoints, resume and export are unchanged
        method.backbone.compile(dynamic=False)  # forward only (features() runs eagerly); each view size its own graph
    model = distributed.wrap(method, device, t.sync_bn, t.find_unused_parameters)  # DDP when world_size > 1
    distributed.seed_this_rank(t.seed)  # each rank its own augmentations (no-op in one process)
    train_step = TrainStep(method, t, model=model)
    optimizer = train_step.optimizer
    loader = make_loader(cfg, dataset, device, rank=distributed.rank(), world_size=distributed.world_size())
    probe = OnlineProbe(cfg, device) if t.probe_every and main else None  # its data errors come before step 0

    start = 0
    if resume:
        state = checkpoint.load(run_dir / "last.pt", map_location=device)
        method.load_state_dict(state["method"])
        optimizer.load_state_dict(state["optimizer"])
        loader.load_state_dict(state["loader"])
        rng = state["rng_ranks"][distributed.rank()] if "rng_ranks" in state else state["rng"]
        torch.set_rng_state(rng["cpu"])
        if device.type == "cuda" and "cuda" in rng:
            torch.cuda.set_rng_state(rng["cuda"], device)
        start = state["step"]
        if main:
            _truncate_log(run_dir / "metrics.jsonl", start)
    elif main:
        save_config(cfg, run_dir)

    def save(step: int, name: str = "last.pt") -> None:
        rng = {"cpu": torch.get_rng_state()}
        if device.type == "cuda":
            rng["cuda"] = torch.cuda.get_rng_state(device)
        rng_ranks = distributed.gather_objects(rng)  # collective: every rank calls save()
        if not main:
            return
        checkpoint.save_atomic(
            {
                "method": method.state_dict(),
                "optimizer": optimizer.state_dict(),
                "loader": loader.state_dict(),
                "step": step,
                "rng": rng,
                "config": cfg.to_dict(),
                **({"rng_ranks": rng_ranks} if len(rng_ranks) > 1 else {}),
            },
            run_dir / name,
        )

    log = open(run_dir / "metrics.jsonl" if main else os.devnull, "a")
    tb = _tensorboard(run_dir) if main else None
    bar = tqdm(total=t.steps, initial=start, desc=f"{cfg.method['name']} {cfg.name}", unit="step",
               disable=not (t.progress and main), dynamic_ncols=True, file=sys.stderr)
    method.train()
    batches = epoch_batches(loader, method, dataset, device)  # each epoch opened by Method.on_epoch_start
    seen, t_window = 0, time.perf_counter()
    for step in range(start, t.steps):
        batch = next(batches)
        try:
            out = train_step(batch, step)  # lr from the schedule, forward, backward, optimizer, EMA targets
        except NonFiniteLossError as err:
            log.close()
            bar.close()
            raise NonFiniteLossError(
                f"{err}; stopped. The last good checkpoint is {run_dir / 'last.pt'} (step {_saved_step(run_dir)}):"
                " lower train.lr, set train.grad_clip, or use train.precision=fp32."
            ) from None
        loss = out.loss
        seen += len(batch) * distributed.world_size()  # images of all ranks
        done = step + 1
        if done % t.log_every == 0 or done == t.steps:
            now = time.perf_counter()
            means = distributed.average({"loss": loss.item(), **out.metrics}, device)  # over ranks
            record = {"step": done, "lr": train_step.lr(step), "img_per_s": seen / (now - t_window), **means}
            if out.embedding is not None:
                z = out.embedding.float()
                record["emb_std"] = embedding_std(z)
                record["rankme"] = rankme(z)
                record["collapsed"] = bool(record["emb_std"] * math.sqrt(z.shape[1]) < 0.05)
                if record["collapsed"]:
                    warnings.warn(
                        f"step {done}: embedding std {record['emb_std']:.2e} — the representation has collapsed",
                        stacklevel=2,
                    )
            log.write(json.dumps(record) + "\n")
            log.flush()
            if tb is not None:
                for k, v in record.items():
                    if isinstance(v, (int, float)) and k != "step":
                        tb.add_scalar(k, v, done)
            bar.set_postfix(loss=f"{record['loss']:.3f}", img_s=f"{record['img_per_s']:.0f}")
            seen, t_window = 0, now
        if probe is not None and (done % t.probe_every == 0 or done == t.steps):
            record = {"step": done, **probe(method.backbone)}
            log.write(json.dumps(record) + "\n")
            log.flush()
            if tb is not None:
                tb.add_scalar("val_knn_top1", record["val_knn_top1"], done)
            bar.set_postfix(val_knn=f"{record['val_knn_top1']:.1f}")
            t_window += record["probe_s"]  # images/s counts training time only
        bar.update(1)
        if done % t.ckpt_every == 0 and done < t.steps:
            save(done)
    bar.close()
    log.close()
    save(t.steps)
    if not main:
        return run_dir
    checkpoint.export_backbone(method.backbone, run_dir / "backbone.safetensors")
    (run_dir / "done.json").write_text(json.dumps({"steps": t.steps, "finished": time.strftime("%Y-%m-%d %H:%M:%S")}))
    return run_dir


def _truncate_log(path: Path, step: int) -> None:
    """Drop records logged after the checkpoint we resume from: they will be logged again."""
    if path.exists():
        keep = [line for line in path.read_text().splitlines() if line and json.loads(line)["step"] <= step]
        path.write_text("".join(line + "\n" for line in keep))


def _saved_step(run_dir: Path) -> int | str:
    path = run_dir / "last.pt"
    return checkpoint.load(path)["step"] if path.exists() else "none yet"


def _tensorboard(run_dir: Path):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except Exception:  # tensorboard is optional
        return None
    return SummaryWriter(str(run_dir / "tb"))
