"""``selfsup speed``: a config's full training step next to its bare backbone, from one run.

The full step is what the loop runs for one batch (augmentation on the batch's
device, every backbone forward, heads, loss, backward, optimizer, EMA update);
data loading is left out (a batch is sliced from the uint8 memmap in well under
a millisecond). The bare step is the backbone alone, forward+backward+SGD, on
exactly the backbone inputs the method fed it, counted by hooks on every
Backbone module during a step (SimCLR: 2 views per image, RotNet: 4, multi-crop:
views of several sizes; an EMA or key encoder's no-grad forwards count as
forwards only), in the same precision and memory format. So ``ratio`` (bare
step time / full step time) is the share of the step that the backbone's own
work takes, and 1 - ratio is what everything else costs.

FLOP/s: backbone FLOPs per input from ``selfsup.backbones.profile.count_flops``
(2 x conv/linear MACs), x3 for inputs that are back-propagated (forward plus a
backward of about twice its cost), x1 for no-grad forwards, divided by the step
time. They are set against the machine's own fp32 and bf16 matrix-multiply
FLOP/s, measured after the steps with square matmuls of two sizes (``best_matmul_flops``).

Peak memory: on CUDA ``torch.cuda.max_memory_allocated`` during one step, above
what was allocated before it (weights, gradients and optimizer state excluded);
on CPU the peak of CPU tensor allocations during one step, replayed from
``torch.profiler``'s memory events (not RSS, which the allocator's caching blurs).
"""
from __future__ import annotations

import copy
import dataclasses
import statistics
import time
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Callable

import torch

from selfsup.backbones.base import Backbone
from selfsup.backbones.profile import count_flops, peak_allocated_bytes
from selfsup.config import RunConfig
from selfsup.data import Batch
from selfsup.hardware import cpu_has_fast_bf16, device_name, keep_freed_cpu_memory, resolve_device, synchronize
from selfsup.methods import Method
from selfsup.precision import autocast
from selfsup.registry import InputError
from selfsup.train.build import check_config, load_train_data, make_loader, method_from_config
from selfsup.train.optim import build_optimizer
from selfsup.train.step import TrainStep, epoch_batches


@dataclass(frozen=True)
class BackboneCall:
    """One forward of a backbone inside a training step: ``n`` images of ``height`` x ``width``."""

    n: int
    height: int
    width: int
    grad: bool  # back-propagated (online encoder) or not (EMA target, key encoder)
    channels: int = 3  # 1 for colorization's L-only encoder


def backbone_calls(method: Method, batch: Batch, amp: torch.dtype | None) -> list[BackboneCall]:
    """Every top-level Backbone call of one ``method`` step (forward or ``features``), counted, not assumed."""
    calls: list[BackboneCall] = []
    depth = 0

    def counted(features):
        def wrapper(x, *args, **kwargs):
            nonlocal depth
            if depth == 0:  # forward calls features: count the outer call only
                calls.append(BackboneCall(x.shape[0], x.shape[-2], x.shape[-1], torch.is_grad_enabled(), x.shape[1]))
            depth += 1
            try:
                return features(x, *args, **kwargs)
            finally:
                depth -= 1
        return wrapper

    backbones = [m for m in method.modules() if isinstance(m, Backbone)]
    for m in backbones:
        m.features = counted(m.features)  # an instance attribute shadows the class's method
    try:
        with autocast(batch.images.device, amp):
            method(batch, 0)  # a forward only: no backward, no optimizer step
    finally:
        for m in backbones:
            del m.features
    return calls


