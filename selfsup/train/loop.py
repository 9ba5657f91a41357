"""The training loop shared by every method.

It reads top to bottom: build everything, restore a checkpoint if resuming, then
for each step take a batch, ask the method for its loss, step the optimizer,
update EMA targets, log, and checkpoint. Nothing in here knows any method.
"""
from __future__ import annotations

import contextlib
import json
import math
import os
import sys
import time
import warnings
from pathlib import Path

import torch
from tqdm import tqdm

from selfsup.config import RunConfig
from selfsup.hardware import keep_freed_cpu_memory, resolve_device
from selfsup.nn.monitors import embedding_std, rankme
from selfsup.registry import ConfigError, InputError
from selfsup.train import checkpoint, distributed, metrics_log, run_folder
from selfsup.train.build import check_config, load_train_data, make_loader, method_from_config
from selfsup.train.metrics_log import METRICS
from selfsup.train.probe import OnlineProbe
from selfsup.train.run_folder import CHECKPOINT, DONE, RunExistsError  # noqa: F401 -- RunExistsError: for callers
from selfsup.train.step import NonFiniteLossError, TrainStep, epoch_batches
from selfsup.train.stop import StopRequests, preempted


def train(cfg: RunConfig, resume: bool | str = False) -> Path:
    """Train ``cfg``'s method and return the run folder (config, checkpoints, metrics, export).

    ``resume``: continue the folder's checkpoint; ``"auto"``: continue it if there is one, start if there is
    none, return at once if the run has finished (what a requeued job runs).
    """
    t = check_config(cfg).train
    run_dir = cfg.run_dir
    mode = run_folder.resume_mode(cfg, resume)
    if mode is None:
        print(f"{run_dir} has finished training: nothing to resume", file=sys.stderr)
        return run_dir
    resume = mode
    run_folder.check_state(run_dir, resume)  # before the data is read, and again under the lock
    changed = run_folder.check_resume_config(cfg) if resume else []
    keep_freed_cpu_memory()
    device = distributed.setup(resolve_device(t.device))  # under torchrun: join the group, take this rank's GPU
    main = distributed.is_main()  # rank 0 alone writes files and shows progress
    dataset = load_train_data(cfg)  # bad paths and formats fail here, before a run folder exists
    if len(dataset) < t.batch_size:
        raise InputError(f"the training set has {len(dataset)} images, fewer than train.batch_size={t.batch_size}")
    method = method_from_config(cfg, dataset, device)  # so do bad constructor values
    if main:
        run_folder.create(run_dir)
    with run_folder.locked(run_dir) if main else contextlib.nullcontext(), StopRequests() as stop:
        if main:
            run_folder.check_state(run_dir, resume)
            run_folder.start(cfg, resume, changed)
        return _train(cfg, method, dataset, device, resume, stop)


def _train(cfg: RunConfig, method, dataset, device: torch.device, resume: bool, stop: StopRequests) -> Path:
    t, run_dir, main = cfg.train, cfg.run_dir, distributed.is_main()
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
        state = checkpoint.load(run_dir / CHECKPOINT, map_location=device)
        if state["step"] > t.steps:  # equal: killed after the last checkpoint, before the export
            raise ConfigError(f"train.steps={t.steps}, but {run_dir / CHECKPOINT} is at step {state['step']} already")
        method.load_state_dict(state["method"])
        optimizer.load_state_dict(state["optimizer"])
        loader.load_state_dict(state["loader"])
        rng = state["rng_ranks"][distributed.rank()] if "rng_ranks" in state else state["rng"]
        torch.set_rng_state(rng["cpu"])
        if device.type == "cuda" and "cuda" in rng:
            torch.cuda.set_rng_state(rng["cuda"], device)
        start = state["step"]
        if main:
            metrics_log.truncate(run_dir / METRICS, start)

    def save(step: int) -> None:
        """Write last.pt unless a weight, buffer or optimizer state is NaN or inf: then keep the previous one."""
        rng = {"cpu": torch.get_rng_state()}
        if device.type == "cuda":
            rng["cuda"] = torch.cuda.get_rng_state(device)
        rng_ranks = distributed.gather_objects(rng)  # collective: every rank calls save()
        if not main:
            return
        state = {"method": method.state_dict(), "optimizer": optimizer.state_dict()}
        bad = checkpoint.non_finite(state)
        if bad:
            raise NonFiniteLossError(f"{bad} is NaN or infinite at step {step}; stopped without saving it. "
                                     f"{_last_good(run_dir)}")
        checkpoint.save_atomic(
            {
                **state,
                "loader": loader.state_dict(),
                "step": step,
                "rng": rng,
                "config": cfg.to_dict(),
                **({"rng_ranks": rng_ranks} if len(rng_ranks) > 1 else {}),
            },
            run_dir / CHECKPOINT,
        )

    tb = _tensorboard(run_dir) if main else None
    progress = dict(total=t.steps, initial=start, desc=f"{cfg.method['name']} {cfg.name}", unit="step",
                    disable=not (t.progress and main), dynamic_ncols=True, file=sys.stderr)
    with open(run_dir / METRICS if main else os.devnull, "a") as log, tqdm(**progress) as bar:
        method.train()
        batches = epoch_batches(loader, method, dataset, device)  # each epoch opened by Method.on_epoch_start
        seen, t_window = 0, time.perf_counter()
        for step in range(start, t.steps):
            batch = next(batches)
            try:
                out = train_step(batch, step)  # lr from the schedule, forward, backward, optimizer, EMA targets
            except NonFiniteLossError as err:
                raise NonFiniteLossError(f"{err}; stopped. {_last_good(run_dir)}") from None
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
            signum = stop.signal(device)  # a signal on any rank stops every rank here, after a checkpoint
            if signum and done < t.steps:
                save(done)
                raise preempted(signum, done, str(run_dir / CHECKPOINT))
            if done % t.ckpt_every == 0 and done < t.steps:
                save(done)
    save(t.steps)
    if not main:
        return run_dir
    checkpoint.export_backbone(method.backbone, run_dir / "backbone.safetensors")
    (run_dir / DONE).write_text(json.dumps({"steps": t.steps, "finished": time.strftime("%Y-%m-%d %H:%M:%S")}))
    return run_dir


def _last_good(run_dir: Path) -> str:
    """Where a diverged run can go on from, and how."""
    path = run_dir / CHECKPOINT
    if not path.exists():
        return "There is no checkpoint yet: start again with a lower train.lr, train.grad_clip or train.precision=fp32."
    return (f"The last good checkpoint is {path} (step {checkpoint.load(path)['step']}): lower train.lr (or set "
            f"train.grad_clip, train.precision=fp32) in {run_dir / 'config.yaml'} and run "
            f"`selfsup train {run_dir / 'config.yaml'} --resume`, or start again with a new name=...")


def _tensorboard(run_dir: Path):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except Exception:  # tensorboard is optional
        return None
    return SummaryWriter(str(run_dir / "tb"))
