"""CIE Lab for colorization: the L input, the quantized ab target, rebalancing, decoding.

Zhang, Isola & Efros, "Colorful Image Colorization", ECCV 2016, arXiv:1603.08511,
quantize ab into a grid of bins of side 10 and keep the Q = 313 in-gamut ones
(Sec. 2.1). Here the in-gamut bins are found by
converting a dense grid of sRGB colours to Lab and keeping every ab bin that one
of them falls in (``ab_gamut_bins``); the count depends on the sampling and the
Lab implementation (kornia's D65 sRGB), not on a stored table.
"""
from __future__ import annotations

import torch
from kornia.color import lab_to_rgb, rgb_to_lab

from selfsup.augment.convert import check_images, to_unit_float

AB_RANGE = 110.0  # |a|, |b| of every sRGB colour stays below ~107 in kornia's Lab


def lightness_input(images: torch.Tensor) -> torch.Tensor:
    """uint8 (B, C, H, W), C in {1, 3} -> the colorization network's input (B, 1, H, W): L / 50 - 1 in [-1, 1].

    Grey images (C=1) are read as R = G = B, so a grey data set (Fashion-MNIST)
    reaches an L-only encoder exactly as the L channel of a colour photo would.
    Use it as the ``transform`` of ``selfsup.eval.features.extract_features``.
    """
    check_images(images)
    rgb = to_unit_float(images).expand(-1, 3, -1, -1)  # (B, 3, H, W) in [0, 1]
    return rgb_to_lab(rgb)[:, :1] / 50.0 - 1.0


def ab_gamut_bins(bin_size: float = 10.0, samples_per_channel: int = 64) -> torch.Tensor:
    """Centres (Q, 2) of the ab grid cells of side ``bin_size`` that some sRGB colour falls in.

    The grid is aligned on 0 (centres at multiples of ``bin_size``, as Zhang et
    al.'s), cells ordered by a, then b. ``samples_per_channel``^3 sRGB colours
    are converted: at size 10, 64 steps give Q = 261 bins (128 steps find one more,
    a sliver at the gamut's edge; Zhang et al.'s own table has 313).
    """
    if not bin_size > 0:
        raise ValueError(f"bin_size must be > 0, got {bin_size!r}")
    v = torch.linspace(0, 1, samples_per_channel, dtype=torch.float64)
    rgb = torch.cartesian_prod(v, v, v).T.reshape(1, 3, -1, 1)  # (1, 3, S^3, 1)
    ab = rgb_to_lab(rgb)[0, 1:, :, 0].T  # (S^3, 2)
    cells = torch.unique(torch.round(ab / bin_size).long(), dim=0)  # (Q, 2), sorted by a then b
    return cells.float() * bin_size


def nearest_bins(ab: torch.Tensor, centers: torch.Tensor) -> torch.Tensor:
    """ab (B, 2, H, W) -> index (B, H, W) of the nearest bin centre among ``centers`` (Q, 2)."""
    b, _, h, w = ab.shape
    d = torch.cdist(ab.permute(0, 2, 3, 1).reshape(-1, 2).float(), centers.float())  # (BHW, Q)
    return d.argmin(dim=1).view(b, h, w)


def soft_encode(ab: torch.Tensor, centers: torch.Tensor, neighbours: int = 5, sigma: float = 5.0) -> torch.Tensor:
    """ab (B, 2, H, W) -> target distribution (B, Q, H, W) over the bins.

    Zhang et al. (Sec. 2.1) spread each true colour over its 5 nearest bins,
    weighted by a Gaussian kernel (sigma = 5) of the distance. ``neighbours=1``
    gives one-hot targets.
    """
    b, _, h, w = ab.shape
    q = centers.shape[0]
    if not 1 <= neighbours <= q:
        raise ValueError(f"neighbours must be in [1, {q}], got {neighbours!r}")
    d2 = torch.cdist(ab.permute(0, 2, 3, 1).reshape(-1, 2).float(), centers.float()).pow(2)  # (BHW, Q)
    near_d2, near = d2.topk(neighbours, dim=1, largest=False)  # (BHW, k)
    weights = torch.softmax(-near_d2 / (2 * sigma**2), dim=1)  # Gaussian weights, normalised
    target = torch.zeros_like(d2).scatter_(1, near, weights)  # (BHW, Q)
    return target.view(b, h, w, q).permute(0, 3, 1, 2)


def rebalancing_weights(
    counts: torch.Tensor, centers: torch.Tensor, sigma: float = 5.0, lam: float = 0.5
) -> torch.Tensor:
    """Per-bin loss weights (Q,) from bin counts (Q,): w ∝ ((1 - lam) p~ + lam / Q)^-1, E_p~[w] = 1.

    Zhang et al. (Eq. 4; lambda = 1/2, sigma = 5): smooth the empirical bin
    distribution with a Gaussian kernel, mix it with the uniform one, take the
    reciprocal, normalise to 1 in expectation. The kernel acts in ab space
    between bin centres; ``sigma=0`` leaves p unsmoothed.
    """
    if not 0.0 <= lam <= 1.0:
        raise ValueError(f"lam must be in [0, 1], got {lam!r}")
    counts = counts.double()
    if counts.sum() <= 0:
        raise ValueError("counts must hold at least one sample")
    p = counts / counts.sum()
    if sigma > 0:
        c = centers.double()
        kernel = torch.exp(-torch.cdist(c, c).pow(2) / (2 * sigma**2))  # (Q, Q)
        p = kernel @ p
        p = p / p.sum()
    w = 1.0 / ((1.0 - lam) * p + lam / p.numel())
    return (w / (p * w).sum()).float()


def decode_ab(logits: torch.Tensor, centers: torch.Tensor, temperature: float = 0.38) -> torch.Tensor:
    """Bin logits (B, Q, H, W) -> ab (B, 2, H, W) by the annealed mean.

    Zhang et al. (Eq. 5) sharpen the softmax with a temperature T = 0.38 and
    take the mean of the bin centres; T = 1 is the plain expectation, T -> 0 the mode.
    """
    probs = torch.softmax(logits.float() / temperature, dim=1)  # (B, Q, H, W)
    return torch.einsum("bqhw,qc->bchw", probs, centers.to(probs))


def lab_to_uint8(lightness: torch.Tensor, ab: torch.Tensor) -> torch.Tensor:
    """L in [0, 100] (B, 1, H, W) and ab (B, 2, H, W) -> uint8 sRGB (B, 3, H, W), out-of-gamut colours clipped."""
    rgb = lab_to_rgb(torch.cat([lightness.float(), ab.float()], dim=1), clip=True)
    return (rgb * 255).round().clamp(0, 255).to(torch.uint8)


def split_lab(rgb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """RGB in [0, 1] (B, 3, H, W) -> L (B, 1, H, W) in [0, 100] and ab (B, 2, H, W), in float32."""
    lab = rgb_to_lab(rgb.float().clamp(0, 1))
    return lab[:, :1], lab[:, 1:]

