"""InfoNCE losses (SimCLR's NT-Xent, MoCo's queue, MoCo v3's in-batch form) against their papers' equations."""
import math

import pytest
import torch
import torch.nn.functional as F

from selfsup.losses import info_nce_in_batch, info_nce_with_queue, nt_xent

pytestmark = pytest.mark.usefixtures("one_thread")


def nt_xent_reference(z1, z2, t):
    """The SimCLR paper's Eq. 1 written as a loop over the 2N anchors."""
    z = F.normalize(torch.cat([z1, z2]), dim=1).double()
    n = z1.shape[0]
    total = 0.0
    for i in range(2 * n):
        j = (i + n) % (2 * n)
        num = math.exp(float(z[i] @ z[j]) / t)
        den = sum(math.exp(float(z[i] @ z[k]) / t) for k in range(2 * n) if k != i)
        total += -math.log(num / den)
    return total / (2 * n)


def test_nt_xent_matches_paper_equation():
    g = torch.Generator().manual_seed(0)
    z1, z2 = torch.randn(5, 8, generator=g), torch.randn(5, 8, generator=g)
    for t in (0.1, 0.5):
        assert abs(nt_xent(z1, z2, temperature=t).item() - nt_xent_reference(z1, z2, t)) < 1e-4


def test_nt_xent_is_low_for_matching_views_and_high_for_random():
    g = torch.Generator().manual_seed(1)
    z = torch.randn(16, 32, generator=g)
    aligned = nt_xent(z, z + 0.01 * torch.randn(16, 32, generator=g), temperature=0.1).item()
    shuffled = nt_xent(z, torch.randn(16, 32, generator=g), temperature=0.1).item()
    assert aligned < 0.1 < math.log(31) * 0.5 < shuffled


def info_nce_queue_reference(q, k, queue, t):
    """MoCo's Eq. 1 as a loop: -log exp(q.k+/t) / (exp(q.k+/t) + sum_queue exp(q.k/t))."""
    q, k = F.normalize(q, dim=1).double(), F.normalize(k, dim=1).double()
    total = 0.0
    for i in range(len(q)):
        pos = math.exp(float(q[i] @ k[i]) / t)
        neg = sum(math.exp(float(q[i] @ key.double()) / t) for key in queue)
        total += -math.log(pos / (pos + neg))
    return total / len(q)


def test_info_nce_with_queue_matches_moco_equation():
    g = torch.Generator().manual_seed(0)
    q, k = torch.randn(4, 6, generator=g), torch.randn(4, 6, generator=g)
    queue = F.normalize(torch.randn(7, 6, generator=g), dim=1)
    for t in (0.07, 0.2, 1.0):
        assert (
            abs(info_nce_with_queue(q, k, queue, temperature=t).item() - info_nce_queue_reference(q, k, queue, t))
            < 1e-4
        )


def test_info_nce_with_queue_closed_form_for_orthogonal_negatives():
    # q = k = e0 and K queue entries orthogonal to it: loss = log(1 + K exp(-1/t))
    q = torch.tensor([[3.0, 0.0, 0.0]])  # norm is irrelevant: normalized inside
    queue = torch.tensor([[0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])
    t = 0.2
    assert info_nce_with_queue(q, q, queue, temperature=t).item() == pytest.approx(
        math.log(1 + 3 * math.exp(-1 / t)), rel=1e-5
    )


def test_info_nce_with_queue_sends_no_gradient_to_keys_or_queue():
    q = torch.randn(3, 4, requires_grad=True)
    k = torch.randn(3, 4, requires_grad=True)
    queue = torch.randn(5, 4, requires_grad=True)
    info_nce_with_queue(q, k, queue).backward()
    assert q.grad is not None and k.grad is None and queue.grad is None


def test_info_nce_in_batch_matches_loop_and_closed_form():
    g = torch.Generator().manual_seed(1)
    q, k = torch.randn(5, 8, generator=g), torch.randn(5, 8, generator=g)
    qn, kn = F.normalize(q, dim=1).double(), F.normalize(k, dim=1).double()
    t = 0.5
    ref = -sum(math.log(math.exp(float(qn[i] @ kn[i]) / t) / sum(math.exp(float(qn[i] @ kn[j]) / t) for j in range(5)))
               for i in range(5)) / 5
    assert info_nce_in_batch(q, k, temperature=t).item() == pytest.approx(ref, abs=1e-5)
    eye = torch.eye(4)  # orthonormal queries equal to their keys: log(1 + (B - 1) exp(-1/t))
    assert info_nce_in_batch(eye, eye, temperature=t).item() == pytest.approx(
        math.log(1 + 3 * math.exp(-1 / t)), rel=1e-5
    )


def test_info_nce_in_batch_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="shape"):
        info_nce_in_batch(torch.randn(3, 4), torch.randn(3, 5))
