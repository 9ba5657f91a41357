"""The label-using protocols: balanced label subsets, the SGD probe, fine-tuning on a copy."""
import numpy as np
import pytest
import torch

from selfsup.backbones import build_backbone
from selfsup.eval.supervised import balanced_subset, finetune, holdout_split, lr_schedule, sgd_probe
from tests.eval.fixed_backbones import Pixels

pytestmark = pytest.mark.usefixtures("one_thread")


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


def test_lr_schedule_is_a_cosine_or_drops_tenfold_at_60_and_80_percent():
    cosine = lr_schedule(0.1, 100, "cosine")
    assert cosine[0] == pytest.approx(0.1)
    assert cosine[50] == pytest.approx(0.05)
    assert [lr_schedule(1.0, 100, "step")[s] for s in (0, 59, 60, 80)] == pytest.approx([1.0, 1.0, 0.1, 0.01])
    with pytest.raises(ValueError, match="schedule"):
        lr_schedule(0.1, 10, "linear")


def test_sgd_probe_learns_pixels_and_picks_its_lr_on_held_out_data(fmnist_datasets):
    train, test = fmnist_datasets
    r = sgd_probe(Pixels(), train, test, 28, steps=150, batch_size=128, lrs=(1e-4, 0.1), precision="fp32")
    assert set(r.val_top1) == {1e-4, 0.1}
    assert r.lr == max(r.val_top1, key=r.val_top1.get)
    assert r.top1 > 65, r  # chance is 10%


def test_finetuning_a_small_resnet_on_few_labels_beats_chance(fmnist_datasets):
    train, test = fmnist_datasets
    torch.manual_seed(0)
    backbone = build_backbone("resnet18_v1", width=0.125)
    before = [p.clone() for p in backbone.parameters()]
    scores = finetune(backbone, train.subset(balanced_subset(train.labels, 0.1)), test, 28, steps=60, batch_size=64)
    assert scores["top1"] > 40, scores
    assert all(torch.equal(a, b) for a, b in zip(before, backbone.parameters())), "fine-tuning must work on a copy"
