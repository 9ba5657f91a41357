"""Throughput of the full training step next to the bare backbone's forward+backward.

Both sides process the same number of backbone inputs per step (SimCLR feeds 2
views per image, rotation 4), in the same precision and memory format, so the
ratio shows exactly what augmentation, heads, loss and the loop cost.
"""
from __future__ import annotations

import time

import torch

from selfsup.augment import ViewAugment
from selfsup.backbones import build_backbone
from selfsup.data import Batch
from selfsup.methods import build_method
from selfsup.train.loop import train_step
from selfsup.train.optim import build_optimizer

def _timed(fn, steps: int) -> float:
    fn()  # warm-up (allocator, oneDNN kernels)
    fn()
    start = time.perf_counter()
    for _ in range(steps):
        fn()
    return (time.perf_counter() - start) / steps


def _backbone_inputs(method, batch: Batch, amp) -> int:
    """How many images the method's backbone sees in one step, counted, not assumed."""
    seen = []
    hook = method.backbone.register_forward_pre_hook(lambda module, args: seen.append(args[0].shape[0]))
    with torch.no_grad(), torch.autocast("cpu", dtype=amp, enabled=amp is not None):
        method.training_step(batch, 0)
    hook.remove()
    return sum(seen)


def bench_training(methods: list[str], backbone: str = "resnet18_v1", size: int = 32, batch_size: int = 256,
                   steps: int = 5, precision: str = "bf16") -> list[dict]:
    amp = torch.bfloat16 if precision == "bf16" else None
    torch.manual_seed(0)
    images = torch.randint(0, 256, (batch_size, 3, size, size), dtype=torch.uint8)
    batch = Batch(images, torch.arange(batch_size))
    rows = []
    for name in methods:
        method = build_method(name, backbone=build_backbone(backbone), augment=ViewAugment(size=size))
        method = method.to(memory_format=torch.channels_last).train()
        opt = build_optimizer("sgd", method, lr=0.01, weight_decay=1e-4)
        full = _timed(lambda: train_step(method, opt, batch, 0, amp, None), steps)
        views = _backbone_inputs(method, batch, amp) // batch_size  # e.g. 2 for SimCLR, 4 for RotNet

        bare_net = build_backbone(backbone).to(memory_format=torch.channels_last).train()
        bare_opt = build_optimizer("sgd", bare_net, lr=0.01, weight_decay=1e-4)
        x = torch.randn(batch_size * views, 3, size, size).contiguous(memory_format=torch.channels_last)

        def bare_step():
            with torch.autocast("cpu", dtype=amp) if amp else torch.autocast("cpu", enabled=False):
                loss = bare_net(x).float().pow(2).mean()
            bare_opt.zero_grad(set_to_none=True)
            loss.backward()
            bare_opt.step()

        bare = _timed(bare_step, steps)
        rows.append({"method": name, "images_per_s": batch_size / full, "views_per_s": batch_size * views / full,
                     "bare_views_per_s": batch_size * views / bare, "ratio": bare / full})
    print(f"\n{backbone} at {size} px, batch {batch_size}, {precision}, {torch.get_num_threads()} threads, mean of {steps} steps")
    print("| method | images/s | backbone inputs/s (full step) | bare backbone fwd+bwd inputs/s | full / bare |")
    print("|---|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['method']} | {r['images_per_s']:.0f} | {r['views_per_s']:.0f} | {r['bare_views_per_s']:.0f} | {r['ratio']:.0%} |")
    return rows