def matmul_flops(dtype: torch.dtype, device: torch.device, sizes: tuple[int, ...] | None = None,
                 seconds: float = 0.3) -> float:
    """FLOP/s of square matrix products in ``dtype``: the machine's practical peak for dense work.

    The best over several sizes and, for each, over short bursts: one size can miss the peak
    (docs/speed.md#the-matmul-peak), and a moment of load from another process lowers a burst.
    A low peak would flatter every ratio against it. A first product slower than ten times
    ``seconds`` (bf16 on a CPU without bf16 instructions) ends the search there.
    """
    sizes = sizes or ((8192,) if device.type == "cuda" else (1024, 2048))
    if dtype == torch.bfloat16 and device.type == "cpu" and not cpu_has_fast_bf16():
        sizes = sizes[:1]  # emulated bf16: one product of the smallest size already takes seconds
    best = 0.0
    for n in sizes:
        a = torch.randn(n, n, device=device).to(dtype)
        b = torch.randn(n, n, device=device).to(dtype)
        start = time.perf_counter()
        a @ b  # warm-up: kernel selection, allocation
        synchronize(device)
        if time.perf_counter() - start > 10 * seconds:  # a dtype this hardware emulates: larger sizes take minutes
            best = max(best, 2 * n**3 / (time.perf_counter() - start))
            break
        end = time.perf_counter() + seconds
        while True:
            start = time.perf_counter()
            for _ in range(2):
                a @ b
            synchronize(device)
            best = max(best, 2 * 2 * n**3 / (time.perf_counter() - start))
            if time.perf_counter() >= end:
                break
    return best


_BEST_PEAKS: dict[tuple[str, torch.dtype], float] = {}


def best_matmul_flops(dtype: torch.dtype, device: torch.device, seconds: float) -> float:
    """``matmul_flops``, never below the best already measured in this process: a peak read during a
    moment of load would flatter every ratio of the configs measured after it."""
    key = (str(device), dtype)
    _BEST_PEAKS[key] = max(_BEST_PEAKS.get(key, 0.0), matmul_flops(dtype, device, seconds=seconds))
    return _BEST_PEAKS[key]


def measure_speed(cfg: RunConfig, steps: int = 10, warmup: int = 2, precision: str | None = None,
                  compile: bool = False, channels_last: bool | None = None,
                  matmul_seconds: float = 0.3, profile: int = 0) -> dict:
    """Time ``cfg``'s training step and its bare backbone; see the module docstring for what is measured.

    ``profile`` > 0 adds ``profile_table``: the operators that take the most self time over
    3 more full steps, that many rows (on CUDA a table by device time and one by host time,
    where launch overhead and host-device syncs show), to see what the step spends outside
    the backbone.
    """
    if steps < 1 or warmup < 1:
        raise InputError(f"steps and warmup must be at least 1, got steps={steps}, warmup={warmup}")
    if channels_last is not None:
        cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, channels_last=channels_last))
    t = check_config(cfg).train
    keep_freed_cpu_memory()  # what training does: the step's buffers reused, not page-faulted in again
    device = resolve_device(t.device)
    fmt = torch.channels_last if t.channels_last else torch.contiguous_format

    dataset = load_train_data(cfg)
    method = method_from_config(cfg, dataset, device)
    batch = next(epoch_batches(make_loader(cfg, dataset, device), method, dataset, device))  # epoch 0 opened: untimed
    full_step = TrainStep(method, t, precision=precision)  # the loop's own step: schedule, EMA, fixed-lr groups
    amp = full_step.amp_dtype
    calls = backbone_calls(method, batch, amp)
    bare = copy.deepcopy(method.backbone)  # the same architecture and weights, outside the method

    original, bare_net, compile_note = method.backbone, bare, "off"
    if compile:
        try:  # lazy: the compilation itself happens in the first steps
            torch._dynamo.reset()  # each config from scratch, not recompiled against the last one's graphs
            method.backbone, bare_net, compile_note = (
                torch.compile(original, dynamic=False),
                torch.compile(bare, dynamic=False),
                "on",
            )
        except Exception as err:  # noqa: BLE001
            compile_note = _failed(err)
    counter = iter(range(10**9))

    def full() -> None:
        full_step(batch, next(counter))

    bare_opt = build_optimizer("sgd", bare, lr=0.01, weight_decay=1e-4)
    inputs = [
        torch.randn(c.n, c.channels, c.height, c.width, device=device).contiguous(memory_format=fmt) for c in calls
    ]

    def bare_step() -> None:
        losses = []
        with autocast(device, amp):
            for c, x in zip(calls, inputs):
                with nullcontext() if c.grad else torch.no_grad():
                    out = bare_net(x).float()
                if c.grad:
                    losses.append(out.square().mean())
        bare_opt.zero_grad(set_to_none=True)
        torch.stack(losses).sum().backward()
        bare_opt.step()

    compile_s = None
    if compile and compile_note == "on":
        start = time.perf_counter()
        try:
            for _ in range(warmup):
                full()
                bare_step()
            compile_s = time.perf_counter() - start
        except Exception as err:  # noqa: BLE001 - compilers fail in many ways; measure without
            method.backbone, bare_net, compile_note = original, bare, _failed(err)
    step_s = _median_time(full, steps, warmup, device)
    bare_s = _median_time(bare_step, steps, warmup, device)
    peak = _peak_bytes(full, device)
    bare_peak = _peak_bytes(bare_step, device)
    table = profile_table(full, device, profile) if profile > 0 else None
    # after the steps, on a warm machine: a process's first products can run slower (docs/speed.md#the-matmul-peak)
    peaks = {name: best_matmul_flops(dtype, device, matmul_seconds)
             for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16))}

    inputs_per_step = sum(c.n for c in calls)
    flops_per_step = sum(c.n * count_flops(bare, (c.height, c.width)) * (3 if c.grad else 1) for c in calls)
    used = "bf16" if amp == torch.bfloat16 else "fp32"
    achieved = flops_per_step / step_s
    return {
        "method": cfg.method["name"], "backbone": cfg.backbone["name"], "width": cfg.backbone.get("width", 1.0),
        "device": device_name(device), "threads": torch.get_num_threads(), "precision": used,
        "channels_last": t.channels_last, "compile": compile_note, "compile_s": compile_s,
        "batch_size": t.batch_size, "view_sizes": sorted({f"{c.height}x{c.width}" for c in calls}),
        "steps": steps, "warmup": warmup,
        "backbone_inputs_per_step": inputs_per_step,
        "backbone_inputs_with_grad": sum(c.n for c in calls if c.grad),
        "backbone_inputs_per_image": inputs_per_step / t.batch_size,
        "step_s": step_s, "images_per_s": t.batch_size / step_s, "backbone_inputs_per_s": inputs_per_step / step_s,
        "bare_step_s": bare_s, "bare_inputs_per_s": inputs_per_step / bare_s,
        "ratio": bare_s / step_s,  # bare / full time on the same inputs: the backbone's share of the step
        "backbone_gflop_per_step": flops_per_step / 1e9,
        "achieved_flops": achieved, "bare_achieved_flops": flops_per_step / bare_s,
        "matmul_flops_fp32": peaks["fp32"], "matmul_flops_bf16": peaks["bf16"],
        "of_matmul_peak": achieved / peaks[used],  # against the matmul peak of the precision in use
        "peak_mem_mib": peak / 2**20, "bare_peak_mem_mib": bare_peak / 2**20,
        "memory_measure": ("torch.cuda.max_memory_allocated" if device.type == "cuda"
                           else "torch.profiler CPU allocations"),
        "profile_table": table,
    }  # fmt: skip


