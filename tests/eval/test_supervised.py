"""The label-using protocols (SGD probe, fine-tuning), per-layer probes, invariance, and `selfsup eval --protocol`."""
import json

import numpy as np
import pytest
import torch
from torch import nn

from selfsup.augment import to_input
from selfsup.backbones import build_backbone
from selfsup.augment.lab import lightness_input
from selfsup.cli import main
from selfsup.data import load_dataset
from selfsup.eval.invariance import invariance, shuffle_tiles
from selfsup.backbones.adapters import tile_representation
from selfsup.eval.features import pooled_features
from selfsup.eval.layers import layer_probes
from selfsup.eval.features import backbone_features
from selfsup.runs.evaluate import evaluate_run
from selfsup.eval.supervised import balanced_subset, finetune, holdout_split, lr_schedule, sgd_probe

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def fmnist():
    train = load_dataset("fashion_mnist", split="train").subset(range(3000))
    test = load_dataset("fashion_mnist", split="test").subset(range(1000))
    return train, test


class Pixels(nn.Module):
    """A 'backbone' whose pre-logits are the flattened first channel: a known, fixed representation."""

    out_dim = 28 * 28

    def __init__(self):
        super().__init__()
        self.dummy = nn.Parameter(torch.zeros(1))  # gives the module a device and dtype

    def forward(self, x):
        return x[:, 0].flatten(1) + 0 * self.dummy


class MeanColour(Pixels):
    """Pre-logits that ignore where pixels are: invariant to rotations and tile shuffles."""

    out_dim = 3

    def forward(self, x):
        return x.mean(dim=(2, 3)) + 0 * self.dummy


def test_balanced_subset_takes_the_fraction_of_every_class_with_a_fixed_seed():
    labels = np.repeat(np.arange(4), [100, 200, 50, 3])
    idx = balanced_subset(labels, 0.1, seed=3)
    counts = np.bincount(labels[idx], minlength=4)
    assert counts.tolist() == [10, 20, 5, 1]  # at least one image of the rarest class
    assert np.array_equal(idx, balanced_subset(labels, 0.1, seed=3))
    assert not np.array_equal(idx, balanced_subset(labels, 0.1, seed=4))
    with pytest.raises(ValueError, match="fraction"):
        balanced_subset(labels, 0.0)


def test_holdout_split_is_a_partition():
    fit, val = holdout_split(100, 0.2, seed=1)
    assert len(val) == 20 and sorted(np.concatenate([fit, val]).tolist()) == list(range(100))


def test_schedules():
    cosine = lr_schedule(0.1, 100, "cosine")
    assert cosine[0] == pytest.approx(0.1)
    assert cosine[50] == pytest.approx(0.05)
    assert [lr_schedule(1.0, 100, "step")[s] for s in (0, 59, 60, 80)] == pytest.approx([1.0, 1.0, 0.1, 0.01])
    with pytest.raises(ValueError, match="schedule"):
        lr_schedule(0.1, 10, "linear")


def test_sgd_probe_learns_pixels_and_picks_its_lr_on_held_out_data(fmnist):
    train, test = fmnist
    r = sgd_probe(Pixels(), train, test, 28, steps=150, batch_size=128, lrs=(1e-4, 0.1), precision="fp32")
    assert set(r.val_top1) == {1e-4, 0.1}
    assert r.lr == max(r.val_top1, key=r.val_top1.get)
    assert r.top1 > 65, r  # raw pixels reach ~80% with a full run; chance is 10%


def test_finetuning_a_small_resnet_on_few_labels_beats_chance(fmnist):
    train, test = fmnist
    torch.manual_seed(0)
    backbone = build_backbone("resnet18_v1", width=0.125)
    before = [p.clone() for p in backbone.parameters()]
    scores = finetune(backbone, train.subset(balanced_subset(train.labels, 0.1)), test, 28, steps=60, batch_size=64)
    assert scores["top1"] > 40, scores
    assert all(torch.equal(a, b) for a, b in zip(before, backbone.parameters())), "fine-tuning must work on a copy"


def test_layer_probes_score_every_layer_in_order(fmnist):
    train, test = fmnist
    torch.manual_seed(0)
    backbone = build_backbone("resnet18_v1", width=0.125)
    extract = pooled_features(backbone, 256, precision="fp32")
    names = tuple(backbone.feature_names)
    out = layer_probes(extract(train, names), train.labels, extract(test, names), test.labels)
    assert list(out) == list(names)
    for name, r in out.items():
        assert r["dims"] <= 2 * 256 or name == "pre_logits"
        assert 20 < r["top1"] <= r["top5"] <= 100, (name, r)


