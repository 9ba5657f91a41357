"""The eval transform to_input: uint8 images to normalised 3-channel float, resized and centre-cropped."""
import pytest
import torch

from selfsup.augment import to_input


def images(b: int = 8, c: int = 3, side: int = 32, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (b, c, side, side), generator=g, dtype=torch.uint8)


def test_to_input_normalizes_and_replicates_grey_to_3_channels():
    x = images(4, c=1, side=28)
    out = to_input(x, mean=(0.25,), std=(0.5,))
    assert out.shape == (4, 3, 28, 28) and out.dtype == torch.float32
    expected = (x.float() / 255 - 0.25) / 0.5
    for ch in range(3):
        torch.testing.assert_close(out[:, ch : ch + 1], expected, rtol=0, atol=1e-6)


def test_to_input_uses_per_channel_stats():
    x = images(2, c=3, side=8)
    mean, std = (0.1, 0.2, 0.3), (0.5, 0.25, 2.0)
    out = to_input(x, mean=mean, std=std)
    expected = (x.float() / 255 - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-6)


def test_to_input_resizes_with_antialiasing():
    x = torch.zeros(1, 1, 32, 32, dtype=torch.uint8)
    x[..., ::4] = 255  # every 4th column lit: plain bilinear at 1/4 would miss them all
    out = to_input(x, mean=(0.0,), std=(1.0,), size=8)
    assert out.shape == (1, 3, 8, 8)
    interior = out[..., 1:-1]
    torch.testing.assert_close(interior, torch.full_like(interior, 0.25), rtol=0, atol=0.02)


def test_to_input_centre_crops_non_square_images():
    x = images(2, c=3, side=8).repeat(1, 1, 1, 2)  # (2, 3, 8, 16)
    assert to_input(x, mean=(0.5,), std=(0.5,), size=8).shape == (2, 3, 8, 8)


@pytest.mark.parametrize(
    "kwargs, word",
    [
        (dict(images=torch.zeros(2, 3, 8, 8)), "uint8"),
        (dict(images=torch.zeros(2, 2, 8, 8, dtype=torch.uint8)), "shape"),
        (dict(images=torch.zeros(3, 8, 8, dtype=torch.uint8)), "shape"),
        (dict(mean=(0.5, 0.5)), "mean"),
        (dict(std=(0.0,)), "std"),
        (dict(size=0), "size"),
    ],
)
def test_to_input_rejects_bad_arguments(kwargs, word):
    args = dict(images=images(2), mean=(0.5,), std=(0.5,), size=None) | kwargs
    with pytest.raises(ValueError, match=word):
        to_input(**args)
