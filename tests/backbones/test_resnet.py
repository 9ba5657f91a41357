"""ResNet v1/v2: the paper's widening, torchvision's parameter counts, activation order, zero-init residuals."""
import pytest
import torch
from torch import nn

from selfsup.backbones import build_backbone
from selfsup.registry import ConfigError

TINY = 0.125  # width that keeps every backbone a few hundred thousand parameters

pytestmark = pytest.mark.usefixtures("one_thread")


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
