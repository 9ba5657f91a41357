"""ViewAugment's batched views: shapes, determinism, each op on/off, parity with kornia's ops."""
from __future__ import annotations

import math
from pathlib import Path

import kornia
import pytest
import torch

from selfsup.augment import MultiCrop, ViewAugment, to_input
from selfsup.augment.views import blend_contrast, blend_saturation, gaussian_blur, shift_hue
from selfsup.data import load_dataset

FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz")

# No randomness but the crop position: full-image square crop, nothing else.
IDENTITY = dict(crop_scale=(1.0, 1.0), crop_ratio=(1.0, 1.0), flip_p=0.0, jitter_p=0.0, gray_p=0.0)


def images(b: int = 8, c: int = 3, side: int = 32, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (b, c, side, side), generator=g, dtype=torch.uint8)


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ---- ViewAugment: shapes, determinism, independence ---------------------------------------------------


@pytest.mark.parametrize("channels", [1, 3])
def test_views_have_shape_dtype_device(channels):
    out = ViewAugment(24, blur_p=0.5, solarize_p=0.5)(images(5, c=channels), gen(0))
    assert out.shape == (5, 3, 24, 24) and out.dtype == torch.float32 and out.device == torch.device("cpu")
    assert torch.isfinite(out).all()


def test_same_seed_gives_identical_views_and_other_seeds_differ():
    aug = ViewAugment(32, blur_p=0.5, solarize_p=0.5)
    x = images(300)  # more than one CPU chunk
    a, b, c = aug(x, gen(7)), aug(x, gen(7)), aug(x, gen(8))
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)


def test_each_sample_gets_its_own_parameters():
    x = images(1).repeat(16, 1, 1, 1)  # 16 copies of one image
    out = ViewAugment(32)(x, gen(0)).flatten(1)
    distances = torch.cdist(out, out)
    off_diagonal = distances[~torch.eye(16, dtype=torch.bool)]
    assert (off_diagonal > 1e-3).all()


def test_crops_lie_inside_the_image_with_area_and_ratio_in_range():
    aug = ViewAugment(32, crop_scale=(0.08, 1.0), crop_ratio=(3 / 4, 4 / 3), flip_p=0.5)
    theta = aug.sample_params(2000, 28, 28, gen(0)).theta
    sx, tx, sy, ty = theta[:, 0, 0].abs(), theta[:, 0, 2], theta[:, 1, 1], theta[:, 1, 2]
    assert (tx.abs() + sx <= 1 + 1e-5).all() and (ty.abs() + sy <= 1 + 1e-5).all()
    area, ratio = sx * sy, sx / sy
    assert (area >= 0.08 - 1e-5).all() and (area <= 1 + 1e-5).all()
    assert (ratio >= 3 / 4 - 1e-5).all() and (ratio <= 4 / 3 + 1e-5).all()
    assert (theta[:, 0, 0] < 0).float().mean().item() == pytest.approx(0.5, abs=0.05)  # flips


def test_non_square_images_give_square_views_of_crops_inside_them():
    x = torch.randint(0, 256, (4, 3, 24, 48), generator=gen(0), dtype=torch.uint8)
    aug = ViewAugment(16, crop_scale=(0.5, 1.0))
    assert aug(x, gen(0)).shape == (4, 3, 16, 16)
    theta = aug.sample_params(500, 24, 48, gen(1)).theta
    assert (theta[:, 0, 2].abs() + theta[:, 0, 0].abs() <= 1 + 1e-5).all()
    assert (theta[:, 1, 2].abs() + theta[:, 1, 1] <= 1 + 1e-5).all()
    crop_ratio = (theta[:, 0, 0].abs() * 48) / (theta[:, 1, 1] * 24)
    assert ((crop_ratio >= 3 / 4 - 1e-4) & (crop_ratio <= 4 / 3 + 1e-4)).all()


# ---- ViewAugment: each op on at probability 1, off at 0 ------------------------------------------------


def test_identity_settings_reproduce_the_eval_transform():
    x = images(6)
    out = ViewAugment(32, **IDENTITY, mean=(0.4, 0.5, 0.6), std=(0.2, 0.3, 0.4))(x, gen(0))
    torch.testing.assert_close(out, to_input(x, (0.4, 0.5, 0.6), (0.2, 0.3, 0.4)), rtol=0, atol=1e-5)


def test_flip_p_one_mirrors_a_full_crop():
    x = images(4)
    out = ViewAugment(32, **(IDENTITY | dict(flip_p=1.0)))(x, gen(0))
    torch.testing.assert_close(out, to_input(x, (0.5,), (0.5,)).flip(-1), rtol=0, atol=1e-5)


