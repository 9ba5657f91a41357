"""Multi-crop: large then small views, and the small crops' settings derived from the large ones'."""
import pytest
import torch

from selfsup.augment import MultiCrop, ViewAugment
from selfsup.augment.multicrop import small_crop_augment


def images(b: int = 8, c: int = 3, side: int = 32, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (b, c, side, side), generator=g, dtype=torch.uint8)


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_multicrop_returns_large_then_small_views():
    large, small = ViewAugment(32, crop_scale=(0.14, 1.0)), ViewAugment(16, crop_scale=(0.05, 0.14))
    mc = MultiCrop(large, small, n_large=2, n_small=6)
    out = mc(images(5), gen(0))
    assert [tuple(v.shape) for v in out] == [(5, 3, 32, 32)] * 2 + [(5, 3, 16, 16)] * 6
    assert torch.equal(out[0], mc(images(5), gen(0))[0])
    assert len(MultiCrop(ViewAugment(32), ViewAugment(16), n_large=1, n_small=0)(images(5, c=1), gen(0))) == 1


@pytest.mark.parametrize(
    "kwargs, word",
    [(dict(n_large=0), "n_large"), (dict(n_small=-1), "n_small"), (dict(large=lambda x: x), "large")],
)
def test_multicrop_rejects_bad_arguments(kwargs, word):
    args = dict(large=ViewAugment(32), small=ViewAugment(16)) | kwargs
    with pytest.raises(ValueError, match=word):
        MultiCrop(**args)


def test_small_crops_keep_every_large_setting_but_size_and_scale():
    large = ViewAugment(64, crop_scale=(0.3, 1.0), brightness=0.7, blur_p=0.5, mean=(0.3,), std=(0.2,))
    small = small_crop_augment(large, 14, (0.1, 0.4))
    assert (small.size, small.crop_scale) == (14, (0.1, 0.4))
    assert (small.brightness, small.blur_p, small.mean, small.std) == (0.7, 0.5, large.mean, large.std)
    assert (small.blur_kernel, large.blur_kernel) == (3, 7)  # re-derived from the size, not copied
