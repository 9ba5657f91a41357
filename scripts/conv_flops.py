"""FLOP/s of one 3x3 convolution of each ResNet-18 stage (small stem, 32 px input) alone, forward + backward.

The ceiling for `selfsup speed`'s backbone FLOP/s on a CPU: the whole backbone adds batch norm, ReLU and
the residual adds, which do few FLOPs but take time. The convolutions are the backbones' own
(``gemm_conv.Conv2d``: oneDNN, or one matrix product on small maps). Prints each against the measured matmul peak, then
the operators with the most self time (and their share) in fp32 forward+backward+SGD steps of the bare
backbone (torch.profiler).

    python3 scripts/conv_flops.py [BATCH]      # default 256, channels-last, fp32 then bf16 autocast
"""
import sys
import time

import torch

from selfsup.backbones import build_backbone
from selfsup.backbones.gemm_conv import Conv2d
from selfsup.hardware import keep_freed_cpu_memory
from selfsup.train.speed import matmul_flops, profile_table

STAGES = ((64, 32), (128, 16), (256, 8), (512, 4))  # (channels, side) of ResNet-18's stages at 32 px


def best_flops(fn, flops: float, repeats: int = 3) -> float:
    fn()  # warm-up: oneDNN picks and caches its kernels
    best = 0.0
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = max(best, flops / (time.perf_counter() - start))
    return best


def main(batch: int) -> None:
    torch.manual_seed(0)
    cpu = torch.device("cpu")
    for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        peak = matmul_flops(dtype, cpu, seconds=1.0)
        print(f"{name}: matmul peak {peak / 1e9:.0f} GFLOP/s")
        for channels, side in STAGES:
            conv = Conv2d(channels, channels, 3, padding=1, bias=False).to(memory_format=torch.channels_last)
            x = torch.randn(batch, channels, side, side).to(memory_format=torch.channels_last).requires_grad_()
            forward_flops = 2 * channels * channels * 9 * side * side * batch

            def forward():
                with torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype == torch.bfloat16):
                    return conv(x)

            def train_step():  # forward, gradient of the input and of the weight: 3x the forward's FLOPs
                forward().float().sum().backward()

            with torch.no_grad():
                fwd = best_flops(forward, forward_flops)
            both = best_flops(train_step, 3 * forward_flops)
            print(f"  {channels:3d} ch at {side:2d} px: forward {fwd / 1e9:5.0f} GFLOP/s ({fwd / peak:4.0%}), "
                  f"forward + backward {both / 1e9:5.0f} ({both / peak:4.0%})")


def bare_step_profile(batch: int, rows: int = 8) -> None:
    net = build_backbone("resnet18_v1", stem="small").to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(net.parameters(), lr=0.01)
    x = torch.randn(batch, 3, 32, 32).to(memory_format=torch.channels_last)

    def step():
        net(x).square().mean().backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    step()  # warm-up
    print(f"bare ResNet-18 fp32 step, batch {batch}:")
    print(profile_table(step, torch.device("cpu"), rows))


if __name__ == "__main__":
    size = int(sys.argv[1]) if len(sys.argv) > 1 else 256
    keep_freed_cpu_memory()  # as training does
    main(size)
    bare_step_profile(size)
