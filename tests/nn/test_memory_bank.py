"""The memory bank: unit rows, momentum update of the batch's rows only, carried by state_dict."""
import pytest
import torch
import torch.nn.functional as F

from selfsup.nn.memory_bank import MemoryBank

pytestmark = pytest.mark.usefixtures("one_thread")


def test_bank_starts_as_random_unit_vectors_in_state_dict():
    torch.manual_seed(0)
    mem = MemoryBank(50, 8)
    assert torch.allclose(mem.bank.norm(dim=1), torch.ones(50), atol=1e-6)
    assert mem.bank.std() > 0.1  # not a constant
    assert "bank" in mem.state_dict()
    other = MemoryBank(50, 8)
    other.load_state_dict(mem.state_dict())
    assert torch.equal(other.bank, mem.bank)


def test_update_moves_only_the_batch_rows_with_momentum_half_and_renormalises():
    torch.manual_seed(0)
    mem = MemoryBank(10, 4, momentum=0.5)
    before = mem.bank.clone()
    index = torch.tensor([2, 7])
    z = F.normalize(torch.randn(2, 4), dim=1)
    mem.update(index, z)
    expected = F.normalize(0.5 * before[index] + 0.5 * z, dim=1)
    assert torch.allclose(mem.bank[index], expected, atol=1e-6)
    assert torch.allclose(mem.bank[index].norm(dim=1), torch.ones(2), atol=1e-6)
    untouched = torch.ones(10, dtype=torch.bool)
    untouched[index] = False
    assert torch.equal(mem.bank[untouched], before[untouched])


def test_update_with_momentum_zero_stores_the_new_vectors():
    mem = MemoryBank(5, 3, momentum=0.0)
    z = F.normalize(torch.tensor([[3.0, 0.0, 4.0]]), dim=1)
    mem.update(torch.tensor([4]), z)
    assert torch.allclose(mem.bank[4], torch.tensor([0.6, 0.0, 0.8]), atol=1e-6)


def test_similarity_is_the_same_gathered_or_scored_against_the_whole_bank():
    torch.manual_seed(0)
    mem = MemoryBank(20, 6)
    z = F.normalize(torch.randn(3, 6), dim=1).requires_grad_()
    few = torch.randint(20, (3, 2))  # 6 < 20 rows: gathered
    many = torch.randint(20, (3, 9))  # 27 >= 20 rows: one matmul against the bank
    for index in (few, many):
        ref = (z[:, None, :] * mem.bank[index]).sum(-1)
        assert torch.allclose(mem.similarity(z, index), ref, atol=1e-6)
    mem.similarity(z, many).sum().backward()
    assert z.grad is not None and mem.bank.grad is None


def test_negatives_are_drawn_uniformly_over_the_bank():
    torch.manual_seed(0)
    mem = MemoryBank(8, 2)
    idx = mem.sample(100, 80)
    assert idx.shape == (100, 80) and idx.min() >= 0 and idx.max() < 8
    freq = torch.bincount(idx.flatten(), minlength=8).float() / idx.numel()
    assert torch.allclose(freq, torch.full((8,), 1 / 8), atol=0.01)


@pytest.mark.parametrize("kwargs, match", [
    ({"num_samples": 1, "dim": 4}, "num_samples"),
    ({"num_samples": 10, "dim": 0}, "dim"),
    ({"num_samples": 10, "dim": 4, "momentum": 1.0}, "momentum"),
])
def test_bad_arguments_name_themselves(kwargs, match):
    with pytest.raises(ValueError, match=match):
        MemoryBank(**kwargs)


@pytest.mark.parametrize("k", [2, 9])  # gathered rows, and the whole-bank matmul
def test_backward_after_update_uses_the_rows_as_they_were_scored(k):
    torch.manual_seed(0)
    mem = MemoryBank(20, 6)
    old = mem.bank.clone()
    z = F.normalize(torch.randn(3, 6), dim=1).requires_grad_()
    index = torch.randint(20, (3, k))
    sim = mem.similarity(z, index)
    mem.update(torch.arange(20), torch.randn(20, 6))  # every row changes in place before backward
    sim.sum().backward()
    assert torch.allclose(z.grad, old[index].sum(1), atol=1e-6)


def test_similarity_is_float32_under_bf16_autocast():
    torch.manual_seed(0)
    mem = MemoryBank(20, 6)
    z = F.normalize(torch.randn(3, 6), dim=1)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        for k in (2, 9):
            sim = mem.similarity(z, torch.randint(20, (3, k)))
            assert sim.dtype == torch.float32