def measure_data_speed(cfg: RunConfig, batches: int = 200, warmup: int = 2) -> dict:
    """Images/s of ``cfg``'s training batches alone (BatchLoader or, with ``data.name: shards``, ShardLoader).

    The loop's own loader, on the config's device, from a fresh start (the
    shard stream fills its shuffle buffer in the warm-up batches), timed over
    ``batches`` batches or to the end of the first epoch, whichever comes first.
    """
    if batches < 1 or warmup < 0:
        raise InputError(f"batches must be >= 1 and warmup >= 0, got batches={batches}, warmup={warmup}")
    device = resolve_device(check_config(cfg).train.device)
    dataset = load_train_data(cfg)
    loader = make_loader(cfg, dataset, device)
    stream = iter(loader)
    for _ in range(min(warmup, len(loader) - 1)):
        next(stream)
    synchronize(device)
    images, start = 0, time.perf_counter()
    for _, batch in zip(range(batches), stream):
        images += len(batch)
    synchronize(device)
    seconds = time.perf_counter() - start
    return {"data": cfg.data.name, "root": cfg.data.root, "loader": type(loader).__name__, "images": len(dataset),
            "batch_size": cfg.train.batch_size, "batches": images // cfg.train.batch_size, "seconds": seconds,
            "images_per_s": images / seconds, "threads": torch.get_num_threads(), "device": device_name(device)}


