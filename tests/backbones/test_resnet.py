"""Contract tests over every registered backbone, plus the facts each architecture promises."""
from __future__ import annotations

import inspect

import pytest
import torch
from torch import nn

from selfsup.backbones import BACKBONES, backbone_names, build_backbone, gemm_conv
from selfsup.backbones.gemm_conv import columns
from selfsup.registry import ConfigError

TINY = 0.125  # width that keeps every backbone a few hundred thousand parameters


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def tiny_models() -> dict[str, nn.Module]:
    torch.manual_seed(0)
    return {name: build_backbone(name, width=TINY) for name in backbone_names()}


@pytest.mark.parametrize("name", backbone_names())
def test_forward_backward_at_32px_reaches_every_parameter(name, tiny_models):
    model = tiny_models[name].train()
    x = torch.randn(2, 3, 32, 32)
    out = model(x)
    assert out.shape == (2, model.out_dim)
    out.square().mean().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert not missing, f"no gradient for {missing[:3]}"
    model.zero_grad(set_to_none=True)


@pytest.mark.parametrize("name", backbone_names())
def test_forward_backward_at_224px_with_imagenet_stem(name):
    torch.manual_seed(0)
    takes_stem = "stem" in inspect.signature(BACKBONES.get(name)).parameters
    model = build_backbone(name, width=TINY, **({"stem": "imagenet"} if takes_stem else {})).train()
    out = model(torch.randn(2, 3, 224, 224))
    assert out.shape == (2, model.out_dim)
    assert torch.isfinite(out).all()
    out.square().mean().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert not missing, f"no gradient for {missing[:3]}"


@pytest.mark.parametrize("name", backbone_names())
def test_feature_names_ordered_and_shapes_match_features(name, tiny_models):
    model = tiny_models[name].eval()
    names = model.feature_names
    assert names[-1] == "pre_logits" and len(set(names)) == len(names)
    with torch.no_grad():
        feats = model.features(torch.randn(2, 3, 32, 32))
    assert tuple(feats) == names
    shapes = model.feature_shapes(32)
    assert {k: tuple(v.shape[1:]) for k, v in feats.items()} == shapes
    assert shapes["pre_logits"] == (model.out_dim,)


@pytest.mark.parametrize("name", backbone_names())
def test_features_subset_returned_in_network_order(name, tiny_models):
    model = tiny_models[name].eval()
    first, last = model.feature_names[0], model.feature_names[-1]
    with torch.no_grad():
        feats = model.features(torch.randn(1, 3, 32, 32), (last, first))
    assert tuple(feats) == (first, last)
    with pytest.raises(ConfigError, match="no_such_layer"):
        model.features(torch.randn(1, 3, 32, 32), ("no_such_layer",))


@pytest.mark.parametrize("name", backbone_names())
def test_unknown_option_raises_config_error_naming_it(name):
    with pytest.raises(ConfigError, match="not_an_option"):
        build_backbone(name, not_an_option=1)
    with pytest.raises(ConfigError, match="width"):
        build_backbone(name, width="wide")


@pytest.mark.parametrize("name", backbone_names())
def test_pre_logits_dim_sets_out_dim(name):
    model = build_backbone(name, width=TINY, pre_logits_dim=24)
    assert model.out_dim == 24
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 24)


@pytest.mark.parametrize("name", backbone_names())
def test_bf16_autocast_with_channels_last(name, tiny_models):
    model = tiny_models[name].train().to(memory_format=torch.channels_last)
    x = torch.randn(2, 3, 32, 32).to(memory_format=torch.channels_last)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(x)
    out.float().square().mean().backward()
    assert torch.isfinite(out.float()).all()
    model.zero_grad(set_to_none=True)
    model.to(memory_format=torch.contiguous_format)


def test_paper_widening_scales_resnet50_pre_logits():
    # width = k / 4 for the paper's widening factor k: k=4 -> 2048, k=8 -> 4096.
    assert build_backbone("resnet50_v2").out_dim == 2048
    assert build_backbone("resnet50_v2", width=2).out_dim == 4096
    assert build_backbone("resnet50_v1", width=0.25).out_dim == 512
    assert build_backbone("resnet18_v1").out_dim == 512


