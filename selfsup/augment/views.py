"""Random views for joint-embedding methods (SimCLR, MoCo, BYOL, SwAV, DINO, ...), batched on the batch's device.

The pipeline is SimCLR's (arXiv:2002.05709, appendix A): "random crop and
resize (with random flip), color distortion, and Gaussian blur", with BYOL's
solarisation (arXiv:2006.07733, table 6) as a last optional step.

Every random parameter of every sample is drawn up front, from one
``torch.rand`` call on the caller's CPU generator, into a fixed column layout
(``_COLUMNS``): the same seed gives bit-identical views whatever the
probabilities, and the small parameter tensors are the only thing moved to
the device. Crop, flip and resize are one ``affine_grid`` + ``grid_sample``;
the other ops run on the subset of samples they apply to.

Colour jitter applies brightness, contrast, saturation, hue in that FIXED
order (torchvision draws a random order per image; a per-sample order cannot
be batched cheaply and no method we reproduce depends on it).
"""
from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import kornia
import torch
import torch.nn.functional as F

from selfsup.augment.convert import channel_stats, check_images, normalize_to_3ch, to_unit_float
from selfsup.checks import number, ordered_pair, probability

_CROP_TRIES = 10  # candidate (area, ratio) pairs per sample, as torchvision's RandomResizedCrop
_COLUMNS = {  # column slices of the (N, 32) uniform draw; order fixed so seeds stay reproducible
    "area": slice(0, _CROP_TRIES),
    "log_ratio": slice(_CROP_TRIES, 2 * _CROP_TRIES),
    "cx": 20,
    "cy": 21,
    "flip": 22,
    "jitter": 23,
    "brightness": 24,
    "contrast": 25,
    "saturation": 26,
    "hue": 27,
    "gray": 28,
    "blur": 29,
    "sigma": 30,
    "solarize": 31,
}
_N_UNIFORMS = 32
_CPU_CHUNK_FLOATS = 196_608  # 768 KB of float32 per chunk of views


@contextlib.contextmanager
def _one_cpu_thread() -> Iterator[None]:
    """Run the block (or decorated method) with one intra-op thread, then restore the caller's count.

    The pipeline is ~100 short ops (``exp`` goes parallel even on 2,560
    elements). With as many threads as cores and the cores busy with anything
    else, every op waits at its OpenMP barrier for a descheduled thread, and
    the whole pipeline slows by orders of magnitude
    (docs/speed.md#augmentation-and-data-loading). One thread loses little on
    an idle machine (the ops are memory-bound).
    """
    before = torch.get_num_threads()
    if before == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@dataclass
class ViewParams:
    """The random parameters of N views, all on the CPU; ``render`` applies them to images."""

    theta: torch.Tensor  # (N, 2, 3) affine map, output -> input normalised coordinates (crop, resize, flip)
    jitter: torch.Tensor  # (N,) bool, colour jitter applied
    factors: torch.Tensor  # (N, 4) brightness, contrast, saturation factors and hue shift in turns
    gray: torch.Tensor  # (N,) bool, greyscale applied
    blur: torch.Tensor  # (N,) bool, Gaussian blur applied
    sigma: torch.Tensor  # (N,) blur sigma in output pixels
    solarize: torch.Tensor  # (N,) bool, solarisation applied

    def rows(self, start: int, stop: int) -> "ViewParams":
        """The parameters of views start..stop-1."""
        return ViewParams(**{k: v[start:stop] for k, v in vars(self).items()})


