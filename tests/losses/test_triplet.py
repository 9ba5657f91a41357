"""Batch-hard triplet loss against hand-computed values."""
import math

import pytest
import torch

from selfsup.losses import batch_hard_triplet

pytestmark = pytest.mark.usefixtures("one_thread")


def test_batch_hard_triplet_matches_hand_computed_value():
    # Four points on a line: class 0 at 0 and 1, class 1 at 3 and 5.
    z = torch.tensor([[0.0], [1.0], [3.0], [5.0]])
    labels = torch.tensor([0, 0, 1, 1])
    # anchor 0: hardest positive 1, hardest negative 3 -> relu(1 - 3 + m)
    # anchor 1: positive 1, negative 2                  -> relu(1 - 2 + m)
    # anchor 3: positive 2, negative 2 (to point 1)     -> relu(2 - 2 + m)
    # anchor 5: positive 2, negative 4                  -> relu(2 - 4 + m)
    for m, expected in ((0.5, (0 + 0 + 0.5 + 0) / 4), (1.5, (0 + 0.5 + 1.5 + 0) / 4), (0.0, 0.0)):
        assert batch_hard_triplet(z, labels, margin=m).item() == pytest.approx(expected, abs=1e-6)


def test_batch_hard_triplet_matches_a_loop_reference_in_2d():
    g = torch.Generator().manual_seed(0)
    z = torch.randn(9, 4, generator=g)
    labels = torch.tensor([0, 0, 0, 1, 1, 2, 2, 2, 2])
    total = 0.0
    for a in range(9):
        d = [math.dist(z[a].tolist(), z[k].tolist()) for k in range(9)]
        pos = max(d[k] for k in range(9) if labels[k] == labels[a] and k != a)
        neg = min(d[k] for k in range(9) if labels[k] != labels[a])
        total += max(0.0, pos - neg + 0.3)
    assert batch_hard_triplet(z, labels, margin=0.3).item() == pytest.approx(total / 9, abs=1e-5)


def test_batch_hard_triplet_gradient_is_finite_for_identical_points():
    z = torch.zeros(4, 3, requires_grad=True)
    loss = batch_hard_triplet(z, torch.tensor([0, 0, 1, 1]), margin=0.5)
    loss.backward()
    assert loss.item() == pytest.approx(0.5) and torch.isfinite(z.grad).all()


def test_batch_hard_triplet_rejects_singleton_classes_and_bad_margin():
    with pytest.raises(ValueError, match="two rows"):
        batch_hard_triplet(torch.randn(3, 2), torch.tensor([0, 0, 1]))
    with pytest.raises(ValueError, match="margin"):
        batch_hard_triplet(torch.randn(4, 2), torch.tensor([0, 0, 1, 1]), margin=-1.0)
