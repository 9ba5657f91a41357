"""Shuffling BN: grouped and shuffled forwards give rows back in input order, each group normalised on its own."""
import pytest
import torch
from torch import nn

from selfsup.nn import grouped_forward, shuffled_forward


def test_shuffled_and_grouped_forward_return_rows_in_input_order():
    x = torch.randn(8, 5)
    per_sample = nn.Linear(5, 3)
    with torch.no_grad():
        assert torch.allclose(shuffled_forward(per_sample, x, groups=4), per_sample(x), atol=1e-6)
        assert torch.allclose(grouped_forward(per_sample, x, groups=2), per_sample(x), atol=1e-6)


def test_shuffled_bn_normalises_each_group_on_its_own():
    bn = nn.BatchNorm1d(1, affine=False)
    x = torch.tensor([[0.0], [0.0], [0.0], [0.0], [10.0], [10.0], [10.0], [12.0]])
    whole = bn(x)
    grouped = grouped_forward(bn, x, groups=2)  # first group is constant: normalises to 0
    assert torch.allclose(grouped[:4], torch.zeros(4, 1)) and not torch.allclose(grouped, whole)
    with pytest.raises(ValueError, match="shuffle_bn_groups=3"):
        grouped_forward(bn, x, groups=3)
