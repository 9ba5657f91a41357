"""VGG-19 (BN): the original spatial sizes, and fc6 over a pooled grid (vgg.fc6_input, which AlexNet shares)."""
import pytest
from torch import nn

from selfsup.backbones import build_backbone

TINY = 0.125  # width that keeps every backbone a few hundred thousand parameters

pytestmark = pytest.mark.usefixtures("one_thread")


def test_vgg_keeps_the_original_7x7_conv5_at_224px():
    assert build_backbone("vgg19_bn", width=TINY).feature_shapes(224)["conv5"] == (64, 7, 7)


@pytest.mark.parametrize("name", ["vgg19_bn", "alexnet"])
def test_fc6_reads_a_pooled_grid_and_28px_inputs_keep_every_layer(name):
    model = build_backbone(name, width=TINY, fc_grid=2).eval()
    shapes = model.feature_shapes(28)
    assert shapes["conv5"][1:] >= (1, 1)
    fc6 = [m for m in model.stages["fc6"].modules() if isinstance(m, nn.Linear)][0]
    assert fc6.in_features == shapes["conv5"][0] * 4
    assert shapes["fc7"] == shapes["pre_logits"] == (model.out_dim,) == (512,)