def test_small_crop_scale_zooms_in():
    x = images(4)
    theta = ViewAugment(32, crop_scale=(0.25, 0.25), crop_ratio=(1.0, 1.0)).sample_params(4, 32, 32, gen(0)).theta
    torch.testing.assert_close(theta[:, 1, 1], torch.full((4,), 0.5))  # a 16 x 16 box
    out = ViewAugment(32, **(IDENTITY | dict(crop_scale=(0.25, 0.25))))(x, gen(0))
    assert not torch.allclose(out, to_input(x, (0.5,), (0.5,)), atol=1e-2)


def test_gray_p_one_gives_equal_channels_and_zero_keeps_colour():
    x = images(4)
    grey = ViewAugment(32, **(IDENTITY | dict(gray_p=1.0)))(x, gen(0))
    assert torch.equal(grey[:, 0], grey[:, 1]) and torch.equal(grey[:, 1], grey[:, 2])
    expected = kornia.color.rgb_to_grayscale(x.float() / 255) * 2 - 1
    torch.testing.assert_close(grey[:, :1], expected, rtol=0, atol=1e-5)
    colour = ViewAugment(32, **IDENTITY)(x, gen(0))
    assert not torch.allclose(colour[:, 0], colour[:, 1])


def test_solarize_p_one_inverts_pixels_above_half():
    x = images(4)
    plain = ViewAugment(32, **IDENTITY, mean=(0.0,), std=(1.0,))(x, gen(0))
    solar = ViewAugment(32, **IDENTITY, solarize_p=1.0, mean=(0.0,), std=(1.0,))(x, gen(0))
    expected = torch.where(plain >= 0.5, 1 - plain, plain)
    torch.testing.assert_close(solar, expected, rtol=0, atol=1e-6)
    assert (plain >= 0.5).any() and (solar <= 0.5).all()


def test_blur_p_one_blurs_with_the_drawn_sigma():
    x = images(4)
    aug = ViewAugment(32, **IDENTITY, blur_p=1.0, blur_kernel=5, mean=(0.0,), std=(1.0,))
    params = aug.sample_params(4, 32, 32, gen(0))
    out = aug.render(x, params)
    plain = x.float() / 255
    sigma = params.sigma.view(-1, 1).expand(-1, 2)
    torch.testing.assert_close(out, kornia.filters.gaussian_blur2d(plain, (5, 5), sigma), rtol=0, atol=1e-5)


def test_jitter_p_one_changes_colours_and_zero_does_not():
    x = images(4)
    jittered = ViewAugment(32, **(IDENTITY | dict(jitter_p=1.0)))(x, gen(0))
    assert not torch.allclose(jittered, to_input(x, (0.5,), (0.5,)), atol=1e-2)
    untouched = ViewAugment(32, **(IDENTITY | dict(jitter_p=0.0)))(x, gen(0))
    torch.testing.assert_close(untouched, to_input(x, (0.5,), (0.5,)), rtol=0, atol=1e-5)


def test_brightness_only_jitter_scales_pixels_by_the_drawn_factor():
    x = images(4)
    kw = IDENTITY | dict(jitter_p=1.0, brightness=0.4, contrast=0.0, saturation=0.0, hue=0.0)
    aug = ViewAugment(32, **kw, mean=(0.0,), std=(1.0,))
    params = aug.sample_params(4, 32, 32, gen(0))
    factor = params.factors[:, 0].view(-1, 1, 1, 1)
    assert ((factor >= 0.6) & (factor <= 1.4)).all()
    expected = (x.float() / 255 * factor).clamp(0, 1)
    torch.testing.assert_close(aug.render(x, params), expected, rtol=0, atol=1e-5)


def test_probability_one_half_applies_an_op_to_about_half_the_samples():
    params = ViewAugment(32, gray_p=0.5, blur_p=0.5, solarize_p=0.5, jitter_p=0.5).sample_params(4000, 32, 32, gen(0))
    for flags in (params.gray, params.blur, params.solarize, params.jitter):
        assert flags.float().mean().item() == pytest.approx(0.5, abs=0.03)


# ---- the pixel ops match kornia's reference implementations -------------------------------------------


def colour_batch(n: int = 12) -> torch.Tensor:
    x = torch.rand(n, 3, 16, 16, generator=gen(3))
    x[0] = x[0, :1]  # grey pixels: no hue
    x[1, 1] = x[1, 0]  # red and green tie for the max
    x[2, 2] = x[2, 1]
    return x


def test_shift_hue_matches_kornia_adjust_hue():
    x = colour_batch()
    shift = torch.linspace(-0.5, 0.5, x.shape[0])
    ours = shift_hue(x, shift.view(-1, 1, 1, 1))
    ref = kornia.enhance.adjust_hue(x, shift * 2 * math.pi)
    torch.testing.assert_close(ours, ref, rtol=0, atol=1e-5)


