"""Feature extraction: every layer for every image, pooling, bf16, memmaps, the on-disk cache, L-only encoders."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from selfsup.augment.lab import lightness_input
from selfsup.backbones import build_backbone
from selfsup.backbones.base import Backbone
from selfsup.eval import FeatureCache, extract_features, pooled_size
from selfsup.eval.features import backbone_features, pooled_features

pytestmark = pytest.mark.usefixtures("one_thread")


class TinyNet(Backbone):
    feature_names = ("conv1", "conv2", "pre_logits")
    out_dim = 16

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.conv2 = nn.Conv2d(8, 16, 3, stride=2, padding=1)

    def features(self, x, names=None):
        names = names or self.feature_names
        out = {"conv1": F.relu(self.conv1(x))}  # (B, 8, 16, 16)
        out["conv2"] = F.relu(self.conv2(out["conv1"]))  # (B, 16, 8, 8)
        out["pre_logits"] = out["conv2"].mean((2, 3))  # (B, 16)
        return {n: out[n] for n in names}


def _to_input(batch: torch.Tensor) -> torch.Tensor:
    return batch.float() / 127.5 - 1.0


def _images(n: int = 37) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (n, 16, 16, 3), dtype=np.uint8)


def test_extract_features_returns_each_layer_for_every_image():
    torch.manual_seed(0)
    net = TinyNet()
    feats = extract_features(net, _images(), _to_input, layers=("conv2", "pre_logits"), batch_size=10, precision="fp32")
    assert feats["conv2"].shape == (37, 16, 8, 8)
    assert feats["pre_logits"].shape == (37, 16)
    assert feats["pre_logits"].dtype == torch.float32
    with torch.no_grad():
        direct = net(_to_input(torch.from_numpy(_images()).permute(0, 3, 1, 2)))
    torch.testing.assert_close(feats["pre_logits"], direct, rtol=1e-4, atol=1e-5)
    assert net.training  # mode restored


def test_extract_features_pools_spatial_layers_to_about_pool_to_dims():
    feats = extract_features(TinyNet(), _images(), _to_input, layers=("conv1", "conv2"), pool_to=128)
    assert feats["conv1"].shape == (37, 8 * 4 * 4)  # 8 x 16 x 16 -> 8 x 4 x 4 = 128
    assert feats["conv2"].shape == (37, 16 * 3 * 3)  # 16 x 8 x 8 -> 16 x 3 x 3 = 144 (closest)
    assert pooled_size(96, 55, 55, 9216) == (10, 10)  # AlexNet conv1 in the per-layer benchmark


def test_extract_features_bf16_is_close_to_fp32_and_reads_memmaps(tmp_path):
    torch.manual_seed(0)
    net = TinyNet()
    mm = np.lib.format.open_memmap(tmp_path / "images.npy", mode="w+", dtype=np.uint8, shape=(37, 16, 16, 3))
    mm[:] = _images()
    fp32 = extract_features(net, mm, _to_input, precision="fp32")["pre_logits"]
    bf16 = extract_features(net, mm, _to_input, precision="bf16")["pre_logits"]
    assert (bf16 - fp32).norm() / fp32.norm() < 2e-2


def test_extract_features_names_a_missing_layer_and_bad_images():
    with pytest.raises(KeyError, match="fc7"):
        extract_features(TinyNet(), _images(), _to_input, layers=("fc7",))
    with pytest.raises(ValueError, match="uint8"):
        extract_features(TinyNet(), _images().astype(np.float32), _to_input)


def test_feature_cache_round_trips_and_extracts_only_missing_layers(tmp_path):
    cache = FeatureCache(tmp_path)
    assert cache.get("run1", "conv1", "train", 9216) is None
    feats = torch.randn(4, 3)
    cache.put("run1", "conv1", "train", 9216, feats)
    assert torch.equal(cache.get("run1", "conv1", "train", 9216), feats)
    assert cache.get("run1", "conv1", "train", None) is None  # pooling is part of the key

    asked = []

    def extract(layers):
        asked.append(layers)
        return {name: torch.zeros(4, 2) for name in layers}

    out = cache.get_or_extract("run1", "train", ("conv1", "conv2"), 9216, extract)
    assert asked == [("conv2",)]
    assert torch.equal(out["conv1"], feats)
    assert cache.get_or_extract("run1", "train", ("conv1", "conv2"), 9216, extract)["conv2"].shape == (4, 2)
    assert asked == [("conv2",)]  # second call served from disk
    assert not list(tmp_path.rglob("*.tmp"))


def test_feature_cache_rejects_keys_that_are_not_plain_names(tmp_path):
    with pytest.raises(ValueError, match="split"):
        FeatureCache(tmp_path).path("run1", "conv1", "../test")


def test_an_l_only_encoder_is_fed_the_lightness_channel(fmnist_datasets):
    train, _ = fmnist_datasets
    backbone = build_backbone("resnet18_v1", width=0.125, in_channels=1)
    few = train.subset(range(8))
    feats = pooled_features(backbone, None, precision="fp32", size=28)(few, ("pre_logits",))
    assert feats["pre_logits"].shape == (8, backbone.out_dim) and torch.isfinite(feats["pre_logits"]).all()
    # kNN's path (evaluate_backbone) reads the same input: it used to feed the 3-channel to_input and fail
    expected = backbone.eval()(lightness_input(torch.from_numpy(few.images).permute(0, 3, 1, 2).contiguous()))
    assert torch.allclose(backbone_features(backbone, few, 28, precision="fp32"), expected, atol=1e-5)
