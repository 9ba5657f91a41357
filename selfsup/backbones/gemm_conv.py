"""3x3 convolutions on small maps as single matrix products (CPU).

On maps of a few pixels (a ResNet's last stage at 32 px input, multi-crop's small views, jigsaw's
tiles) oneDNN's direct kernels can run far below the machine's matrix-product speed. Written as
im2col + one product, a 4 x 4 map is a (B*16, 9*C) matrix, cheap to build, and the forward, the
input gradient (itself a 3x3 convolution, of the flipped, transposed weight) and the weight gradient
are each one product of the same FLOPs as the convolution. Larger maps stay with oneDNN, and so do
few channels, where the product's extra memory traffic costs more than it saves. Compile with
``dynamic=False`` (as ``train.compile`` and ``selfsup speed --compile`` do): with symbolic sizes
(multi-crop's views of two sizes), inductor failed to order this output's strides.

Where the product wins depends on the CPU (with AMX tiles, oneDNN needs several output rows to fill
them; without AMX its kernels win at 4 x 4), so ``product_rule()`` picks ``AMX_RULE`` or
``NO_AMX_RULE`` once, on first use, and ``PRODUCT_WHEN`` set by hand (a rule, or ``{}`` for never)
overrides it. The timings behind both rules: docs/speed.md#small-map-convolutions.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def has_amx() -> bool:
    """Whether this CPU has AMX tiles (the ``amx_tile`` flag)."""
    probe = getattr(torch.cpu, "_is_amx_tile_supported", None)  # private, hence the fallback
    if probe is not None:
        return bool(probe())
    try:
        return " amx_tile" in open("/proc/cpuinfo").read()
    except OSError:
        return False


# dtype -> (most pixels of a map, fewest input channels) that take the product path, where it ran faster
# than oneDNN forward + backward (docs/speed.md#small-map-convolutions); a dtype not listed never takes it
AMX_RULE = {torch.bfloat16: (16, 64), torch.float32: (16, 256)}
NO_AMX_RULE = {torch.bfloat16: (4, 256)}
PRODUCT_WHEN: dict[torch.dtype, tuple[int, int]] | None = None  # None: product_rule() picks by CPU on first use


def product_rule() -> dict[torch.dtype, tuple[int, int]]:
    """``PRODUCT_WHEN``, chosen from the CPU the first time a convolution asks (not at import)."""
    global PRODUCT_WHEN
    if PRODUCT_WHEN is None:
        PRODUCT_WHEN = AMX_RULE if has_amx() else NO_AMX_RULE
    return PRODUCT_WHEN


def columns(x: Tensor) -> Tensor:
    """(B, C, H, W) -> (B*H*W, 9*C): each pixel's zero-padded 3x3 neighbourhood, in (kh, kw, c) order."""
    b, c, h, w = x.shape
    padded = F.pad(x.permute(0, 2, 3, 1), (0, 0, 1, 1, 1, 1))  # (B, H+2, W+2, C)
    windows = padded.unfold(1, 3, 1).unfold(2, 3, 1)  # (B, H, W, C, 3, 3), a view
    return windows.permute(0, 1, 2, 4, 5, 3).reshape(b * h * w, 9 * c)


def _as_maps(rows: Tensor, b: int, h: int, w: int) -> Tensor:
    """(B*H*W, C) -> (B, C, H, W) in channels-last memory, without a copy."""
    return rows.view(b, h, w, rows.shape[1]).permute(0, 3, 1, 2)  # no -1: torch.compile's symbolic sizes fail on it


class _Conv3x3Product(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor) -> Tensor:
        b, _, h, w = x.shape
        cols = columns(x)
        ctx.save_for_backward(cols, weight)
        ctx.shape = (b, h, w)
        cout, cin = weight.shape[:2]
        return _as_maps(cols @ weight.permute(0, 2, 3, 1).reshape(cout, 9 * cin).t(), b, h, w)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor | None, Tensor | None]:
        cols, weight = ctx.saved_tensors
        b, h, w = ctx.shape
        cout, cin = weight.shape[:2]
        grad_x = grad_w = None
        if ctx.needs_input_grad[0]:  # a 3x3 convolution of the gradient with the flipped, transposed weight
            flipped = weight.flip(2, 3).permute(1, 2, 3, 0).reshape(cin, 9 * cout)
            grad_x = _as_maps(columns(grad) @ flipped.t(), b, h, w)
        if ctx.needs_input_grad[1]:
            rows = grad.permute(0, 2, 3, 1).reshape(b * h * w, cout)
            grad_w = (rows.t() @ cols).view(cout, 3, 3, cin).permute(0, 3, 1, 2)
        return grad_x, grad_w


class Conv2d(nn.Conv2d):
    """``nn.Conv2d`` (same parameters and state dict) that runs 3x3, stride-1, bias-free convolutions of
    small CPU maps with many channels (``product_rule()``) as matrix products; every other case as usual."""

    def forward(self, x: Tensor) -> Tensor:
        dtype = torch.get_autocast_dtype("cpu") if torch.is_autocast_enabled("cpu") else x.dtype
        max_pixels, min_channels = product_rule().get(dtype, (0, 0))
        if (
            x.device.type != "cpu"
            or x.shape[-2] * x.shape[-1] > max_pixels
            or self.in_channels < min_channels
            or self.kernel_size != (3, 3)
            or self.stride != (1, 1)
            or self.padding != (1, 1)
            or self.dilation != (1, 1)
            or self.groups != 1
            or self.bias is not None
        ):
            return super().forward(x)
        # explicit casts: products in bf16, the fp32 weight's gradient in fp32
        with torch.autocast("cpu", enabled=False):
            return _Conv3x3Product.apply(x.to(dtype), self.weight.to(dtype))
