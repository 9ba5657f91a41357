"""What the evaluation tools read from special encoders: the mean of tile representations, L-only input from RGB."""
import pytest
import torch

from selfsup.augment.jigsaw import crop_tiles, standardize_tiles, tile_grid_boxes
from selfsup.backbones import build_backbone
from selfsup.backbones.adapters import LightnessBackbone, TileMeanBackbone, rgb_input, tile_representation
from selfsup.eval.invariance import invariance
from selfsup.eval.supervised import finetune, sgd_probe
from tests.methods.tiny import geometric_views, tiny_method

pytestmark = pytest.mark.usefixtures("one_thread")


def tiny(name):
    return tiny_method(name, augment=geometric_views(28))


def test_tile_representation_is_the_mean_over_the_nine_centred_tiles():
    method = tiny("jigsaw").eval()
    x = torch.randn(2, 3, 28, 28)
    rep = tile_representation(method.backbone, x)
    assert rep.shape == (2, method.backbone.out_dim)
    up = torch.nn.functional.interpolate(x, size=64, mode="bilinear", align_corners=False)
    corners, side = tile_grid_boxes(2, 64, 3, 4, 0)
    tiles = standardize_tiles(crop_tiles(up, corners + 1, side))  # (2, 9, 3, 17, 17)
    with torch.no_grad():
        by_hand = torch.stack([method.backbone(tiles[:, k]) for k in range(9)], 1).mean(1)
    assert torch.allclose(rep, by_hand, atol=1e-5)


def test_tile_mean_backbone_offers_the_tile_representation_to_the_evaluation_tools():
    method = tiny("jigsaw").eval()
    wrapped = TileMeanBackbone(method.backbone, image_size=64, gap=2, jitter=2)
    x = torch.randn(2, 3, 28, 28)
    assert torch.equal(wrapped.features(x, ("pre_logits",))["pre_logits"], tile_representation(method.backbone, x))
    assert wrapped(x).shape == (2, method.backbone.out_dim) and wrapped.out_dim == method.backbone.out_dim
    with pytest.raises(Exception, match="block1"):
        wrapped.features(x, ("block1",))


def test_sgd_finetune_and_invariance_accept_an_l_only_encoder(fmnist_datasets):
    """They augment RGB; the wrapped L-only encoder reads it as L (it crashed on 3 channels)."""
    train, test = fmnist_datasets
    few, few_test = train.subset(range(64)), test.subset(range(32))
    backbone = rgb_input(build_backbone("resnet18_v1", width=0.125, in_channels=1), train.mean, train.std)
    assert isinstance(backbone, LightnessBackbone) and rgb_input(backbone, train.mean, train.std) is backbone
    assert 0 <= sgd_probe(backbone, few, few_test, 28, steps=2, batch_size=16, lrs=(0.1,)).top1 <= 100
    assert 0 <= finetune(backbone, few, few_test, 28, steps=2, batch_size=16)["top1"] <= 100
    inv = invariance(backbone, few_test, 28, n=16, tiling=dict(image_size=None, gap=1, jitter=1))
    assert all(0 <= v["l2_mean"] <= 2 for v in inv.values()) and len(inv) == 5
