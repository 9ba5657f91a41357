"""Colorization (Zhang et al.): the rebalanced cross-entropy, an L-only encoder, the hypercolumn head."""
import pytest
import torch
import torch.nn.functional as F

from selfsup.augment import ViewAugment
from selfsup.backbones import build_backbone
from selfsup.data import Batch
from selfsup.methods import build_method
from selfsup.methods.colorization import pixel_grid, rebalanced_cross_entropy

pytestmark = pytest.mark.usefixtures("one_thread")


def test_rebalanced_cross_entropy_matches_cross_entropy_and_a_loop():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 5, 3, 4, generator=g)
    labels = torch.randint(0, 5, (2, 3, 4), generator=g)
    one_hot = F.one_hot(labels, 5).permute(0, 3, 1, 2).float()
    torch.testing.assert_close(
        rebalanced_cross_entropy(logits, one_hot, torch.ones(2, 3, 4)), F.cross_entropy(logits, labels)
    )
    soft = torch.softmax(torch.randn(2, 5, 3, 4, generator=g), dim=1)
    weights = torch.rand(2, 3, 4, generator=g)
    total = 0.0
    for b in range(2):
        for i in range(3):
            for j in range(4):
                logp = torch.log_softmax(logits[b, :, i, j], 0)
                total += -weights[b, i, j] * (soft[b, :, i, j] * logp).sum()
    torch.testing.assert_close(rebalanced_cross_entropy(logits, soft, weights), total / 24)


def test_colorization_needs_a_one_channel_backbone_and_keeps_its_bin_counts_in_the_state_dict():
    aug = ViewAugment(16, jitter_p=0.0, gray_p=0.0)
    with pytest.raises(ValueError, match="in_channels"):
        build_method("colorization", backbone=build_backbone("resnet18_v1", stem="small", width=0.125), augment=aug)
    method = build_method("colorization", backbone=build_backbone("resnet18_v1", stem="small", width=0.125,
                                                                   in_channels=1), augment=aug, pixels_per_image=32)
    images = torch.randint(0, 256, (4, 3, 16, 16), dtype=torch.uint8)
    out = method.training_step(Batch(images, torch.arange(4)), 0)
    out.loss.backward()
    assert out.embedding.shape == (4, backbone_dim(method)) and 0 <= out.metrics["pretext_acc"] <= 1
    assert method.bin_counts.sum().item() == 4 * 32
    assert {"centers", "bin_counts"} <= set(method.state_dict())
    colours = method.colorize(images)
    assert colours.shape == (4, 3, 16, 16) and colours.dtype == torch.uint8


def backbone_dim(method):
    return method.backbone.out_dim


def test_a_global_layer_in_the_hypercolumn_is_the_same_at_every_pixel():
    torch.manual_seed(0)
    backbone = build_backbone("resnet18_v1", stem="small", width=0.125, in_channels=1)
    method = build_method("colorization", backbone=backbone, augment=ViewAugment(16, jitter_p=0.0, gray_p=0.0),
                          layers=("block1", "pre_logits")).eval()
    lightness = torch.rand(2, 1, 16, 16) * 2 - 1
    # the head's first 1x1 conv sees block1 (its first C1 inputs) then pre_logits: keep only the latter
    c1 = backbone.feature_shapes(16)["block1"][0]
    with torch.no_grad():
        method.head[0].weight[:, :c1] = 0
    logits, pre_logits = method.hypercolumns(lightness, pixel_grid(torch.arange(256).expand(2, -1), 16, 16))
    assert logits.shape == (2, len(method.centers), 256, 1)
    torch.testing.assert_close(logits, logits[:, :, :1].expand_as(logits))  # every pixel gets the same prediction
    other = method.hypercolumns(lightness.flip(0), pixel_grid(torch.arange(256).expand(2, -1), 16, 16))[0]
    torch.testing.assert_close(other, logits.flip(0))
    assert not torch.allclose(logits[0], logits[1])  # and it depends on the image, through pre_logits
