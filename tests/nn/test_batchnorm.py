"""Batch norm whose running statistics stay put (multi-crop's small-crop passes)."""
import torch

from selfsup.nn import running_stats_frozen


def test_small_crop_passes_leave_batchnorm_running_stats_alone():
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4)).train()
    x = torch.randn(6, 3, 8, 8) * 3 + 1
    with running_stats_frozen(net):
        y = net(x)
    assert torch.equal(net[1].running_mean, torch.zeros(4)) and torch.equal(net[1].running_var, torch.ones(4))
    assert net[1].momentum == 0.1  # restored
    torch.testing.assert_close(y, net(x))  # still normalised with the batch's statistics
    assert not torch.equal(net[1].running_mean, torch.zeros(4))  # outside the block they update again