def test_shuffle_tiles_moves_whole_cells():
    x = torch.arange(2 * 9 * 9, dtype=torch.float32).reshape(2, 1, 9, 9).expand(2, 3, 9, 9).clone()
    y = shuffle_tiles(None, x, torch.Generator().manual_seed(0))
    assert not torch.equal(x, y)
    for b in range(2):
        cells_x = {tuple(x[b, 0, i:i + 3, j:j + 3].flatten().tolist()) for i in (0, 3, 6) for j in (0, 3, 6)}
        cells_y = {tuple(y[b, 0, i:i + 3, j:j + 3].flatten().tolist()) for i in (0, 3, 6) for j in (0, 3, 6)}
        assert cells_x == cells_y


def test_invariance_is_zero_for_an_invariant_representation_and_not_for_pixels(fmnist):
    _, test = fmnist
    small = test.subset(range(200))
    inv = invariance(MeanColour(), small, 27, transforms=("rotation", "jigsaw"), precision="fp32")
    pix = invariance(Pixels(), small, 27, transforms=("rotation", "jigsaw", "crop", "colour"), precision="fp32")
    for name in ("rotation", "jigsaw"):
        assert inv[name]["l2_mean"] < 1e-4 and pix[name]["l2_mean"] > 0.1
        assert inv[name]["relative_mean"] < 1e-3 and pix[name]["relative_mean"] > 0.1
        assert inv[name]["l2"].shape == (200,)
    assert all(0 <= pix[k]["cosine_mean"] <= 2 for k in pix)
    with pytest.raises(ValueError, match="unknown invariance transform"):
        invariance(Pixels(), small, 27, transforms=("blur",))


def test_tiles_invariance_compares_the_whole_image_with_the_mean_of_its_tiles(fmnist):
    _, test = fmnist
    small = test.subset(range(40))
    torch.manual_seed(0)
    backbone = build_backbone("resnet18_v1", width=0.125).eval()
    tiling = dict(image_size=None, gap=1, jitter=1)
    got = invariance(backbone, small, 28, transforms=("tiles",), tiling=tiling, precision="fp32")["tiles"]
    x = torch.from_numpy(np.array(small.images)).permute(0, 3, 1, 2)
    x = to_input(x, small.mean, small.std, 28)
    with torch.no_grad():
        z = torch.nn.functional.normalize(backbone(x), dim=1)
        zt = torch.nn.functional.normalize(tile_representation(backbone, x, **tiling), dim=1)
    assert np.allclose(got["l2"], (z - zt).norm(dim=1).numpy(), atol=1e-4)
    assert 0 < got["l2_mean"] < 2
    between = (z - z.roll(1, 0)).norm(dim=1).mean().item()  # one batch of 40: each image against the previous
    assert got["l2_between_mean"] == pytest.approx(between, abs=1e-4)
    assert got["relative_mean"] == pytest.approx(got["l2_mean"] / between, rel=1e-3)
    assert np.allclose(got["relative"], got["l2"] / between, rtol=1e-3)
    other = invariance(backbone, small, 28, transforms=("tiles",), precision="fp32")["tiles"]  # 64 px, gap 2: other tiles
    assert not np.allclose(other["l2"], got["l2"], atol=1e-3)


