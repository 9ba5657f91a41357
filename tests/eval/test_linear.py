"""The L-BFGS linear probe: sklearn's logistic regression on Fashion-MNIST, l2 chosen on held-out training data."""
from __future__ import annotations

import inspect

import pytest
import torch
import torch.nn.functional as F

from selfsup.eval import evaluate, fit_linear_probe
from selfsup.eval.linear import standardization

pytestmark = pytest.mark.usefixtures("one_thread")


def test_lbfgs_probe_matches_sklearn_logistic_regression_on_fashion_mnist(fmnist_pixels):
    from sklearn.linear_model import LogisticRegression
    from threadpoolctl import threadpool_limits

    x, y, xt, yt = fmnist_pixels
    l2 = 1e-2  # our objective: mean CE + l2/2 ||W||^2 == sklearn's with C = 1 / (l2 * n); both converge
    probe = fit_linear_probe(x, y, l2_grid=(l2,), max_iter=500)
    ours = evaluate(probe, xt, yt)["top1"]

    mean, std = standardization(x)
    with threadpool_limits(1):  # as for torch: two BLAS threads on a busy 2-core box are slower than one
        clf = LogisticRegression(C=1.0 / (l2 * len(x)), max_iter=500).fit(((x - mean) / std).numpy(), y.numpy())
    theirs = 100.0 * float((clf.predict(((xt - mean) / std).numpy()) == yt.numpy()).mean())
    assert ours > 80.0
    assert abs(ours - theirs) <= 0.5, (ours, theirs)

    z = (x - mean) / std
    def objective(w, b):
        return (F.cross_entropy(z @ w + b, y) + 0.5 * l2 * (w * w).sum()).item()
    sk_w, sk_b = torch.from_numpy(clf.coef_.T).float(), torch.from_numpy(clf.intercept_).float()
    assert objective(probe.weight, probe.bias) <= objective(sk_w, sk_b) + 1e-4


def test_probe_fitting_takes_no_test_data():
    params = set(inspect.signature(fit_linear_probe).parameters)
    assert {"train_x", "train_y"} <= params
    assert not any("test" in p or p in {"x_val", "val_x", "val_y"} for p in params)


def test_l2_is_chosen_by_held_out_training_accuracy(fmnist_pixels):
    x, y, _, _ = fmnist_pixels
    grid = (1e-1, 1e-3, 1e-5)
    probe = fit_linear_probe(x[:3000], y[:3000], l2_grid=grid, val_fraction=0.2, search_max_iter=50, max_iter=50)
    assert set(probe.val_accuracy) == set(grid)
    best = max(probe.val_accuracy.values())
    assert probe.l2 == max(l2 for l2, acc in probe.val_accuracy.items() if acc == best)


def test_probe_search_is_deterministic_given_seed(fmnist_pixels):
    x, y, _, _ = fmnist_pixels
    kw = dict(l2_grid=(1e-2, 1e-4), search_max_iter=30, max_iter=30, seed=3)
    a = fit_linear_probe(x[:2000], y[:2000], **kw)
    b = fit_linear_probe(x[:2000], y[:2000], **kw)
    assert a.val_accuracy == b.val_accuracy
    assert torch.equal(a.weight, b.weight)


def test_probe_top5_is_at_least_top1_and_caps_at_class_count():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(300, 8, generator=g)
    y = (x[:, 0] > 0).long()  # 2 classes, linearly separable
    probe = fit_linear_probe(x, y, l2_grid=(1e-3,))
    acc = evaluate(probe, x, y)
    assert acc["top1"] > 97.0
    assert acc["top5"] == 100.0  # top-5 of 2 classes is top-2


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(val_fraction=1.0), "val_fraction"),
        (dict(l2_grid=()), "l2_grid"),
        (dict(num_classes=1), "num_classes"),
    ],
)
def test_probe_rejects_bad_options_by_name(kwargs, match):
    x, y = torch.randn(20, 3), torch.arange(20) % 2
    with pytest.raises(ValueError, match=match):
        fit_linear_probe(x, y, **kwargs)


def test_evaluate_rejects_features_of_the_wrong_width():
    probe = fit_linear_probe(torch.randn(20, 3), torch.arange(20) % 2, l2_grid=(1e-2,))
    with pytest.raises(ValueError, match="3"):
        evaluate(probe, torch.randn(5, 4), torch.zeros(5, dtype=torch.long))


# ---------------------------------------------------------------- kNN


# ---------------------------------------------------------------- clustering


# ---------------------------------------------------------------- monitors


# ---------------------------------------------------------------- feature extraction
