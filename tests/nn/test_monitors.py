"""The collapse monitors: embedding std and RankMe on collapsed, Gaussian and low-rank embeddings."""
import pytest
import torch

from selfsup.nn import embedding_std, rankme

pytestmark = pytest.mark.usefixtures("one_thread")


def test_collapsed_embeddings_have_zero_std_and_rank_one():
    z = torch.ones(256, 64) * torch.randn(1, 64)
    assert embedding_std(z) < 1e-6
    assert rankme(z) == pytest.approx(1.0, abs=0.01)


def test_gaussian_embeddings_have_std_near_inverse_sqrt_dim_and_full_rank():
    z = torch.randn(4096, 64, generator=torch.Generator().manual_seed(0))
    assert embedding_std(z) == pytest.approx(64**-0.5, rel=0.05)
    assert rankme(z) > 0.95 * 64


def test_rankme_of_a_rank_eight_embedding_is_at_most_eight():
    g = torch.Generator().manual_seed(0)
    z = torch.randn(512, 8, generator=g) @ torch.randn(8, 128, generator=g)
    assert 4.0 < rankme(z) <= 8.0 + 1e-3
