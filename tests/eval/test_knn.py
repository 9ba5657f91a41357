"""Weighted kNN (Wu et al.) against a brute-force reference on Fashion-MNIST; k clamped, chunks, bf16."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from selfsup.eval import knn_accuracy, knn_classify, knn_scores

pytestmark = pytest.mark.usefixtures("one_thread")


def _knn_reference(train, labels, test, k, temperature, num_classes):
    """Wu et al.'s weighted kNN, one test point at a time, in float64 numpy."""
    train = train / np.linalg.norm(train, axis=1, keepdims=True)
    test = test / np.linalg.norm(test, axis=1, keepdims=True)
    preds, scores = [], []
    for t in test:
        sims = train @ t
        nearest = np.argsort(-sims, kind="stable")[:k]
        s = np.bincount(labels[nearest], weights=np.exp(sims[nearest] / temperature), minlength=num_classes)
        scores.append(s)
        preds.append(int(np.argmax(s)))
    return np.array(preds), np.array(scores)


def test_knn_matches_brute_force_reference_on_fashion_mnist(fmnist_pixels):
    x, y, xt, _ = fmnist_pixels
    train, labels, test = x[:3000], y[:3000], xt[:300]
    ref_preds, ref_scores = _knn_reference(
        train.double().numpy(), labels.numpy(), test.double().numpy(), k=20, temperature=0.07, num_classes=10
    )
    scores = knn_scores(train, labels, test, k=20, temperature=0.07, num_classes=10)
    assert np.array_equal(scores.argmax(1).numpy(), ref_preds)
    np.testing.assert_allclose(scores.double().numpy(), ref_scores, rtol=1e-3)


def test_knn_clamps_k_to_the_training_set_size():
    g = torch.Generator().manual_seed(0)
    train, test = torch.randn(5, 4, generator=g), torch.randn(7, 4, generator=g)
    labels = torch.tensor([0, 1, 1, 2, 2])
    big = knn_scores(train, labels, test, k=200)
    exact = knn_scores(train, labels, test, k=5)
    assert torch.equal(big, exact)
    assert knn_classify(train, labels, test, k=200).shape == (7,)


def test_knn_chunked_equals_unchunked(fmnist_pixels):
    x, y, xt, _ = fmnist_pixels
    one = knn_scores(x[:2000], y[:2000], xt[:100], k=50, chunk_size=100)
    many = knn_scores(x[:2000], y[:2000], xt[:100], k=50, chunk_size=7)
    torch.testing.assert_close(many, one, rtol=1e-5, atol=0)
    assert torch.equal(many.argmax(1), one.argmax(1))


def test_knn_accuracy_is_a_percentage_and_bf16_agrees_with_fp32(fmnist_pixels):
    x, y, xt, yt = fmnist_pixels
    fp32 = knn_accuracy(x[:5000], y[:5000], xt[:500], yt[:500], k=20)
    bf16 = knn_accuracy(x[:5000], y[:5000], xt[:500], yt[:500], k=20, precision="bf16")
    assert 70.0 < fp32 < 100.0  # raw-pixel kNN on Fashion-MNIST is in the 80s
    assert abs(fp32 - bf16) <= 1.0


def test_knn_rejects_mismatched_dims_and_labels():
    with pytest.raises(ValueError, match="dims"):
        knn_classify(torch.randn(5, 4), torch.zeros(5, dtype=torch.long), torch.randn(3, 6))
    with pytest.raises(ValueError, match="train_labels"):
        knn_classify(torch.randn(5, 4), torch.zeros(4, dtype=torch.long), torch.randn(3, 4))