def test_standard_resnet_parameter_counts():
    # torchvision's ResNet-18/50 without the classifier: 11,176,512 and 23,508,032.
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert count(build_backbone("resnet18_v1", stem="imagenet")) == 11_176_512
    assert count(build_backbone("resnet50_v1", stem="imagenet")) == 23_508_032


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_nolastrelu_pre_logits_can_be_negative(version):
    torch.manual_seed(0)
    x = torch.randn(4, 3, 32, 32)
    with_relu = build_backbone(f"resnet50_{version}", width=TINY).eval()
    without = build_backbone(f"resnet50_{version}_nolastrelu", width=TINY)
    without.load_state_dict(with_relu.state_dict())
    without.eval()
    with torch.no_grad():
        assert with_relu(x).min() >= 0
        assert without(x).min() < 0


def test_v1_is_post_activation_and_v2_pre_activation():
    def first_two_layer_types(name):
        unit = build_backbone(name, width=TINY).stages["block2"][1]
        layers = [m for m in unit.modules() if isinstance(m, (nn.Conv2d, nn.BatchNorm2d))]
        return [nn.Conv2d if isinstance(m, nn.Conv2d) else type(m) for m in layers[:2]]

    assert first_two_layer_types("resnet50_v1") == [nn.Conv2d, nn.BatchNorm2d]
    assert first_two_layer_types("resnet50_v2") == [nn.BatchNorm2d, nn.Conv2d]


def test_fractional_width_rounds_channels_to_at_least_one():
    model = build_backbone("resnet18_v2", width=0.01)
    assert model.feature_shapes(32)["stem"][0] == 1
    assert model.out_dim == 5  # round(512 * 0.01)


def test_zero_init_residual_makes_units_identity_at_start():
    model = build_backbone("resnet18_v2", width=TINY, zero_init_residual=True).eval()
    x = torch.randn(2, 8, 8, 8)
    with torch.no_grad():
        assert torch.equal(model.stages["block1"](x), x)


def test_unknown_name_and_bad_options_raise_config_error_naming_them():
    with pytest.raises(ConfigError, match="resnet51"):
        build_backbone("resnet51_v1")
    with pytest.raises(ConfigError, match="widht"):
        build_backbone("resnet50_v2", widht=2)
    with pytest.raises(ConfigError, match="stem"):
        build_backbone("resnet50_v2", stem="tiny")
    with pytest.raises(ConfigError, match="width"):
        build_backbone("resnet50_v2", width=0)


def test_revnet_block_inverse_reconstructs_its_input():
    torch.manual_seed(0)
    model = build_backbone("revnet50", width=TINY).double().train()
    block = model.stages["block2"][1]
    x = torch.randn(2, 64, 16, 16, dtype=torch.float64)
    assert torch.allclose(block.invert(block(x)), x, atol=1e-10)
    y = block(x)  # a second training forward: stats move once
    assert torch.allclose(block.invert(y), x, atol=1e-10)


def test_revnet_invert_leaves_running_stats_alone():
    model = build_backbone("revnet50", width=TINY).train()
    block = model.stages["block1"]
    y = block(torch.randn(2, 32, 8, 8))
    before = [b.clone() for b in block.buffers()]
    block.invert(y)
    assert all(torch.equal(a, b) for a, b in zip(before, block.buffers()))


