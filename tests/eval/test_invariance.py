"""Invariance: how far rotations, tile shuffles, crops, colour and tiling move a representation."""
import numpy as np
import pytest
import torch

from selfsup.augment import to_input
from selfsup.backbones import build_backbone
from selfsup.backbones.adapters import tile_representation
from selfsup.eval.invariance import invariance, shuffle_tiles
from tests.eval.fixed_backbones import MeanColour, Pixels

pytestmark = pytest.mark.usefixtures("one_thread")


def test_shuffle_tiles_moves_whole_cells():
    x = torch.arange(2 * 9 * 9, dtype=torch.float32).reshape(2, 1, 9, 9).expand(2, 3, 9, 9).clone()
    y = shuffle_tiles(None, x, torch.Generator().manual_seed(0))
    assert not torch.equal(x, y)
    for b in range(2):
        cells_x = {tuple(x[b, 0, i:i + 3, j:j + 3].flatten().tolist()) for i in (0, 3, 6) for j in (0, 3, 6)}
        cells_y = {tuple(y[b, 0, i:i + 3, j:j + 3].flatten().tolist()) for i in (0, 3, 6) for j in (0, 3, 6)}
        assert cells_x == cells_y


def test_invariance_is_zero_for_an_invariant_representation_and_not_for_pixels(fmnist_datasets):
    _, test = fmnist_datasets
    small = test.subset(range(200))
    inv = invariance(MeanColour(), small, 27, transforms=("rotation", "jigsaw"), precision="fp32")
    pix = invariance(Pixels(), small, 27, transforms=("rotation", "jigsaw", "crop", "colour"), precision="fp32")
    for name in ("rotation", "jigsaw"):
        assert inv[name]["l2_mean"] < 1e-4 and pix[name]["l2_mean"] > 0.1
        assert inv[name]["relative_mean"] < 1e-3 and pix[name]["relative_mean"] > 0.1
        assert inv[name]["l2"].shape == (200,)
    assert all(0 <= pix[k]["cosine_mean"] <= 2 for k in pix)
    with pytest.raises(ValueError, match="unknown invariance transform"):
        invariance(Pixels(), small, 27, transforms=("blur",))


def test_tiles_invariance_compares_the_whole_image_with_the_mean_of_its_tiles(fmnist_datasets):
    _, test = fmnist_datasets
    small = test.subset(range(40))
    torch.manual_seed(0)
    backbone = build_backbone("resnet18_v1", width=0.125).eval()
    tiling = dict(image_size=None, gap=1, jitter=1)
    got = invariance(backbone, small, 28, transforms=("tiles",), tiling=tiling, precision="fp32")["tiles"]
    x = torch.from_numpy(np.array(small.images)).permute(0, 3, 1, 2)
    x = to_input(x, small.mean, small.std, 28)
    with torch.no_grad():
        z = torch.nn.functional.normalize(backbone(x), dim=1)
        zt = torch.nn.functional.normalize(tile_representation(backbone, x, **tiling), dim=1)
    assert np.allclose(got["l2"], (z - zt).norm(dim=1).numpy(), atol=1e-4)
    assert 0 < got["l2_mean"] < 2
    between = (z - z.roll(1, 0)).norm(dim=1).mean().item()  # one batch of 40: each image against the previous
    assert got["l2_between_mean"] == pytest.approx(between, abs=1e-4)
    assert got["relative_mean"] == pytest.approx(got["l2_mean"] / between, rel=1e-3)
    assert np.allclose(got["relative"], got["l2"] / between, rtol=1e-3)
    # 64 px, gap 2: other tiles
    other = invariance(backbone, small, 28, transforms=("tiles",), precision="fp32")["tiles"]
    assert not np.allclose(other["l2"], got["l2"], atol=1e-3)
