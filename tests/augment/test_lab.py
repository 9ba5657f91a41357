"""Lab conversion, ab quantization, soft encoding, rebalancing weights and decoding for colorization."""
import math

import pytest
import torch
from kornia.color import rgb_to_lab

from selfsup.augment.lab import (
    ab_gamut_bins,
    decode_ab,
    lab_to_uint8,
    lightness_input,
    nearest_bins,
    rebalancing_weights,
    soft_encode,
    split_lab,
)

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def centers():
    return ab_gamut_bins(10.0)


def test_lab_round_trip_recovers_uint8_images():
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (4, 3, 8, 8), generator=g, dtype=torch.uint8)
    lightness, ab = split_lab(images.float() / 255)
    assert lightness.shape == (4, 1, 8, 8) and ab.shape == (4, 2, 8, 8)
    assert (lab_to_uint8(lightness, ab).int() - images.int()).abs().max() <= 1


def test_lightness_input_reads_grey_as_equal_rgb_and_spans_minus_one_to_one():
    grey = torch.tensor([0, 128, 255], dtype=torch.uint8).view(1, 1, 1, 3)
    out = lightness_input(grey)
    ref = rgb_to_lab(grey.float().expand(-1, 3, -1, -1) / 255)[:, :1] / 50 - 1
    assert out.shape == (1, 1, 1, 3)
    torch.testing.assert_close(out, ref)
    assert out[0, 0, 0, 0].item() == pytest.approx(-1, abs=1e-4) and out[0, 0, 0, 2].item() == pytest.approx(
        1, abs=1e-3
    )


def test_gamut_bins_are_a_grid_of_side_10_that_holds_every_srgb_colour(centers):
    assert 240 <= len(centers) <= 320  # Zhang et al. keep 313 with their own gamut computation
    assert torch.equal(centers, torch.round(centers / 10) * 10)
    assert (centers == 0).all(dim=1).any()  # the grey bin
    rgb = torch.rand(1, 3, 50, 50, generator=torch.Generator().manual_seed(1))
    ab = rgb_to_lab(rgb)[:, 1:]  # (1, 2, 50, 50)
    cell = torch.round(ab / 10) * 10
    nearest = centers[nearest_bins(ab, centers)].permute(0, 3, 1, 2)  # (1, 2, 50, 50)
    assert torch.equal(nearest, cell)  # each colour's own grid cell is among the bins


def test_soft_encoding_weights_the_nearest_bins_by_a_gaussian(centers):
    ab = torch.tensor([3.0, -4.0]).view(1, 2, 1, 1)
    target = soft_encode(ab, centers, neighbours=5, sigma=5.0)[0, :, 0, 0]  # (Q,)
    assert target.sum().item() == pytest.approx(1.0)
    assert (target > 0).sum().item() == 5
    d2 = ((centers - torch.tensor([3.0, -4.0])) ** 2).sum(1)
    near = d2.argsort()[:5]
    expected = torch.exp(-d2[near] / 50.0)
    torch.testing.assert_close(target[near], expected / expected.sum())
    one_hot = soft_encode(ab, centers, neighbours=1)[0, :, 0, 0]
    assert one_hot[d2.argmin()].item() == 1.0 and one_hot.sum().item() == 1.0
    with pytest.raises(ValueError, match="neighbours"):
        soft_encode(ab, centers, neighbours=0)


def test_rebalancing_weights_on_a_tiny_histogram_by_hand():
    centers = torch.tensor([[0.0, 0.0], [10.0, 0.0]])
    counts = torch.tensor([3.0, 1.0])
    # No smoothing: p = (3/4, 1/4); mixed = p/2 + 1/4 = (5/8, 3/8); w = (8/5, 8/3); E_p[w] = 28/15.
    torch.testing.assert_close(rebalancing_weights(counts, centers, sigma=0.0, lam=0.5), torch.tensor([6 / 7, 10 / 7]))
    # Gaussian smoothing over centres 10 apart with sigma 5: kernel weight e^-2 between the two bins.
    k = math.exp(-2)
    p = torch.tensor([0.75 + 0.25 * k, 0.25 + 0.75 * k], dtype=torch.float64) / (1 + k)
    w = 1 / (0.5 * p + 0.25)
    torch.testing.assert_close(rebalancing_weights(counts, centers, sigma=5.0, lam=0.5), (w / (p * w).sum()).float())
    # lambda = 1 is no rebalancing; lambda = 0 is the inverse frequency, normalised.
    torch.testing.assert_close(rebalancing_weights(counts, centers, sigma=0.0, lam=1.0), torch.ones(2))
    torch.testing.assert_close(rebalancing_weights(counts, centers, sigma=0.0, lam=0.0), torch.tensor([2 / 3, 2.0]))
    with pytest.raises(ValueError, match="lam"):
        rebalancing_weights(counts, centers, lam=1.5)


def test_annealed_mean_moves_from_the_expectation_to_the_mode():
    centers = torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 20.0]])
    logits = torch.log(torch.tensor([0.5, 0.3, 0.2])).view(1, 3, 1, 1)
    torch.testing.assert_close(decode_ab(logits, centers, temperature=1.0)[0, :, 0, 0], torch.tensor([3.0, 4.0]))
    torch.testing.assert_close(
        decode_ab(logits, centers, temperature=0.01)[0, :, 0, 0], torch.zeros(2), atol=1e-3, rtol=0
    )
