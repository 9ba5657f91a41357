import math

import torch
import torch.nn.functional as F

from selfsup.losses import nt_xent


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
