"""Context encoders (inpainting): the masked L2, the one-backward GAN split between players, the vector bottleneck."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from selfsup.augment import ViewAugment
from selfsup.backbones import build_backbone
from selfsup.methods import build_method
from selfsup.methods.inpainting import adversarial_terms, masked_l2
from selfsup.registry import ConfigError

pytestmark = pytest.mark.usefixtures("one_thread")


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
