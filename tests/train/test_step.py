"""The training step's EMA update against its formula."""
import torch
from torch import nn

from selfsup.train.step import ema_update


def _net() -> nn.Module:
    return nn.Sequential(nn.Linear(5, 4), nn.BatchNorm1d(4), nn.Linear(4, 3, bias=False))


def test_ema_update_lerps_parameters_and_copies_buffers():
    torch.manual_seed(0)
    online, target = _net(), _net()
    online.train()(torch.randn(16, 5))  # moves the BN running statistics away from the target's
    before = [p.detach().clone() for p in target.parameters()]
    ema_update([(online, target), (nn.ReLU(), nn.ReLU())], momentum=0.9)  # a module with no tensors is fine
    for b, p_t, p_o in zip(before, target.parameters(), online.parameters()):
        torch.testing.assert_close(p_t, 0.9 * b + 0.1 * p_o)
    for b_t, b_o in zip(target.buffers(), online.buffers()):
        assert torch.equal(b_t, b_o)