def test_contrast_and_saturation_match_kornia():
    x = colour_batch()
    f = torch.linspace(0.0, 1.8, x.shape[0])
    torch.testing.assert_close(
        blend_contrast(x, f.view(-1, 1, 1, 1)),
        kornia.enhance.adjust_contrast_with_mean_subtraction(x, f),
        rtol=0,
        atol=1e-5,
    )
    torch.testing.assert_close(
        blend_saturation(x, f.view(-1, 1, 1, 1)),
        kornia.enhance.adjust_saturation_with_gray_subtraction(x, f),
        rtol=0,
        atol=1e-5,
    )


@pytest.mark.parametrize("kernel", [3, 7])
def test_gaussian_blur_matches_kornia_per_sample_sigma(kernel):
    x = colour_batch()
    sigma = torch.linspace(0.1, 3.0, x.shape[0])
    ref = kornia.filters.gaussian_blur2d(x, (kernel, kernel), sigma.view(-1, 1).expand(-1, 2))
    torch.testing.assert_close(gaussian_blur(x, sigma, kernel), ref, rtol=0, atol=1e-5)


# ---- grey and real data ----------------------------------------------------------------------------


def test_grey_input_gives_the_views_of_its_rgb_copy():
    grey = images(6, c=1)
    kw = dict(blur_p=0.5, solarize_p=0.5, gray_p=0.5)
    a = ViewAugment(32, **kw)(grey, gen(4))
    b = ViewAugment(32, **kw)(grey.expand(-1, 3, -1, -1).contiguous(), gen(4))
    assert torch.equal(a[:, 0], a[:, 1]) and torch.equal(a[:, 1], a[:, 2])
    torch.testing.assert_close(a, b, rtol=0, atol=1e-4)


@pytest.mark.skipif(not FASHION_MNIST.exists(), reason=f"{FASHION_MNIST} is missing (scripts/setup.sh installs it)")
def test_views_of_real_fashion_mnist_images():
    x = torch.tensor(load_dataset("fashion_mnist", split="test").images[:16]).permute(0, 3, 1, 2)  # (16, 1, 28, 28)
    aug = ViewAugment(28, blur_p=0.5, solarize_p=0.2, mean=(0.286,), std=(0.353,))
    out = aug(x, gen(0))
    assert out.shape == (16, 3, 28, 28) and torch.isfinite(out).all()
    plain = to_input(x, (0.286,), (0.353,))
    assert (out - plain).abs().flatten(1).amax(1).min() > 0.1  # every image was changed
    small = MultiCrop(ViewAugment(28), ViewAugment(14, crop_scale=(0.05, 0.14)), n_large=2, n_small=2)(x, gen(0))
    assert [v.shape[-1] for v in small] == [28, 28, 14, 14]


# ---- validation ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, value",
    [
        ("size", 0),
        ("size", 32.0),
        ("crop_scale", (0.5, 0.2)),
        ("crop_scale", (0.0, 1.0)),
        ("crop_scale", (0.2, 1.5)),
        ("crop_ratio", (4 / 3, 3 / 4)),
        ("flip_p", 1.5),
        ("jitter_p", -0.1),
        ("gray_p", True),
        ("blur_p", 2),
        ("solarize_p", "0.2"),
        ("brightness", -0.1),
        ("hue", 0.6),
        ("blur_sigma", (2.0, 0.1)),
        ("blur_kernel", 4),
        ("blur_kernel", 65),
        ("mean", (0.5, 0.5)),
        ("std", (0.5, 0.0, 0.5)),
    ],
)
def test_bad_arguments_raise_naming_the_argument(name, value):
    kwargs = {"size": 32, name: value}
    with pytest.raises(ValueError, match=name):
        ViewAugment(**kwargs)


def test_bad_images_and_generators_are_rejected():
    aug = ViewAugment(8)
    with pytest.raises(ValueError, match="uint8"):
        aug(torch.rand(2, 3, 8, 8))
    with pytest.raises(ValueError, match="C in"):
        aug(torch.zeros(2, 4, 8, 8, dtype=torch.uint8))
    with pytest.raises(ValueError, match="n_views"):
        aug.views(images(2), 0)
    with pytest.raises(ValueError, match="params are for 3 views"):
        aug.render(images(2), aug.sample_params(3, 32, 32))


def test_views_gives_n_independent_views():
    x = images(1).repeat(4, 1, 1, 1)
    vs = ViewAugment(16).views(x, 3, gen(0))
    assert len(vs) == 3 and all(v.shape == (4, 3, 16, 16) for v in vs)
    assert not torch.allclose(vs[0], vs[1])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_views_on_cuda_match_the_cpu():
    x = images(8)
    aug = ViewAugment(32, blur_p=0.5, solarize_p=0.5)
    cpu, cuda = aug(x, gen(0)), aug(x.cuda(), gen(0))
    assert cuda.device.type == "cuda"
    torch.testing.assert_close(cuda.cpu(), cpu, rtol=0, atol=1e-4)
