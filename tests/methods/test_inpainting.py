"""Losses of the dense pretext tasks against reference computations, and the one-backward GAN split."""
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from selfsup.augment import ViewAugment
from selfsup.backbones import build_backbone
from selfsup.data import Batch
from selfsup.methods import build_method
from selfsup.registry import ConfigError
from selfsup.methods.colorization import pixel_grid, rebalanced_cross_entropy
from selfsup.methods.inpainting import adversarial_terms, masked_l2

pytestmark = pytest.mark.usefixtures("one_thread")


def test_rebalanced_cross_entropy_matches_cross_entropy_and_a_loop():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 5, 3, 4, generator=g)
    labels = torch.randint(0, 5, (2, 3, 4), generator=g)
    one_hot = F.one_hot(labels, 5).permute(0, 3, 1, 2).float()
    torch.testing.assert_close(rebalanced_cross_entropy(logits, one_hot, torch.ones(2, 3, 4)), F.cross_entropy(logits, labels))
    soft = torch.softmax(torch.randn(2, 5, 3, 4, generator=g), dim=1)
    weights = torch.rand(2, 3, 4, generator=g)
    total = 0.0
    for b in range(2):
        for i in range(3):
            for j in range(4):
                logp = torch.log_softmax(logits[b, :, i, j], 0)
                total += -weights[b, i, j] * (soft[b, :, i, j] * logp).sum()
    torch.testing.assert_close(rebalanced_cross_entropy(logits, soft, weights), total / 24)


def test_masked_l2_averages_squared_errors_over_weighted_pixels():
    pred = torch.zeros(1, 2, 2, 2)
    target = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]], [[0.0, 0.0], [0.0, 2.0]]]])
    w = torch.tensor([[[[1.0, 0.0], [0.0, 3.0]]]])
    # pixel (0,0): error 1 + 0 = 1, weight 1; pixel (1,1): 16 + 4 = 20, weight 3 -> (1 + 60) / (4 * 2 channels)
    assert masked_l2(pred, target, w).item() == pytest.approx(61 / 8)


def test_adversarial_terms_reach_only_their_own_player():
    torch.manual_seed(0)
    gen = nn.Linear(3, 4)
    disc = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 1), nn.Flatten(0))
    z, real = torch.randn(6, 3), torch.randn(6, 4)
    g_loss, d_loss = adversarial_terms(disc, real, gen(z))
    g_params, d_params = list(gen.parameters()), list(disc.parameters())
    assert all(g is None for g in torch.autograd.grad(g_loss, d_params, allow_unused=True))
    assert all(g is None for g in torch.autograd.grad(d_loss, g_params, allow_unused=True))
    # and the values are the usual ones
    fake_logits = disc(gen(z))
    torch.testing.assert_close(g_loss, F.softplus(-fake_logits).mean())
    torch.testing.assert_close(d_loss, F.softplus(-disc(real)).mean() + F.softplus(fake_logits).mean())


def test_one_backward_of_the_summed_inpainting_loss_gives_each_player_its_own_gradients():
    torch.manual_seed(0)
    backbone = build_backbone("resnet18_v1", stem="small", width=0.125)
    method = build_method("inpainting", backbone=backbone, augment=ViewAugment(16), overlap=1)
    x = torch.randn(4, 3, 16, 16)
    terms = method.losses(x, method.make_masks(4, 16, x.device))
    gen_loss = method.rec_weight * terms["rec"] + method.adv_weight * terms["adv"]
    d_params = list(method.disc.parameters())
    g_params = [p for n, p in method.named_parameters() if not n.startswith("disc.")]
    want_d = torch.autograd.grad(terms["disc"], d_params, retain_graph=True)
    want_g = torch.autograd.grad(gen_loss, g_params, retain_graph=True, allow_unused=True)
    (gen_loss + method.disc_weight * terms["disc"]).backward()
    for p, want in zip(d_params, want_d):
        torch.testing.assert_close(p.grad, want)
    for p, want in zip(g_params, want_g):
        if want is None:
            assert p.grad is None or not p.grad.any()
        else:
            torch.testing.assert_close(p.grad, want)
    assert sum(w.abs().sum() for w in want_g if w is not None) > 0 and sum(w.abs().sum() for w in want_d) > 0


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


def test_the_pre_logits_bottleneck_makes_the_reconstruction_a_function_of_the_pooled_representation_alone():
    torch.manual_seed(0)
    method = build_method("inpainting", backbone=build_backbone("resnet18_v1", stem="small", width=0.125),
                          augment=ViewAugment(16), bottleneck="pre_logits").eval()
    x, mask = torch.randn(2, 3, 16, 16), method.make_masks(2, 16, "cpu")
    rec, pre_logits = method.reconstruct(x, mask)
    torch.testing.assert_close(rec, method.decoder(method.bridge(pre_logits)))  # the decoder reads only (B, D)
    assert method.bridge(pre_logits).shape == (2, *method.backbone.feature_shapes(16)["block4"])
    with pytest.raises(ConfigError, match="bottleneck"):
        build_method("inpainting", backbone=build_backbone("resnet18_v1", width=0.125), augment=ViewAugment(16),
                     bottleneck="wormhole")


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
