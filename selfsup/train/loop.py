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
from contextlib import nullcontext
from pathlib import Path

import torch
from tqdm import tqdm

from selfsup.config import RunConfig
from selfsup.data import Batch
from selfsup.eval.monitors import embedding_std, rankme
from selfsup.methods import Method, StepOutput
from selfsup.train import checkpoint, distributed
from selfsup.train.build import autocast_dtype, keep_freed_cpu_memory, load_train_data, make_loader, placed_method, resolve_device, save_run_config
from selfsup.train.optim import build_optimizer
from selfsup.train.schedules import ema_momentum, warmup_cosine


class RunExistsError(FileExistsError):
    """The run folder already holds a run: we never overwrite one by accident."""


class NonFiniteLossError(FloatingPointError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


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
    t = cfg.train
    keep_freed_cpu_memory()
    device = distributed.setup(resolve_device(t.device))  # under torchrun: join the group, take this rank's GPU
    main = distributed.is_main()  # rank 0 alone writes files and shows progress
    amp_dtype = autocast_dtype(t.precision, device)
    dataset = load_train_data(cfg)  # bad paths and formats fail here, before a run folder exists
    if len(dataset) < t.batch_size:
        raise ValueError(f"the training set has {len(dataset)} images, fewer than train.batch_size={t.batch_size}")
    run_dir = prepare_run_dir(cfg, resume)
    method = placed_method(cfg, dataset, device, t.channels_last)
    if t.compile:  # in place: state_dict keys stay the same, so checkpoints, resume and export are unchanged
        method.backbone.compile(dynamic=False)  # forward only (features() runs eagerly); each view size its own graph
    model = distributed.wrap(method, device, t.sync_bn, t.find_unused_parameters)  # DDP when world_size > 1
    distributed.seed_this_rank(t.seed)  # each rank its own augmentations (no-op in one process)
    optimizer = build_optimizer(t.optimizer, method, t.lr, t.weight_decay, t.momentum, method.fixed_lr_modules())
    lrs = warmup_cosine(t.lr, t.steps, t.warmup_steps, final=t.min_lr)
    ema_base = method.ema_momentum()
    ema_m = ema_momentum(ema_base, t.steps) if ema_base is not None else None
    loader = make_loader(cfg, dataset, device, rank=distributed.rank(), world_size=distributed.world_size())

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
        save_run_config(cfg, run_dir)

    def save(step: int, name: str = "last.pt") -> None:
        rng = {"cpu": torch.get_rng_state()}
        if device.type == "cuda":
            rng["cuda"] = torch.cuda.get_rng_state(device)
        rng_ranks = distributed.gather_objects(rng)  # collective: every rank calls save()
        if not main:
            return
        checkpoint.save_atomic(
            {"method": method.state_dict(), "optimizer": optimizer.state_dict(), "loader": loader.state_dict(),
             "step": step, "rng": rng, "config": cfg.to_dict(), **({"rng_ranks": rng_ranks} if len(rng_ranks) > 1 else {})},
            run_dir / name,
        )

    log = open(run_dir / "metrics.jsonl" if main else os.devnull, "a")
    tb = _tensorboard(run_dir) if main else None
    bar = tqdm(total=t.steps, initial=start, desc=f"{cfg.method['name']} {cfg.name}", unit="step",
               disable=not (t.progress and main), dynamic_ncols=True, file=sys.stderr)
    method.train()
    batches = _forever(loader)
    seen, t_window = 0, time.perf_counter()
    for step in range(start, t.steps):
        for group in optimizer.param_groups:
            group["lr"] = t.lr if group.get("fixed_lr") else float(lrs[step])  # fixed: SimSiam's predictor
        if loader.position == 0:  # this step opens an epoch: per-epoch state and sampling weights (Method.on_epoch_start)
            loader.set_weights(method.on_epoch_start(loader.epoch, dataset, device))
            method.train()  # the hook may have extracted features in eval mode
        batch = next(batches)
        try:
            out = train_step(model, optimizer, batch, step, amp_dtype, t.grad_clip)
        except NonFiniteLossError as err:
            log.close()
            bar.close()
            raise NonFiniteLossError(
                f"{err}; stopped. The last good checkpoint is {run_dir / 'last.pt'} (step {_saved_step(run_dir)}):"
                " lower train.lr, set train.grad_clip, or use train.precision=fp32."
            ) from None
        loss = out.loss
        if ema_m is not None:
            _ema_update(method.ema_pairs(), float(ema_m[step]))
        seen += len(batch) * distributed.world_size()  # images of all ranks
        done = step + 1
        if done % t.log_every == 0 or done == t.steps:
            now = time.perf_counter()
            means = distributed.average({"loss": loss.item(), **out.metrics}, device)  # over ranks
            record = {"step": done, "lr": float(lrs[step]), "img_per_s": seen / (now - t_window), **means}
            if out.embedding is not None:
                z = out.embedding.float()
                record["emb_std"] = embedding_std(z)
                record["rankme"] = rankme(z)
                record["collapsed"] = bool(record["emb_std"] * math.sqrt(z.shape[1]) < 0.05)
                if record["collapsed"]:
                    warnings.warn(f"step {done}: embedding std {record['emb_std']:.2e} — the representation has collapsed")
            log.write(json.dumps(record) + "\n")
            log.flush()
            if tb is not None:
                for k, v in record.items():
                    if isinstance(v, (int, float)) and k != "step":
                        tb.add_scalar(k, v, done)
            bar.set_postfix(loss=f"{record['loss']:.3f}", img_s=f"{record['img_per_s']:.0f}")
            seen, t_window = 0, now
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


def train_step(method: Method | torch.nn.Module, optimizer: torch.optim.Optimizer, batch: Batch, step: int,
               amp_dtype: torch.dtype | None, grad_clip: float | None) -> StepOutput:
    """One optimisation step of a Method (or its DDP wrapper); the returned loss is detached and float32."""
    device_type = batch.images.device.type
    with torch.autocast(device_type, dtype=amp_dtype) if amp_dtype else nullcontext():
        out = method(batch, step)  # forward = training_step, through the DDP wrapper when there is one
    loss = out.loss.float()
    if not torch.isfinite(loss):
        raise NonFiniteLossError(f"loss is {loss.item()} at step {step}")
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if grad_clip is not None:
        torch.nn.utils.clip_grad_norm_(method.parameters(), grad_clip)
    optimizer.step()
    out.loss = loss.detach()
    return out


def _forever(loader):  # a BatchLoader or ShardLoader
    while True:
        yield from loader


@torch.no_grad()
def _ema_update(pairs: list, momentum: float) -> None:
    # foreach: one fused launch per dtype instead of one per tensor (on a GPU, ~250 launches for a ResNet-18 pair)
    for online, target in pairs:
        params, buffers = list(target.parameters()), list(target.buffers())
        if params:
            torch._foreach_lerp_(params, list(online.parameters()), 1.0 - momentum)
        if buffers:  # a projector without BN has none
            torch._foreach_copy_(buffers, list(online.buffers()))


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