class ViewAugment:
    """One random view per image: crop+resize -> flip -> colour jitter -> grey -> blur -> solarize -> normalise.

    Call with a uint8 batch (B, C, H, W), C in {1, 3}, on any device; returns
    float32 (B, 3, size, size) on the same device. Grey inputs stay 1-channel
    until the final normalisation (saturation, hue and greyscale are no-ops on
    them). Crops are sampled like torchvision's RandomResizedCrop (10 tries,
    then a centre crop) but with sub-pixel boxes, resampled bilinearly without
    antialiasing: fine while crops are at most ~2x the output side.
    """

    def __init__(
        self,
        size: int,
        *,
        crop_scale: tuple[float, float] = (0.2, 1.0),
        crop_ratio: tuple[float, float] = (3 / 4, 4 / 3),
        flip_p: float = 0.5,
        jitter_p: float = 0.8,
        brightness: float = 0.4,
        contrast: float = 0.4,
        saturation: float = 0.2,
        hue: float = 0.1,
        gray_p: float = 0.2,
        blur_p: float = 0.0,
        blur_sigma: tuple[float, float] = (0.1, 2.0),
        blur_kernel: int | None = None,
        solarize_p: float = 0.0,
        mean: tuple[float, ...] = (0.5,),
        std: tuple[float, ...] = (0.5,),
    ):
        """Colour defaults are BYOL's (0.4, 0.4, 0.2, 0.1 at p 0.8; grey at p 0.2); SimCLR's
        CIFAR setting differs only in saturation 0.4. No blur by default, as SimCLR on CIFAR.

        ``crop_scale`` is the crop's fraction of the image area, ``crop_ratio``
        its width/height range. ``brightness``/``contrast``/``saturation`` draw a
        factor in [max(0, 1 - v), 1 + v]; ``hue`` a shift in [-hue, hue] turns.
        ``blur_kernel`` None picks an odd side of ~10% of ``size`` (>= 3), as
        SimCLR does. Solarisation inverts pixels >= 0.5 (BYOL's threshold).
        """
        if isinstance(size, bool) or not isinstance(size, int) or size <= 0:
            raise ValueError(f"size must be a positive int, got {size!r}")
        self.size = size
        self.crop_scale = ordered_pair("crop_scale", crop_scale, low=0.0, high=1.0, low_open=True)
        self.crop_ratio = ordered_pair("crop_ratio", crop_ratio, low=0.0, high=math.inf, low_open=True)
        self.flip_p = probability("flip_p", flip_p)
        self.jitter_p = probability("jitter_p", jitter_p)
        self.brightness = number("brightness", brightness, low=0.0)
        self.contrast = number("contrast", contrast, low=0.0)
        self.saturation = number("saturation", saturation, low=0.0)
        self.hue = number("hue", hue, low=0.0, high=0.5)
        self.gray_p = probability("gray_p", gray_p)
        self.blur_p = probability("blur_p", blur_p)
        self.blur_sigma = ordered_pair("blur_sigma", blur_sigma, low=0.0, high=math.inf, low_open=True)
        if blur_kernel is None:
            blur_kernel = max(3, int(0.1 * size) // 2 * 2 + 1)
        if (
            isinstance(blur_kernel, bool)
            or not isinstance(blur_kernel, int)
            or blur_kernel < 1
            or blur_kernel % 2 == 0
            or blur_kernel >= 2 * size  # reflected padding needs radius < size
        ):
            raise ValueError(f"blur_kernel must be an odd int in [1, {2 * size - 1}] or None, got {blur_kernel!r}")
        self.blur_kernel = blur_kernel
        self.solarize_p = probability("solarize_p", solarize_p)
        self.mean = channel_stats(mean, "mean")
        self.std = channel_stats(std, "std", positive=True)

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({fields})"

    def __call__(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """uint8 (B, C, H, W) -> float32 (B, 3, size, size): one view per image, parameters drawn per sample."""
        check_images(images)
        b, _, h, w = images.shape
        return self.render(images, self.sample_params(b, h, w, generator))

    def views(self, images: torch.Tensor, n_views: int, generator: torch.Generator | None = None) -> list[torch.Tensor]:
        """``n_views`` independent views of every image, computed as one batch of n_views * B.

        Cheaper than ``n_views`` calls for small views, where per-call overhead dominates.
        """
        check_images(images)
        if isinstance(n_views, bool) or not isinstance(n_views, int) or n_views < 1:
            raise ValueError(f"n_views must be a positive int, got {n_views!r}")
        b, _, h, w = images.shape
        params = self.sample_params(n_views * b, h, w, generator)
        return list(self.render(images.repeat(n_views, 1, 1, 1), params).split(b))  # n_views x (B, 3, S, S)

    @_one_cpu_thread()
    def sample_params(self, n: int, height: int, width: int, generator: torch.Generator | None = None) -> ViewParams:
        """Draw the random parameters of ``n`` views of height x width images (all on the CPU)."""
        u = _uniforms(n, generator)  # (n, 32), columns as _COLUMNS
        lo, hi = self.blur_sigma
        return ViewParams(
            theta=self._crop_flip_theta(u, height, width),
            jitter=u[:, _COLUMNS["jitter"]] < self.jitter_p,
            factors=self._jitter_factors(u),
            gray=u[:, _COLUMNS["gray"]] < self.gray_p,
            blur=u[:, _COLUMNS["blur"]] < self.blur_p,
            sigma=lo + (hi - lo) * u[:, _COLUMNS["sigma"]],
            solarize=u[:, _COLUMNS["solarize"]] < self.solarize_p,
        )

    @_one_cpu_thread()
    def render(self, images: torch.Tensor, params: ViewParams) -> torch.Tensor:
        """Apply drawn ``params`` to uint8 images (N, C, H, W): float32 (N, 3, size, size) on their device.

        On the CPU the batch goes through in chunks whose views fit in L2 cache:
        the pixel ops are memory-bound there, and chunks beat the whole batch at
        once (docs/speed.md#augmentation-and-data-loading).
        """
        check_images(images)
        n = images.shape[0]
        if params.theta.shape[0] != n:
            raise ValueError(f"params are for {params.theta.shape[0]} views but images hold {n}")
        if images.device.type != "cpu":
            return self._render_chunk(images, params)
        per_chunk = max(1, _CPU_CHUNK_FLOATS // (3 * self.size * self.size))
        out = torch.empty(n, 3, self.size, self.size)
        for start in range(0, n, per_chunk):
            stop = min(n, start + per_chunk)
            self._render_chunk(images[start:stop], params.rows(start, stop), out=out[start:stop])
        return out

    def _render_chunk(self, images: torch.Tensor, p: ViewParams, out: torch.Tensor | None = None) -> torch.Tensor:
        n, c, _, _ = images.shape
        device = images.device
        x = to_unit_float(images)  # (n, C, H, W) in [0, 1]
        theta = p.theta.to(device, non_blocking=True)  # (n, 2, 3)
        grid = F.affine_grid(theta, [n, c, self.size, self.size], align_corners=False)  # (n, S, S, 2)
        x = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)  # (n, C, S, S)
        if self.jitter_p > 0:
            x = _on_rows(x, p.jitter, lambda sub, r: self._jitter(sub, p.factors[r]))
        if self.gray_p > 0 and c == 3:
            x = _on_rows(x, p.gray, lambda sub, r: kornia.color.rgb_to_grayscale(sub).repeat(1, 3, 1, 1))
        if self.blur_p > 0:
            x = _on_rows(x, p.blur, lambda sub, r: gaussian_blur(sub, p.sigma[r], self.blur_kernel))
        if self.solarize_p > 0 and bool(p.solarize.any()):
            # BYOL's solarisation at threshold 0.5 is min(x, 1 - x) = x - relu(2x - 1), exact in float;
            # weighting the correction by a 0/1 per-sample flag avoids slow bool masks and indexing.
            chosen = p.solarize.to(device=device, dtype=x.dtype, non_blocking=True).view(n, 1, 1, 1)
            x = x.addcmul_(torch.relu(x * 2.0 - 1.0), chosen, value=-1.0)
        return normalize_to_3ch(x, self.mean, self.std, out=out)  # (n, 3, S, S)

    def _crop_flip_theta(self, u: torch.Tensor, h: int, w: int) -> torch.Tensor:
        """Affine maps (N, 2, 3) from output to input normalised coordinates: crop box, resize and flip."""
        lo, hi = self.crop_scale
        log_r0, log_r1 = math.log(self.crop_ratio[0]), math.log(self.crop_ratio[1])
        area = (lo + (hi - lo) * u[:, _COLUMNS["area"]]) * (h * w)  # (N, tries) in pixels^2
        ratio = torch.exp(log_r0 + (log_r1 - log_r0) * u[:, _COLUMNS["log_ratio"]])  # (N, tries) width / height
        cw, ch = torch.sqrt(area * ratio), torch.sqrt(area / ratio)  # (N, tries)
        fits = (cw <= w) & (ch <= h)
        first = fits.to(torch.uint8).argmax(dim=1, keepdim=True)  # (N, 1) first fitting try
        crop_w, crop_h = cw.gather(1, first).squeeze(1), ch.gather(1, first).squeeze(1)  # (N,)
        # No try fits: torchvision's fallback, the largest centre crop with the ratio clamped to range.
        fall_w, fall_h = float(w), float(h)
        if w / h < self.crop_ratio[0]:
            fall_h = w / self.crop_ratio[0]
        elif w / h > self.crop_ratio[1]:
            fall_w = h * self.crop_ratio[1]
        any_fit = fits.any(dim=1)
        crop_w = torch.where(any_fit, crop_w, fall_w)
        crop_h = torch.where(any_fit, crop_h, fall_h)
        cx = torch.where(any_fit, crop_w / 2 + u[:, _COLUMNS["cx"]] * (w - crop_w), w / 2)  # (N,) box centre, pixels
        cy = torch.where(any_fit, crop_h / 2 + u[:, _COLUMNS["cy"]] * (h - crop_h), h / 2)

        flip = torch.where(u[:, _COLUMNS["flip"]] < self.flip_p, -1.0, 1.0)
        theta = torch.zeros(u.shape[0], 2, 3)
        theta[:, 0, 0] = flip * crop_w / w
        theta[:, 0, 2] = 2 * cx / w - 1
        theta[:, 1, 1] = crop_h / h
        theta[:, 1, 2] = 2 * cy / h - 1
        return theta

    def _jitter_factors(self, u: torch.Tensor) -> torch.Tensor:
        """(N, 4) brightness, contrast, saturation factors and hue shift (turns)."""
        cols = []
        for name in ("brightness", "contrast", "saturation"):
            v = getattr(self, name)
            lo, hi = max(0.0, 1.0 - v), 1.0 + v
            cols.append(lo + (hi - lo) * u[:, _COLUMNS[name]])
        cols.append(self.hue * (2 * u[:, _COLUMNS["hue"]] - 1))
        return torch.stack(cols, dim=1)

    def _jitter(self, x: torch.Tensor, factors: torch.Tensor) -> torch.Tensor:
        """Brightness, contrast, saturation, hue (fixed order) on x (n, C, S, S) with factors (n, 4)."""
        f = factors.to(x.device, x.dtype, non_blocking=True).view(-1, 4, 1, 1, 1).unbind(1)  # 4 x (n, 1, 1, 1)
        if self.brightness > 0:
            x = scale_brightness(x, f[0])
        if self.contrast > 0:
            x = blend_contrast(x, f[1])
        if x.shape[1] == 3 and self.saturation > 0:
            x = blend_saturation(x, f[2])
        if x.shape[1] == 3 and self.hue > 0:
            x = shift_hue(x, f[3])
        return x


# The pixel ops below take x (n, C, H, W) in [0, 1] and per-sample factors (n, 1, 1, 1). Each gives the
# result of kornia's torchvision-style op (adjust_contrast_with_mean_subtraction,
# adjust_saturation_with_gray_subtraction, adjust_hue, gaussian_blur2d; the tests check it) in fewer
# memory passes, which is where kornia's ops spend their time (docs/speed.md#augmentation-and-data-loading).

_GRAY_WEIGHTS = torch.tensor([0.299, 0.587, 0.114])  # ITU-R 601 luma, as kornia's and torchvision's greyscale


def scale_brightness(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """x * factor, clipped to [0, 1] (torchvision's brightness)."""
    return (x * factor).clamp_(0.0, 1.0)


def blend_contrast(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """Blend with the image's mean grey level: factor 0 gives flat grey, 1 the image (torchvision's contrast)."""
    mean = x.mean(dim=(2, 3), keepdim=True)  # (n, C, 1, 1)
    if x.shape[1] == 3:
        mean = (mean * _GRAY_WEIGHTS.to(x.device, x.dtype).view(1, 3, 1, 1)).sum(dim=1, keepdim=True)
    return (x * factor).add_(mean * (1.0 - factor)).clamp_(0.0, 1.0)


def blend_saturation(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """Blend RGB x with its greyscale: factor 0 gives grey, 1 the image (torchvision's saturation)."""
    gray = kornia.color.rgb_to_grayscale(x)  # (n, 1, H, W)
    return (x * factor).add_(gray * (1.0 - factor)).clamp_(0.0, 1.0)


_HUE_TO_RGB = torch.tensor([[3.0, 1.0, -1.0], [2.0, -1.0, 2.0], [4.0, -1.0, 2.0]])  # per channel: centre, slope, bias


def shift_hue(x: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """Rotate the HSV hue of RGB x (n, 3, H, W) in [0, 1] by ``shift`` turns (n, 1, 1, 1), |shift| <= 0.5.

    RGB -> HSV -> RGB in closed form: V = max and V*S = chroma do not change,
    so only the hue is computed. Float arithmetic only: on the CPU torch.where
    and bool masks cost several float ops (docs/speed.md#augmentation-and-data-loading).
    """
    rgb = x.transpose(0, 1)  # (3, n, H, W)
    r, g, b = rgb[0], rgb[1], rgb[2]  # (n, H, W)
    vmax = torch.maximum(r, g)
    vmax = torch.maximum(vmax, b, out=vmax)
    vmin = torch.minimum(r, g)
    vmin = torch.minimum(vmin, b, out=vmin)
    chroma = vmax - vmin
    # 0/1 indicators of the max channel (r wins ties, then g): c - vmax is in [-1, 0], its floor -1 or 0.
    is_r = torch.sub(r, vmax).floor_().add_(1.0)
    not_r = 1.0 - is_r
    is_g = torch.sub(g, vmax).floor_().add_(1.0).mul_(not_r)
    is_b = not_r.sub_(is_g)
    hue6 = torch.sub(g, b).mul_(is_r)  # sixths of a turn times chroma, per max channel:
    hue6.addcmul_(torch.sub(b, r).add_(chroma, alpha=2.0), is_g)  # g max: 2 + (b - r) / chroma
    hue6.addcmul_(torch.sub(r, g).add_(chroma, alpha=4.0), is_b)  # b max: 4 + (r - g) / chroma
    hue6 = hue6.div_(chroma.clamp_min(1e-12)).add_(shift.view(-1, 1, 1), alpha=6.0)  # in [-4, 8)
    hue6 = hue6.sub_(torch.mul(hue6, 1 / 6).floor_().mul_(6.0))  # wrapped to [0, 6)
    # Fully saturated colour of that hue, per channel clamp(slope * |hue6 - centre| + bias, 0, 1).
    centre, slope, bias = _HUE_TO_RGB.to(x.device, x.dtype).view(3, 3, 1, 1, 1).unbind(1)
    pure = torch.sub(hue6, centre).abs_().mul_(slope).add_(bias).clamp_(0.0, 1.0)  # (3, n, H, W)
    return pure.mul_(chroma).add_(vmin).transpose(0, 1)  # (n, 3, H, W)


def gaussian_blur(x: torch.Tensor, sigma: torch.Tensor, kernel: int) -> torch.Tensor:
    """Separable Gaussian blur of x (n, C, H, W), one ``sigma`` per sample (n,), reflected borders.

    2 * kernel shifted multiply-adds: at the small kernels of small images this
    beats kornia's grouped convolutions with per-sample kernels ~2x on CPU.
    """
    radius = kernel // 2
    if radius == 0:
        return x
    h, w = x.shape[-2:]
    taps = torch.arange(-radius, radius + 1, dtype=x.dtype, device=x.device)  # (k,)
    weights = torch.exp(-(taps**2) / (2 * sigma.to(x.device, x.dtype).view(-1, 1) ** 2))  # (n, k)
    weights = (weights / weights.sum(dim=1, keepdim=True)).view(-1, kernel, 1, 1, 1).unbind(1)
    padded = F.pad(x, (radius, radius, radius, radius), mode="reflect")  # (n, C, H + 2r, W + 2r)
    rows = padded[..., 0:w] * weights[0]  # horizontal pass: (n, C, H + 2r, W)
    for t in range(1, kernel):
        rows.addcmul_(padded[..., t : t + w], weights[t])
    out = rows[..., 0:h, :] * weights[0]  # vertical pass: (n, C, H, W)
    for t in range(1, kernel):
        out.addcmul_(rows[..., t : t + h, :], weights[t])
    return out


def _on_rows(
    x: torch.Tensor, rows: torch.Tensor, fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
) -> torch.Tensor:
    """Replace the rows of x selected by the CPU mask ``rows`` (N,) with fn(x[rows], row_index)."""
    index = rows.nonzero().squeeze(1)  # (n,) on the CPU: no device sync
    if index.numel() == 0:
        return x
    if index.numel() == rows.numel():
        return fn(x, index)
    dev_index = index.to(x.device, non_blocking=True)
    x[dev_index] = fn(x[dev_index], index)
    return x


def _uniforms(n: int, generator: torch.Generator | None) -> torch.Tensor:
    """(n, 32) uniforms in [0, 1) on the CPU from ``generator`` (the global CPU RNG when None)."""
    if generator is not None and generator.device.type != "cpu":
        raise ValueError(f"generator must be a CPU torch.Generator, got one on {generator.device}")
    return torch.rand(n, _N_UNIFORMS, generator=generator)
