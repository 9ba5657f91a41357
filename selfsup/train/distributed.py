"""Data-parallel training: the process group, the DDP wrapper, per-rank seeds and RNG.

Launch with torchrun, which sets RANK, LOCAL_RANK and WORLD_SIZE for each process::

    torchrun --nproc_per_node=2 -m selfsup.cli train simclr train.batch_size=128

Each process trains on its own shard of every epoch (``BatchLoader(rank=,
world_size=)``), so ``train.batch_size`` is per process and the global batch is
``world_size`` times larger (the learning rate is not rescaled for you). The
backend is NCCL on CUDA (one GPU per process, ``cuda:LOCAL_RANK``) and gloo on
CPU. Rank 0 alone writes the log, checkpoints and the export; every rank resumes
from the same checkpoint, each with its own RNG stream.

A process group the caller initialised itself is used as it is; without one
and without torchrun's variables, everything here is a no-op.
"""
from __future__ import annotations

import os

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from selfsup.nn.distributed import rank, world_size

__all__ = ["average", "gather_objects", "is_main", "rank", "seed_this_rank", "setup", "shutdown", "world_size", "wrap"]


def setup(device: torch.device) -> torch.device:
    """Join torchrun's process group (if launched by it) and return this process's device.

    ``device`` is the configured one; on CUDA each process takes ``cuda:LOCAL_RANK``.
    """
    launched = int(os.environ.get("WORLD_SIZE", "1")) > 1
    if device.type == "cuda" and (launched or dist.is_initialized()):
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    if launched and not dist.is_initialized():
        # env:// reads MASTER_ADDR, MASTER_PORT, RANK and WORLD_SIZE, all set by torchrun
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return device


def shutdown(wait: bool = False) -> None:
    """Leave the process group; ``wait`` first waits for every rank (after a run that ended normally).

    Without the wait, a rank that finished first (rank 1 returns while rank 0 still writes the
    export) tears down its gloo connections under its peer; once in a loaded test run a rank then
    died with SIGABRT ("terminate called without an active exception"), most likely for that
    reason. After an error the peers may be gone, so there is no wait.
    """
    if dist.is_available() and dist.is_initialized():
        if wait:
            dist.barrier()
        dist.destroy_process_group()


def is_main() -> bool:
    """Rank 0 writes files and prints progress; the others only compute."""
    return rank() == 0


def wrap(method: nn.Module, device: torch.device, sync_bn: bool = False,
         find_unused_parameters: bool = False) -> nn.Module:
    """``method`` wrapped in DistributedDataParallel, or ``method`` itself in a single process.

    The loop calls the returned module (``model(batch, step)`` runs the method's
    ``training_step`` through its ``forward``): DDP all-reduces (averages)
    gradients only in the backward of a forward that went through it. Parameters
    with ``requires_grad=False`` (EMA targets) are ignored by DDP; buffers
    (BN statistics, queues) are broadcast from rank 0 at each forward, so methods
    must update shared buffers with gathered, rank-independent values.

    Args:
        sync_bn: batch-norm statistics over the global batch (SyncBatchNorm, CUDA only),
            as SimCLR's "global BN" (arXiv:2002.05709, Sec. B.2) does; per-process BN otherwise.
        find_unused_parameters: set it for a method that leaves some trainable
            parameters without a gradient in some steps (DDP raises otherwise); it costs a graph walk per step.
    """
    if world_size() == 1:
        return method
    if sync_bn:
        if device.type != "cuda":
            raise ValueError(
                f"config key 'train.sync_bn'=True needs CUDA: torch's SyncBatchNorm does not run on {device.type}"
            )
        method = nn.SyncBatchNorm.convert_sync_batchnorm(method)  # in place below the root: the same Parameters
    return nn.parallel.DistributedDataParallel(
        method, device_ids=[device.index] if device.type == "cuda" else None,
        find_unused_parameters=find_unused_parameters, gradient_as_bucket_view=True,
    )


def seed_this_rank(seed: int) -> None:
    """Give each process its own augmentation RNG stream, a function of (seed, rank).

    Called after the model is built from ``seed`` (DDP copies rank 0's weights
    anyway); in a single process it does nothing, so single-process runs are unchanged.
    """
    if world_size() > 1:
        torch.manual_seed(int(np.random.SeedSequence([seed, rank()]).generate_state(1)[0]))


def gather_objects(obj):
    """Every rank's ``obj`` as a list indexed by rank (``[obj]`` in a single process)."""
    if world_size() == 1:
        return [obj]
    out = [None] * world_size()
    dist.all_gather_object(out, obj)
    return out


def average(values: dict[str, float], device: torch.device) -> dict[str, float]:
    """The mean over ranks of each number in ``values`` (one all-reduce); booleans and others pass through."""
    keys = [k for k, v in values.items() if isinstance(v, (int, float)) and not isinstance(v, bool)]
    if world_size() == 1 or not keys:
        return values
    t = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return {**values, **{k: v / world_size() for k, v in zip(keys, t.tolist())}}


def largest(value: int, device: torch.device) -> int:
    """The largest of every rank's ``value`` (one all-reduce), so all ranks take the same branch."""
    if world_size() == 1:
        return value
    t = torch.tensor([value], dtype=torch.int64, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return int(t.item())