def test_eval_cli_runs_every_protocol_and_caches_features(tmp_path, capsys):
    assert main(["train", "rotation", f"out_dir={tmp_path}", "name=r", "data.subset=256", "backbone.width=0.125",
                 "train.steps=3", "train.warmup_steps=0", "train.batch_size=32", "train.progress=false"]) == 0
    run = tmp_path / "r"
    assert main(["eval", str(run), "--protocol", "knn", "linear", "clustering", "layers", "invariance",
                 "--train-subset", "1000", "--pool-to", "128"]) == 0
    r = json.loads((run / "eval.json").read_text())
    assert {"knn_top1", "linear_top1", "clustering", "layers", "invariance", "pretext_acc"} <= set(r)
    assert list(r["layers"]) == ["stem", "block1", "block2", "block3", "block4", "pre_logits"]
    assert set(r["clustering"]) == {"k=10", "k=20"} and 0 <= r["clustering"]["k=10"]["nmi"] <= 1
    assert set(r["invariance"]) == {"rotation", "jigsaw", "colour", "crop", "tiles"}
    assert (run / "invariance.npz").exists()
    cached = sorted(p.name for p in (run / "features").rglob("*.npy"))
    assert "pre_logits__poolnone.npy" in cached and "block2__pool128.npy" in cached
    mtimes = {p: p.stat().st_mtime_ns for p in (run / "features").rglob("*.npy")}
    assert main(["eval", str(run), "--protocol", "knn", "--train-subset", "1000"]) == 0  # reads the cache
    assert all(p.stat().st_mtime_ns == t for p, t in mtimes.items())
    assert json.loads((run / "eval.json").read_text())["layers"] == r["layers"]  # merged, not overwritten
    assert main(["eval", str(run), "--protocol", "knn", "linear", "--dataset", "elpv"]) == 0  # transfer to solar cells
    transfer = json.loads((run / "eval_on_elpv.json").read_text())
    assert transfer["dataset"] == "elpv" and transfer["test_images"] == 654
    assert 40 < transfer["knn_top1"] <= 100 and 40 < transfer["linear_top1"] <= 100  # 4 classes, 58% majority
    assert main(["eval", str(run), "--protocol", "knn", "telepathy"]) == 2
    assert "unknown protocol" in capsys.readouterr().err


def test_an_l_only_encoder_is_fed_the_lightness_channel(fmnist):
    train, _ = fmnist
    backbone = build_backbone("resnet18_v1", width=0.125, in_channels=1)
    few = train.subset(range(8))
    feats = pooled_features(backbone, None, precision="fp32", size=28)(few, ("pre_logits",))
    assert feats["pre_logits"].shape == (8, backbone.out_dim) and torch.isfinite(feats["pre_logits"]).all()
    # kNN's path (evaluate_backbone) reads the same input: it used to feed the 3-channel to_input and fail
    expected = backbone.eval()(lightness_input(torch.from_numpy(few.images).permute(0, 3, 1, 2).contiguous()))
    assert torch.allclose(backbone_features(backbone, few, 28, precision="fp32"), expected, atol=1e-5)


def test_sgd_finetune_and_invariance_accept_an_l_only_encoder(fmnist):
    """They augment RGB; the wrapped L-only encoder reads it as L (it crashed on 3 channels)."""
    from selfsup.backbones.adapters import LightnessBackbone, rgb_input

    train, test = fmnist
    few, few_test = train.subset(range(64)), test.subset(range(32))
    backbone = rgb_input(build_backbone("resnet18_v1", width=0.125, in_channels=1), train.mean, train.std)
    assert isinstance(backbone, LightnessBackbone) and rgb_input(backbone, train.mean, train.std) is backbone
    assert 0 <= sgd_probe(backbone, few, few_test, 28, steps=2, batch_size=16, lrs=(0.1,)).top1 <= 100
    assert 0 <= finetune(backbone, few, few_test, 28, steps=2, batch_size=16)["top1"] <= 100
    inv = invariance(backbone, few_test, 28, n=16, tiling=dict(image_size=None, gap=1, jitter=1))
    assert all(0 <= v["l2_mean"] <= 2 for v in inv.values()) and len(inv) == 5


def test_eval_cli_wraps_an_l_only_colorization_encoder(tmp_path):
    assert main(["train", "colorization", f"out_dir={tmp_path}", "name=c", "data.name=fashion_mnist",
                 "data.subset=256", "backbone.width=0.125", "train.steps=2", "train.warmup_steps=0",
                 "train.batch_size=16", "train.progress=false"]) == 0
    run = tmp_path / "c"
    assert main(["eval", str(run), "--protocol", "knn", "invariance", "--train-subset", "200"]) == 0
    r = json.loads((run / "eval.json").read_text())
    assert 0 <= r["knn_top1"] <= 100 and set(r["invariance"]) == {"rotation", "jigsaw", "colour", "crop", "tiles"}


def test_eval_refuses_splits_with_different_classes_and_names_the_way_out(tmp_path):
    """'photos' cuts its test split from other photos: kNN would compare unrelated labels, so it must fail."""
    assert main(["train", "colorization", f"out_dir={tmp_path}", "name=c", "data.subset=64", "backbone.width=0.125",
                 "train.steps=1", "train.warmup_steps=0", "train.batch_size=16", "train.progress=false"]) == 0
    with pytest.raises(ValueError, match=r"photos/test's classes .*--dataset"):
        evaluate_run(tmp_path / "c", ("knn",), progress=False)
