"""What each backbone costs: parameters, multiply-adds, CPU training speed, RevNet memory.

``python -m selfsup.backbones.profile`` prints the table of docs/backbones.md; ``main(argv)`` is
the entry point for the ``selfsup backbones`` command.

Conventions: MACs are multiply-accumulates of conv and linear layers only (BN,
ReLU, pooling and additions are ignored, as is usual); FLOPs = 2 * MACs. Both are
per image.
"""
from __future__ import annotations

import argparse
import copy
import inspect
import statistics
import time

import torch
from torch import nn

from selfsup.backbones import BACKBONES, backbone_names, build_backbone
from selfsup.precision import Precision, autocast, autocast_dtype, resolved


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@torch.no_grad()
def count_macs(model: nn.Module, size: int | tuple[int, int]) -> int:
    """Multiply-accumulates of every conv and linear layer for one ``size`` x ``size`` (or (H, W)) image."""
    height, width = (size, size) if isinstance(size, int) else size
    total = 0

    def conv_hook(m: nn.Conv2d, inp, out: torch.Tensor) -> None:
        nonlocal total
        kh, kw = m.kernel_size
        total += out[0].numel() * (m.in_channels // m.groups) * kh * kw  # per output element

    def linear_hook(m: nn.Linear, inp, out: torch.Tensor) -> None:
        nonlocal total
        total += out[0].numel() * m.in_features

    hooks = [m.register_forward_hook(conv_hook if isinstance(m, nn.Conv2d) else linear_hook)
             for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    was_training = model.training
    model.eval()
    try:
        p = next(model.parameters())
        model(torch.zeros(1, getattr(model, "in_channels", 3), height, width, dtype=p.dtype, device=p.device))
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    return total


def count_flops(model: nn.Module, size: int | tuple[int, int]) -> int:
    """FLOPs per image, counted as 2 * MACs of conv and linear layers (see count_macs)."""
    return 2 * count_macs(model, size)


def train_images_per_s(
    model: nn.Module,
    size: int = 32,
    batch: int = 64,
    precision: Precision = "auto",
    steps: int = 3,
    threads: int | None = None,
) -> float:
    """Images per second of forward + backward + SGD step, channels_last, on CPU.

    Works on a copy (the caller's weights and BN statistics are untouched); one
    untimed warm-up step, then ``batch`` / the median time of ``steps`` timed steps
    (the median shrugs off a step slowed by another process). The loss is the mean
    square of the pre-logits: it reaches every parameter, and its own cost is
    negligible next to the network's. ``threads`` sets torch's intra-op threads for
    the measurement only; on a shared machine 1 thread gives repeatable numbers,
    while more threads can stall for seconds at OpenMP barriers when cores are busy.
    """
    model = copy.deepcopy(model).train().to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    x = torch.randn(batch, getattr(model, "in_channels", 3), size, size).to(memory_format=torch.channels_last)
    amp = autocast_dtype(precision, "cpu")

    def step() -> None:
        with autocast("cpu", amp):
            loss = model(x).float().square().mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    threads_before = torch.get_num_threads()
    torch.set_num_threads(threads or threads_before)
    try:
        step()
        times = []
        for _ in range(steps):
            start = time.perf_counter()
            step()
            times.append(time.perf_counter() - start)
    finally:
        torch.set_num_threads(threads_before)
    return batch / statistics.median(times)


def saved_activation_bytes(model: nn.Module, x: torch.Tensor) -> int:
    """Bytes that autograd keeps for backward after ``model(x)`` (parameters excluded).

    Counts each storage once, via saved-tensor hooks that see every tensor an op
    (or a custom Function) saves.
    """
    param_storages = {p.untyped_storage().data_ptr() for p in model.parameters()}
    storages: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        s = t.untyped_storage()
        if s.data_ptr() not in param_storages:
            storages[s.data_ptr()] = s.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = model.train()(x)
    del out
    return sum(storages.values())


def peak_step_bytes(model: nn.Module, x: torch.Tensor) -> int:
    """Peak bytes of tensors allocated during one forward + backward, above what was live before.

    Replays the CPU allocator's allocation and free events recorded by
    ``torch.profiler`` (``profile_memory=True``) in time order and takes the
    maximum of the running sum, so it includes the transient buffers of the
    backward (e.g. RevNet's recomputation), not only what autograd stored.
    """
    model.train()
    peak = peak_allocated_bytes(lambda: model(x).float().square().mean().backward())
    model.zero_grad(set_to_none=True)
    return peak


def peak_allocated_bytes(fn) -> int:
    """Peak bytes of CPU tensors allocated while ``fn()`` runs, above what was live before.

    Replays the CPU allocator's allocation and free events recorded by
    ``torch.profiler`` (``profile_memory=True``) in time order and takes the
    maximum of the running sum.
    """
    from torch._C._profiler import _EventType
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    events: list[tuple[int, int]] = []  # (time ns, +bytes allocated / -bytes freed)
    stack = list(prof.profiler.kineto_results.experimental_event_tree())
    while stack:
        e = stack.pop()
        stack.extend(e.children)
        if e.tag == _EventType.Allocation:
            events.append((e.start_time_ns, e.extra_fields.alloc_size))
    if not events:
        raise RuntimeError("torch.profiler recorded no allocation events; cannot measure peak memory")
    live = peak = 0
    for _, nbytes in sorted(events):
        live += nbytes
        peak = max(peak, live)
    return peak


def revnet_memory(batch: int, size: int, *, width: float = 1.0) -> tuple[int, int]:
    """(peak bytes with memory-saving backward, peak bytes with plain backprop) for revnet50.

    Same weights and input, fp32, one training step each; see peak_step_bytes.
    """
    torch.manual_seed(0)
    saving = build_backbone("revnet50", width=width, memory_saving=True)
    plain = build_backbone("revnet50", width=width, memory_saving=False)
    plain.load_state_dict(saving.state_dict())
    x = torch.randn(batch, 3, size, size)
    return peak_step_bytes(saving, x), peak_step_bytes(plain, x)


def _build_for_size(name: str, width: float, size: int) -> nn.Module:
    """The ImageNet stem at >= 128 px where the backbone has one, the small stem otherwise."""
    kwargs: dict = {"width": width}
    if "stem" in inspect.signature(BACKBONES.get(name)).parameters:
        kwargs["stem"] = "imagenet" if size >= 128 else "small"
    return build_backbone(name, **kwargs)


def markdown_table(
    names: list[str] | None = None,
    *,
    width: float = 1.0,
    batch: int = 64,
    steps: int = 3,
    precision: Precision = "auto",
    threads: int | None = None,
) -> str:
    """Markdown table: params, GFLOPs at 32 px (small stem) and 224 px (ImageNet stem), CPU img/s at 32 px."""
    names = backbone_names() if names is None else names
    rows = [
        f"| backbone (width {width:g}) | params (M) | pre-logits | GFLOPs @32 px | GFLOPs @224 px "
        f"| train img/s @32 px ({resolved(precision, 'cpu')}, batch {batch}, "
        f"{threads or torch.get_num_threads()} threads) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name in names:
        small = _build_for_size(name, width, 32)
        large = _build_for_size(name, width, 224)
        rows.append(
            f"| {name} | {count_params(small) / 1e6:.2f} | {small.out_dim} | {count_flops(small, 32) / 1e9:.2f} "
            f"| {count_flops(large, 224) / 1e9:.2f} "
            f"| {train_images_per_s(small, 32, batch, precision, steps, threads):.0f} |"
        )
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="selfsup backbones", description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="backbones to profile (default: all registered)")
    parser.add_argument("--width", type=float, default=1.0)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--precision", choices=["auto", "bf16", "fp32"], default="auto",
                        help="auto: bf16 where the CPU runs it fast")
    parser.add_argument(
        "--threads", type=int, default=None, help="torch threads for the speed column (default: torch's)"
    )
    parser.add_argument("--revnet-batch", type=int, default=64, help="batch for the RevNet memory row; 0 skips it")
    args = parser.parse_args(argv)
    unknown = [n for n in args.names if n not in backbone_names()]
    if unknown:
        parser.error(f"unknown backbone {unknown[0]!r}; choose from: {', '.join(backbone_names())}")
    print(markdown_table(args.names or None, width=args.width, batch=args.batch, steps=args.steps,
                         precision=args.precision, threads=args.threads))
    if args.revnet_batch:
        saving, plain = revnet_memory(args.revnet_batch, 32, width=args.width)
        x = torch.randn(args.revnet_batch, 3, 32, 32)
        stored = [saved_activation_bytes(build_backbone("revnet50", width=args.width, memory_saving=on), x)
                  for on in (True, False)]
        print(f"\nrevnet50 (width {args.width:g}), one fp32 training step, batch {args.revnet_batch} at 32 px, "
              f"memory-saving backward vs plain backprop:\n"
              f"- peak tensor memory during the step: {saving / 2**20:.0f} MiB vs {plain / 2**20:.0f} MiB "
              f"({saving / plain:.2f}x)\n"
              f"- activations stored for backward: {stored[0] / 2**20:.0f} MiB vs {stored[1] / 2**20:.0f} MiB "
              f"({stored[0] / stored[1]:.2f}x)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