@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-10), (torch.float32, 1e-4)])
def test_revnet_memory_saving_gradients_equal_plain_backprop(dtype, tol):
    torch.manual_seed(0)
    saving = build_backbone("revnet50", width=TINY, memory_saving=True).to(dtype).train()
    plain = build_backbone("revnet50", width=TINY, memory_saving=False).to(dtype).train()
    plain.load_state_dict(saving.state_dict())
    x = torch.randn(4, 3, 32, 32, dtype=dtype)
    weights = torch.randn(4, saving.out_dim, dtype=dtype)
    inputs = []
    for model in (saving, plain):
        inp = x.clone().requires_grad_()
        (model(inp) * weights).sum().backward()
        inputs.append(inp)
    assert torch.allclose(inputs[0].grad, inputs[1].grad, rtol=tol, atol=tol * inputs[1].grad.abs().max())
    for (name, p), q in zip(saving.named_parameters(), plain.parameters()):
        assert torch.allclose(p.grad, q.grad, rtol=tol, atol=tol * q.grad.abs().max()), name
    # Running statistics moved exactly once in both (recomputation must not update them again).
    for (name, a), b in zip(saving.named_buffers(), plain.buffers()):
        assert torch.allclose(a.double(), b.double(), rtol=tol, atol=tol), name


def test_revnet_memory_saving_stores_less_for_backward():
    from selfsup.backbones.profile import saved_activation_bytes

    x = torch.randn(2, 3, 32, 32)
    saving = saved_activation_bytes(build_backbone("revnet50", width=TINY, memory_saving=True), x)
    plain = saved_activation_bytes(build_backbone("revnet50", width=TINY, memory_saving=False), x)
    assert saving < plain / 3


def test_vgg_and_alexnet_keep_the_original_spatial_sizes_at_224px():
    assert build_backbone("vgg19_bn", width=TINY).feature_shapes(224)["conv5"] == (64, 7, 7)
    assert build_backbone("alexnet", width=TINY, stem="imagenet").feature_shapes(224)["conv5"] == (32, 6, 6)


@pytest.mark.parametrize("name", ["vgg19_bn", "alexnet"])
def test_fc_grid_and_28px_inputs(name):
    model = build_backbone(name, width=TINY, fc_grid=2).eval()
    shapes = model.feature_shapes(28)
    assert shapes["conv5"][1:] >= (1, 1)
    fc6 = [m for m in model.stages["fc6"].modules() if isinstance(m, nn.Linear)][0]
    assert fc6.in_features == shapes["conv5"][0] * 4
    assert shapes["fc7"] == shapes["pre_logits"] == (model.out_dim,) == (512,)


def test_alexnet_without_batch_norm_is_the_original_layer_set():
    model = build_backbone("alexnet", width=TINY, batch_norm=False)
    kinds = {type(m) for m in model.modules()}
    assert nn.BatchNorm2d not in kinds and nn.BatchNorm1d not in kinds
    assert nn.LocalResponseNorm in kinds and nn.Dropout in kinds
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 512)


def test_count_macs_matches_hand_count_and_flops_double_it():
    from selfsup.backbones.profile import count_flops, count_macs

    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.Flatten(), nn.Linear(8 * 10 * 10, 5))
    expected = 10 * 10 * 8 * 3 * 3 * 3 + 800 * 5
    assert count_macs(model, 10) == expected
    assert count_flops(model, 10) == 2 * expected


def test_resnet50_flops_match_the_usual_4_1_gmacs():
    from selfsup.backbones.profile import count_macs

    assert abs(count_macs(build_backbone("resnet50_v1", stem="imagenet"), 224) / 1e9 - 4.09) < 0.02


def test_train_speed_leaves_the_model_untouched():
    from selfsup.backbones.profile import train_images_per_s

    model = build_backbone("resnet18_v1", width=TINY)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    assert train_images_per_s(model, size=32, batch=4, steps=1) > 0
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_revnet_memory_saving_lowers_peak_step_memory():
    from selfsup.backbones.profile import revnet_memory

    saving, plain = revnet_memory(4, 32, width=TINY)
    assert 0 < saving < plain


