"""SwAV's swapped prediction against a hand computation."""
import math

import pytest
import torch

from selfsup.losses import swapped_prediction

pytestmark = pytest.mark.usefixtures("one_thread")


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
