"""DINO's loss and its teacher centring against hand computations."""
import math

import pytest
import torch

from selfsup.losses import dino_loss, update_center

pytestmark = pytest.mark.usefixtures("one_thread")


def test_dino_loss_matches_hand_computation():
    g = torch.Generator().manual_seed(4)
    student = [torch.randn(2, 3, generator=g) for _ in range(4)]  # 2 global + 2 local crops
    teacher = [torch.randn(2, 3, generator=g) for _ in range(2)]
    center = torch.tensor([0.1, -0.2, 0.3])
    ts, tt = 0.1, 0.04

    def softmax(xs, tau):
        e = [math.exp(x / tau) for x in xs]
        return [v / sum(e) for v in e]

    terms = []
    for i in range(2):
        for v in range(4):
            if v == i:  # the same crop is not its own target
                continue
            ce = 0.0
            for n in range(2):
                q = softmax([float(teacher[i][n, k] - center[k]) for k in range(3)], tt)
                p = softmax([float(student[v][n, k]) for k in range(3)], ts)
                ce += -sum(q[k] * math.log(p[k]) for k in range(3))
            terms.append(ce / 2)
    expected = sum(terms) / len(terms)  # 2 x 3 = 6 pairs
    assert len(terms) == 6
    got = dino_loss(student, teacher, center, student_temperature=ts, teacher_temperature=tt).item()
    assert abs(got - expected) < 1e-4


def test_dino_loss_sends_no_gradient_to_the_teacher():
    student = [torch.randn(3, 5, requires_grad=True) for _ in range(2)]
    teacher = [torch.randn(3, 5, requires_grad=True) for _ in range(2)]
    dino_loss(student, teacher, torch.zeros(5)).backward()
    assert all(s.grad is not None for s in student) and all(t.grad is None for t in teacher)


def test_center_moves_toward_the_batch_mean_with_momentum():
    center = torch.tensor([1.0, 0.0, -1.0])
    batch = [torch.tensor([[2.0, 2.0, 2.0], [4.0, 0.0, 2.0]]), torch.tensor([[0.0, 4.0, 2.0], [2.0, 2.0, 2.0]])]
    out = update_center(center, batch, momentum=0.9)
    assert out is center  # in place: the method's buffer is the centre
    torch.testing.assert_close(center, torch.tensor([0.9 + 0.1 * 2, 0.1 * 2, -0.9 + 0.1 * 2]))
    for _ in range(200):  # a constant stream of outputs: the centre converges to their mean
        update_center(center, batch, momentum=0.9)
    torch.testing.assert_close(center, torch.tensor([2.0, 2.0, 2.0]))


def test_centering_removes_a_constant_offset_of_the_teacher():
    """A teacher that adds the same offset to every output (a collapse direction) gets the same targets once centred."""
    g = torch.Generator().manual_seed(5)
    student = [torch.randn(4, 6, generator=g) for _ in range(3)]
    teacher = [torch.randn(4, 6, generator=g) for _ in range(2)]
    offset = torch.tensor([5.0, 0.0, 0.0, 0.0, 0.0, 0.0])
    c, c_shifted = torch.zeros(6), torch.zeros(6)
    for _ in range(300):
        update_center(c, teacher)
        update_center(c_shifted, [t + offset for t in teacher])
    plain = dino_loss(student, teacher, c)
    shifted = dino_loss(student, [t + offset for t in teacher], c_shifted)
    uncentred = dino_loss(student, [t + offset for t in teacher], torch.zeros(6))
    assert abs(plain.item() - shifted.item()) < 1e-4
    assert abs(uncentred.item() - plain.item()) > 0.5  # without centring the offset dominates the targets