def test_profile_main_prints_a_row_per_backbone(capsys):
    from selfsup.backbones.profile import main

    assert main(["resnet18_v1", "alexnet", "--width", "0.125", "--batch", "4", "--steps", "1",
                 "--revnet-batch", "0"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 4 and lines[2].startswith("| resnet18_v1 |") and lines[3].startswith("| alexnet |")
    with pytest.raises(SystemExit):
        main(["resnet51"])


def test_small_map_products_are_chosen_by_the_cpu():
    assert gemm_conv.AMX_RULE == {torch.bfloat16: (16, 64), torch.float32: (16, 256)}
    assert gemm_conv.NO_AMX_RULE == {torch.bfloat16: (4, 256)}
    assert gemm_conv.product_rule() == (gemm_conv.AMX_RULE if gemm_conv.has_amx() else gemm_conv.NO_AMX_RULE)


@pytest.mark.parametrize("side", [4, 2])
@pytest.mark.parametrize("how, cin", [("autocast", 64), ("bf16 tensors", 64), ("fp32", 256)])
def test_small_map_conv_as_a_product_matches_the_convolution(side, how, cin, monkeypatch):
    """3x3 convolutions of <= 4x4 CPU maps run as matrix products (AMX's rules, on any CPU); output and both
    gradients match."""
    torch.manual_seed(0)
    monkeypatch.setattr(gemm_conv, "PRODUCT_WHEN", gemm_conv.AMX_RULE)
    calls = []
    monkeypatch.setattr(gemm_conv, "columns", lambda x: calls.append(x.shape) or columns(x))
    conv = gemm_conv.Conv2d(cin, 40, 3, padding=1, bias=False)
    x = torch.randn(6, cin, side, side).to(memory_format=torch.channels_last)
    grad = torch.randn(6, 40, side, side)
    xd, wd = x.double().requires_grad_(), conv.weight.double().detach().requires_grad_()
    want = nn.functional.conv2d(xd, wd, padding=1)
    want.backward(grad.double())
    if how == "bf16 tensors":
        conv.bfloat16()
        x, grad = x.bfloat16(), grad.bfloat16()
    x.requires_grad_()
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=how == "autocast"):
        out = conv(x)
    out.backward(grad.to(out.dtype))
    assert len(calls) == 2  # the forward's columns and the input gradient's: the product path ran
    assert out.shape == want.shape and out.dtype == (torch.float32 if how == "fp32" else torch.bfloat16)
    assert conv.weight.grad.dtype == conv.weight.dtype  # autocast: the fp32 master weight's gradient
    tol = 1e-5 if how == "fp32" else 2e-2
    for got, ref in ((out, want), (x.grad, xd.grad), (conv.weight.grad, wd.grad)):
        assert ((got.double() - ref).abs().max() / ref.abs().max()).item() < tol


def test_small_map_conv_leaves_other_cases_to_torch(monkeypatch):
    monkeypatch.setattr(gemm_conv, "PRODUCT_WHEN", gemm_conv.AMX_RULE)
    monkeypatch.setattr(gemm_conv, "columns", lambda x: pytest.fail("product path taken"))
    x = torch.randn(2, 64, 4, 4)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        gemm_conv.Conv2d(64, 64, 3, padding=1, bias=False)(torch.randn(2, 64, 8, 8))  # 8x8: oneDNN is faster
        gemm_conv.Conv2d(32, 32, 3, padding=1, bias=False)(x[:, :32])  # few channels: oneDNN is faster
        gemm_conv.Conv2d(64, 64, 3, stride=2, padding=1, bias=False)(x)
        gemm_conv.Conv2d(64, 64, 1, bias=False)(x)
    gemm_conv.Conv2d(64, 64, 3, padding=1, bias=False)(x)  # fp32 with fewer than 256 channels
    monkeypatch.setattr(gemm_conv, "PRODUCT_WHEN", gemm_conv.NO_AMX_RULE)
    gemm_conv.Conv2d(256, 256, 3, padding=1, bias=False)(torch.randn(2, 256, 4, 4))  # fp32: never
    with torch.autocast("cpu", dtype=torch.bfloat16):
        gemm_conv.Conv2d(256, 256, 3, padding=1, bias=False)(torch.randn(2, 256, 4, 4))  # bf16 4x4: oneDNN
