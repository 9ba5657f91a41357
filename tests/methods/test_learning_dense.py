"""End to end on real data for the dense pretext tasks: the pretext task must be learned.

Colorization trains on the offline 'photos' crops and is scored on crops it
did not train on, against the best colour prior, and its encoder's features on
the held-out photos against random init; inpainting trains on a Fashion-MNIST
subset and is scored on validation images against filling the hole with the mean
(its kNN case is in test_learning.py).

Colorization's L-only encoder does not transfer from the training photos to
Fashion-MNIST (its kNN stays below random init's), and on photos it never saw
its rebalanced cross-entropy does not yet beat the colour prior: 150 steps
learn the training photos' colours. Scored with the test split locked.
"""
import numpy as np
import pytest
import torch

from selfsup.augment import to_input
from selfsup.augment.convert import to_unit_float
from selfsup.augment.lab import rebalancing_weights, soft_encode, split_lab
from selfsup.backbones.adapters import rgb_input
from selfsup.data import load_dataset
from selfsup.eval.frozen import evaluate_backbone
from selfsup.methods.colorization import pixel_grid, rebalanced_cross_entropy
from selfsup.methods.inpainting import masked_l2
from selfsup.train import checkpoint
from selfsup.train.build import load_checked_config, load_train_data, make_backbone, method_from_config
from selfsup.train.loop import train

pytestmark = pytest.mark.usefixtures("test_split_locked")


def trained_method(name, tmp_path, overrides):
    cfg = load_checked_config(name, [f"out_dir={tmp_path}", "name=e2e", "backbone.width=0.25", "train.warmup_steps=10",
                             "train.progress=false", *overrides])
    run = train(cfg)
    data = load_train_data(cfg)
    method = method_from_config(cfg, data)
    method.load_state_dict(checkpoint.load(run / "last.pt")["method"])
    return method.eval(), cfg


@torch.no_grad()
def colour_scores(method, images, prior_from):
    """Rebalanced cross-entropy and per-pixel bin accuracy on ``images`` (N, H, W, 3) uint8, for the model
    and for the best constant prediction (the bin distribution of ``prior_from``, weighted as in the loss).

    Accuracy comes plain and rebalanced (each pixel weighted as in the loss): rebalancing trades plain
    accuracy on the common greys and browns for the rarer colours, so the plain kind can fall below the prior's.
    """
    def targets(imgs):
        lightness, ab = split_lab(to_unit_float(torch.from_numpy(imgs).permute(0, 3, 1, 2).contiguous()))
        target = soft_encode(ab.flatten(2)[..., None], method.centers)  # (N, Q, HW, 1)
        return lightness, target, target.argmax(1)

    weights = rebalancing_weights(method.bin_counts, method.centers)
    _, t_prior, n_prior = targets(prior_from)
    prior = (t_prior * weights[n_prior][:, None]).sum(dim=(0, 2, 3))  # (Q,) minimiser of the weighted loss
    prior_logits = (prior / prior.sum()).clamp_min(1e-12).log().view(1, -1, 1, 1)
    lightness, target, nearest = targets(images)
    n, _, h, w = lightness.shape
    logits, _ = method.hypercolumns(lightness / 50 - 1, pixel_grid(torch.arange(h * w).expand(n, -1), h, w))
    pixel_w = weights[nearest]
    most_frequent = torch.bincount(n_prior.flatten(), minlength=len(method.centers)).argmax()
    hit, prior_hit = (logits.argmax(1) == nearest).float(), (nearest == prior.argmax()).float()
    return {"loss": rebalanced_cross_entropy(logits, target, pixel_w).item(),
            "prior_loss": rebalanced_cross_entropy(prior_logits.expand_as(logits), target, pixel_w).item(),
            "acc": hit.mean().item(), "prior_acc": (nearest == most_frequent).float().mean().item(),
            "balanced_acc": ((hit * pixel_w).sum() / pixel_w.sum()).item(),
            "prior_balanced_acc": ((prior_hit * pixel_w).sum() / pixel_w.sum()).item()}


def test_colorization_beats_the_colour_prior_and_random_init_on_crops_it_did_not_train_on(tmp_path):
    method, cfg = trained_method(
        "colorization", tmp_path, ["data.subset=3072", "train.steps=150", "train.batch_size=32"]
    )
    crops = load_dataset("photos").images  # crops 3072.. of the same photos were never trained on
    s = colour_scores(method, crops[3072:3328], prior_from=crops[:512])
    assert s["loss"] < s["prior_loss"] - 0.2, s
    assert s["balanced_acc"] > s["prior_balanced_acc"] + 0.05, s
    # The encoder's features on crops it never saw (the validation split, held out of the training photos'
    # crops): kNN finds each crop's source photo from the other crops (chance 1 in 15).
    held_out = load_train_data(cfg, split="val")
    reference, queries = held_out.subset(range(0, len(held_out), 2)), held_out.subset(range(1, len(held_out), 2))
    torch.manual_seed(cfg.train.seed)
    knn = {name: evaluate_backbone(rgb_input(b, held_out.mean, held_out.std), reference, queries, 32,
                                   linear=False)["knn_top1"]
           for name, b in (("trained", method.backbone), ("random init", make_backbone(cfg).eval()))}
    assert knn["trained"] > knn["random init"] + 10, knn


def test_inpainting_fills_the_hole_better_than_the_mean(tmp_path):
    method, cfg = trained_method("inpainting", tmp_path, ["data.subset=10000", "train.steps=60", "train.batch_size=32"])
    data = load_train_data(cfg)
    val = np.array(load_dataset("fashion_mnist", split="val").images[:256])  # a copy: the cache is read-only
    x = to_input(torch.from_numpy(val).permute(0, 3, 1, 2).contiguous(), data.mean, data.std)
    mask = method.make_masks(len(x), x.shape[-1], x.device)
    with torch.no_grad():
        rec, _ = method.reconstruct(x, mask)
    hole, mean = masked_l2(rec, x, mask).item(), masked_l2(torch.zeros_like(x), x, mask).item()
    assert hole < 0.5 * mean, f"hole L2 {hole:.3f} vs the mean's {mean:.3f}"
