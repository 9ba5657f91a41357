"""AlexNet: the original spatial sizes and, without batch norm, the original layer set."""
import pytest
import torch
from torch import nn

from selfsup.backbones import build_backbone

TINY = 0.125  # width that keeps every backbone a few hundred thousand parameters

pytestmark = pytest.mark.usefixtures("one_thread")


def test_alexnet_keeps_the_original_6x6_conv5_at_224px():
    assert build_backbone("alexnet", width=TINY, stem="imagenet").feature_shapes(224)["conv5"] == (32, 6, 6)


def test_alexnet_without_batch_norm_is_the_original_layer_set():
    model = build_backbone("alexnet", width=TINY, batch_norm=False)
    kinds = {type(m) for m in model.modules()}
    assert nn.BatchNorm2d not in kinds and nn.BatchNorm1d not in kinds
    assert nn.LocalResponseNorm in kinds and nn.Dropout in kinds
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 512)
