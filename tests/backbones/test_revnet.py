"""RevNet: blocks invert exactly, and memory saving recomputes activations with the same gradients."""
import pytest
import torch

from selfsup.backbones import build_backbone

TINY = 0.125  # width that keeps every backbone a few hundred thousand parameters

pytestmark = pytest.mark.usefixtures("one_thread")


def test_revnet_block_inverse_reconstructs_its_input():
    torch.manual_seed(0)
    model = build_backbone("revnet50", width=TINY).double().train()
    block = model.stages["block2"][1]
    x = torch.randn(2, 64, 16, 16, dtype=torch.float64)
    assert torch.allclose(block.invert(block(x)), x, atol=1e-10)
    y = block(x)  # a second training forward: stats move once
    assert torch.allclose(block.invert(y), x, atol=1e-10)


def test_revnet_invert_leaves_running_stats_alone():
    model = build_backbone("revnet50", width=TINY).train()
    block = model.stages["block1"]
    y = block(torch.randn(2, 32, 8, 8))
    before = [b.clone() for b in block.buffers()]
    block.invert(y)
    assert all(torch.equal(a, b) for a, b in zip(before, block.buffers()))


@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-10), (torch.float32, 1e-4)])
def test_revnet_memory_saving_gradients_equal_plain_backprop(dtype, tol):
    torch.manual_seed(0)
    saving = build_backbone("revnet50", width=TINY, memory_saving=True).to(dtype).train()
    plain = build_backbone("revnet50", width=TINY, memory_saving=False).to(dtype).train()
    plain.load_state_dict(saving.state_dict())
    x = torch.randn(4, 3, 32, 32, dtype=dtype)
    weights = torch.randn(4, saving.out_dim, dtype=dtype)
    inputs = []
    for model in (saving, plain):
        inp = x.clone().requires_grad_()
        (model(inp) * weights).sum().backward()
        inputs.append(inp)
    assert torch.allclose(inputs[0].grad, inputs[1].grad, rtol=tol, atol=tol * inputs[1].grad.abs().max())
    for (name, p), q in zip(saving.named_parameters(), plain.parameters()):
        assert torch.allclose(p.grad, q.grad, rtol=tol, atol=tol * q.grad.abs().max()), name
    # Running statistics moved exactly once in both (recomputation must not update them again).
    for (name, a), b in zip(saving.named_buffers(), plain.buffers()):
        assert torch.allclose(a.double(), b.double(), rtol=tol, atol=tol), name


def test_revnet_memory_saving_stores_less_for_backward():
    from selfsup.backbones.profile import saved_activation_bytes

    x = torch.randn(2, 3, 32, 32)
    saving = saved_activation_bytes(build_backbone("revnet50", width=TINY, memory_saving=True), x)
    plain = saved_activation_bytes(build_backbone("revnet50", width=TINY, memory_saving=False), x)
    assert saving < plain / 3


def test_revnet_memory_saving_lowers_peak_step_memory():
    from selfsup.backbones.profile import revnet_memory

    saving, plain = revnet_memory(4, 32, width=TINY)
    assert 0 < saving < plain
