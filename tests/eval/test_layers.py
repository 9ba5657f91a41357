"""Per-layer linear probes: every layer scored, in network order, each pooled to about pool_to dims."""
import pytest
import torch

from selfsup.backbones import build_backbone
from selfsup.eval.features import pooled_features
from selfsup.eval.layers import layer_probes

pytestmark = pytest.mark.usefixtures("one_thread")


def test_layer_probes_score_every_layer_in_order(fmnist_datasets):
    train, test = fmnist_datasets
    torch.manual_seed(0)
    backbone = build_backbone("resnet18_v1", width=0.125)
    extract = pooled_features(backbone, 256, precision="fp32")
    names = tuple(backbone.feature_names)
    out = layer_probes(extract(train, names), train.labels, extract(test, names), test.labels)
    assert list(out) == list(names)
    for name, r in out.items():
        assert r["dims"] <= 2 * 256 or name == "pre_logits"
        assert 20 < r["top1"] <= r["top5"] <= 100, (name, r)