def format_report(r: dict) -> str:
    """The measurements as a few human-readable lines."""
    views = ", ".join(r["view_sizes"])
    lines = [
        f"{r['method']} / {r['backbone']} (width {r['width']:g}), batch {r['batch_size']}, views {views} px, "
        f"{r['precision']}, channels_last={r['channels_last']}, compile: {r['compile']}",
        f"device: {r['device']}, {r['threads']} threads; median of {r['steps']} steps after {r['warmup']} warm-up"
        + (f"; compiling took {r['compile_s']:.1f} s" if r["compile_s"] else ""),
        f"full training step:   {r['images_per_s']:9.1f} images/s = "
        f"{r['backbone_inputs_per_s']:9.1f} backbone inputs/s "
        f"({r['backbone_inputs_per_image']:g} per image, {r['backbone_inputs_with_grad']} of "
        f"{r['backbone_inputs_per_step']} back-propagated)",
        f"bare backbone fwd+bwd: {r['bare_inputs_per_s']:9.1f} inputs/s on the same inputs",
        f"bare / full time:     {r['ratio']:9.1%}  (the backbone's share of the step)",
        f"backbone FLOP/s:      {_flops(r['achieved_flops'])} in the full step, "
        f"{_flops(r['bare_achieved_flops'])} bare "
        f"({r['backbone_gflop_per_step']:.3g} GFLOP per step); "
        f"{r['of_matmul_peak']:.1%} of the {r['precision']} matmul peak",
        f"matmul peak:          {_flops(r['matmul_flops_fp32'])} fp32, {_flops(r['matmul_flops_bf16'])} bf16",
        f"peak memory:          {r['peak_mem_mib']:.1f} MiB full step, {r['bare_peak_mem_mib']:.1f} MiB bare "
        f"({r['memory_measure']})",
    ]  # fmt: skip
    if r.get("profile_table"):
        lines.append(f"most self time over 3 full steps:\n{r['profile_table']}")
    return "\n".join(lines)


def format_markdown(results: list[dict]) -> str:
    """A Markdown table, one row per measurement, as docs/speed.md shows them."""
    rows = [
        "| method | backbone | device | precision | batch | images/s | backbone inputs/s | bare inputs/s "
        "| full / bare speed "
        "| backbone TFLOP/s | of matmul peak | peak MiB (full / bare) |",
        "|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        rows.append(
            f"| {r['method']} | {r['backbone']} x{r['width']:g} | {r['device']} | {r['precision']}"
            f"{' compiled' if r['compile'] == 'on' else ''} | {r['batch_size']} | {r['images_per_s']:.0f} "
            f"| {r['backbone_inputs_per_s']:.0f} | {r['bare_inputs_per_s']:.0f} | {r['ratio']:.0%} "
            f"| {r['achieved_flops'] / 1e12:.3g} | {r['of_matmul_peak']:.0%} "
            f"| {r['peak_mem_mib']:.0f} / {r['bare_peak_mem_mib']:.0f} |"
        )
    return "\n".join(rows)


def _failed(err: Exception) -> str:
    first = str(err).strip().splitlines()[0][:200] if str(err).strip() else ""
    print(f"torch.compile failed ({type(err).__name__}: {first}); measuring without it")
    return f"failed ({type(err).__name__}), measured without"


def _flops(x: float) -> str:
    """FLOP/s with a unit that keeps 3 significant digits (G on a laptop CPU, T on a GPU)."""
    return f"{x / 1e12:.3g} TFLOP/s" if x >= 1e12 else f"{x / 1e9:.3g} GFLOP/s"


def _median_time(fn: Callable[[], None], steps: int, warmup: int, device: torch.device) -> float:
    for _ in range(warmup):
        fn()
    synchronize(device)
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        fn()
        synchronize(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _peak_bytes(fn: Callable[[], None], device: torch.device) -> int:
    if device.type != "cuda":
        return peak_allocated_bytes(fn)
    synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    before = torch.cuda.memory_allocated(device)
    fn()
    synchronize(device)
    return torch.cuda.max_memory_allocated(device) - before


def profile_table(fn: Callable[[], None], device: torch.device, rows: int) -> str:
    """torch.profiler's table of the ``rows`` operators with the most self time over 3 calls of ``fn``."""
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=activities) as prof:
        for _ in range(3):
            fn()
        synchronize(device)
    averages = prof.key_averages()
    keys = (["self_cuda_time_total"] if device.type == "cuda" else []) + ["self_cpu_time_total"]
    # on CUDA also by host time: launches and syncs show there
    return "\n".join(averages.table(sort_by=key, row_limit=rows) for key in keys)
