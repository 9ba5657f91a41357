"""SwAV and DINO: Sinkhorn codes, swapped prediction, DINO loss and centering, against hand-written references."""
import math
import os

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from selfsup.losses import dino_loss, swapped_prediction, update_center
from selfsup.nn import sinkhorn_knopp

pytestmark = pytest.mark.usefixtures("one_thread")


def sinkhorn_reference(scores, epsilon, iterations):
    """The paper's Sinkhorn-Knopp as explicit loops over prototypes k and samples b, in float64."""
    b, k = scores.shape
    q = [[math.exp(float(scores[i, j]) / epsilon) for i in range(b)] for j in range(k)]  # q[k][b]
    total = sum(map(sum, q))
    q = [[v / total for v in row] for row in q]
    for _ in range(iterations):
        for j in range(k):  # every prototype holds 1/K of the mass
            s = sum(q[j])
            q[j] = [v / s / k for v in q[j]]
        for i in range(b):  # every sample holds 1/B of the mass
            s = sum(q[j][i] for j in range(k))
            for j in range(k):
                q[j][i] = q[j][i] / s / b
    return torch.tensor([[q[j][i] * b for j in range(k)] for i in range(b)], dtype=torch.float64)


def test_sinkhorn_matches_reference_loop():
    g = torch.Generator().manual_seed(0)
    scores = torch.nn.functional.normalize(torch.randn(6, 4, generator=g), dim=1)  # cosines, as SwAV's
    for eps, iters in ((0.05, 3), (0.5, 1), (0.1, 7)):
        codes = sinkhorn_knopp(scores, epsilon=eps, iterations=iters)
        torch.testing.assert_close(codes.double(), sinkhorn_reference(scores, eps, iters), rtol=1e-4, atol=1e-6)


def test_sinkhorn_codes_have_the_equipartition_marginals():
    g = torch.Generator().manual_seed(1)
    b, k = 32, 8
    scores = torch.nn.functional.normalize(torch.randn(b, k, generator=g), dim=1)
    scores[:, 0] += 0.5  # a prototype every sample prefers: equipartition must spread them anyway
    greedy = (scores / 0.05).softmax(dim=1).sum(dim=0)  # (K,) no equipartition: prototype 0 takes half the batch
    codes = sinkhorn_knopp(scores, epsilon=0.05, iterations=3)
    torch.testing.assert_close(codes.sum(dim=1), torch.ones(b))  # each code is a distribution
    # Three iterations do not converge at eps 0.05, but they undo most of the imbalance (measured: 2.5-5.2 vs 4).
    spread = (codes.sum(dim=0) - b / k).abs().max()
    assert spread < 0.4 * b / k and spread < 0.2 * (greedy - b / k).abs().max()
    converged = sinkhorn_knopp(scores, epsilon=0.05, iterations=100)
    torch.testing.assert_close(converged.sum(dim=0), torch.full((k,), b / k), rtol=1e-3, atol=1e-4)


def test_sinkhorn_is_float32_without_gradient_and_does_not_overflow():
    scores = torch.tensor([[1.0, -1.0, 0.5], [0.9, 0.2, -0.3]], requires_grad=True)
    codes = sinkhorn_knopp(scores.bfloat16(), epsilon=0.01, iterations=3)  # exp(1 / 0.01) overflows float32 unshifted
    assert codes.dtype == torch.float32 and not codes.requires_grad and torch.isfinite(codes).all()
    with pytest.raises(ValueError, match="epsilon"):
        sinkhorn_knopp(scores, epsilon=0.0)
    with pytest.raises(ValueError, match="iterations"):
        sinkhorn_knopp(scores, iterations=0)


def _sinkhorn_rank(r, world, scores, path, port):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=r, world_size=world)
    try:
        b = scores.shape[0] // world
        codes = sinkhorn_knopp(scores[r * b : (r + 1) * b], epsilon=0.05, iterations=3)
        center = torch.zeros(scores.shape[1])
        update_center(center, [scores[r * b : (r + 1) * b]], momentum=0.9)
        torch.save((codes, center), f"{path}.{r}")
    finally:
        dist.destroy_process_group()


def test_two_ranks_give_the_codes_and_center_of_one_process_on_the_whole_batch(tmp_path):
    """Each rank holds half the batch; the all-reduced sums make the result that of the full batch."""
    g = torch.Generator().manual_seed(2)
    scores = torch.nn.functional.normalize(torch.randn(8, 5, generator=g), dim=1)
    port = 29500 + os.getpid() % 1000
    mp.spawn(_sinkhorn_rank, args=(2, scores, str(tmp_path / "out"), port), nprocs=2, join=True)
    parts = [torch.load(tmp_path / f"out.{r}") for r in range(2)]
    torch.testing.assert_close(torch.cat([p[0] for p in parts]), sinkhorn_knopp(scores, 0.05, 3))
    for _, center in parts:
        torch.testing.assert_close(center, 0.1 * scores.mean(dim=0))


def test_swapped_prediction_matches_hand_computation():
    g = torch.Generator().manual_seed(3)
    views = [torch.randn(2, 3, generator=g) for _ in range(3)]  # V=3 views, B=2, K=3
    codes = [torch.softmax(torch.randn(2, 3, generator=g), dim=1) for _ in range(2)]
    t = 0.1
    expected = 0.0
    for i in range(2):  # code of view i predicted by each other view v
        pair_losses = []
        for v in range(3):
            if v == i:
                continue
            per_sample = []
            for n in range(2):
                z = [math.exp(float(views[v][n, k]) / t) for k in range(3)]
                per_sample.append(-sum(float(codes[i][n, k]) * math.log(z[k] / sum(z)) for k in range(3)))
            pair_losses.append(sum(per_sample) / 2)
        expected += sum(pair_losses) / len(pair_losses)
    expected /= 2
    assert abs(swapped_prediction(views, codes, temperature=t).item() - expected) < 1e-4


def test_swapped_prediction_is_lowest_when_views_predict_each_others_codes():
    codes = [torch.eye(4), torch.eye(4)]
    agree = swapped_prediction([torch.eye(4), torch.eye(4)], codes, temperature=0.1).item()
    disagree = swapped_prediction([torch.eye(4), torch.eye(4).roll(1, dims=1)], codes, temperature=0.1).item()
    assert agree < 0.01 < 4 < disagree  # one of the two swapped terms is wrong by 1 / 0.1
    with pytest.raises(ValueError, match="views"):
        swapped_prediction([torch.eye(4)], codes[:1])


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
