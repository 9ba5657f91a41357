"""Backbone profiling: MAC and FLOP counts, training speed, the per-backbone table."""
import pytest
import torch
from torch import nn

from selfsup.backbones import build_backbone

TINY = 0.125  # width that keeps every backbone a few hundred thousand parameters

pytestmark = pytest.mark.usefixtures("one_thread")


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


def test_profile_main_prints_a_row_per_backbone(capsys):
    from selfsup.backbones.profile import main

    assert main(["resnet18_v1", "alexnet", "--width", "0.125", "--batch", "4", "--steps", "1",
                 "--revnet-batch", "0"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 4 and lines[2].startswith("| resnet18_v1 |") and lines[3].startswith("| alexnet |")
    with pytest.raises(SystemExit):
        main(["resnet51"])
