"""Linear probe: multinomial logistic regression on frozen features, fitted by L-BFGS.

Full-batch L-BFGS on cached features is the probe of Kornblith et al. 2019
(arXiv:1805.08974), SimCLR's transfer study and CLIP (arXiv:2103.00020): a
convex problem solved to convergence, so the score depends on the features and the
L2 weight only, not on an SGD schedule. The L2 weight is picked on a held-out
part of the *training* set; ``fit_linear_probe`` takes no test data at all, so
the test split cannot leak into the choice.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from selfsup.eval.features import ArrayLike, as_features, as_labels

DEFAULT_L2_GRID: tuple[float, ...] = (1.0, 1e-1, 1e-2, 1e-3, 1e-4, 1e-5, 1e-6)


@dataclass
class ProbeResult:
    """A fitted probe: standardisation, weights, and how its L2 weight was chosen."""

    weight: torch.Tensor  # (D, C)
    bias: torch.Tensor  # (C,)
    mean: torch.Tensor  # (D,) training-feature mean
    std: torch.Tensor  # (D,) training-feature std (1 where a feature is constant)
    l2: float  # chosen weight of 0.5 * l2 * ||W||^2 added to the mean cross-entropy
    val_accuracy: dict[float, float] = field(default_factory=dict)  # l2 -> held-out top-1 (%)
    n_iter: int = 0  # L-BFGS iterations of the final fit

    def logits(self, x: ArrayLike) -> torch.Tensor:
        """Class logits (N, C) of raw (unstandardised) features (N, D)."""
        x = as_features(x, "x").to(self.weight.device)
        if x.shape[1] != self.weight.shape[0]:
            raise ValueError(f"features have {x.shape[1]} dims but the probe was fitted on {self.weight.shape[0]}")
        return ((x - self.mean) / self.std) @ self.weight + self.bias

    def predict(self, x: ArrayLike) -> torch.Tensor:
        return self.logits(x).argmax(dim=1)


def standardization(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-dimension mean and std (D,) of ``x`` (N, D); constant dims get std 1."""
    mean = x.mean(dim=0)
    std = x.std(dim=0, unbiased=False)
    return mean, torch.where(std > 1e-8, std, torch.ones_like(std))


def fit_logistic_regression(
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    num_classes: int,
    l2: float,
    max_iter: int = 500,
    tol: float = 1e-6,
    init: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Minimise mean cross-entropy + 0.5 * l2 * ||W||^2 over (W, b) by L-BFGS.

    This is scikit-learn's objective with ``l2 = 1 / (C * n)``. The bias is not
    penalised. ``init`` warm-starts from another solution (a neighbouring l2
    converges in a fraction of the iterations). Returns (W (D, C), b (C,), iterations).
    """
    d = x.shape[1]
    if init is None:
        w = torch.zeros(d, num_classes, device=x.device)
        b = torch.zeros(num_classes, device=x.device)
    else:
        w, b = (t.detach().clone().to(x.device) for t in init)
    w.requires_grad_(True)
    b.requires_grad_(True)
    opt = torch.optim.LBFGS(
        [w, b], lr=1.0, max_iter=max_iter, history_size=20,
        tolerance_grad=tol, tolerance_change=1e-10, line_search_fn="strong_wolfe",
    )

    def closure() -> torch.Tensor:
        opt.zero_grad(set_to_none=False)
        loss = F.cross_entropy(x @ w + b, y) + 0.5 * l2 * (w * w).sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        opt.step(closure)
    n_iter = int(opt.state[w].get("n_iter", 0))
    return w.detach(), b.detach(), n_iter


def _top1(logits: torch.Tensor, y: torch.Tensor) -> float:
    return 100.0 * (logits.argmax(dim=1) == y).float().mean().item()


def fit_linear_probe(
    train_x: ArrayLike,
    train_y: ArrayLike,
    *,
    num_classes: int | None = None,
    val_fraction: float = 0.1,
    l2_grid: tuple[float, ...] = DEFAULT_L2_GRID,
    max_iter: int = 300,
    search_max_iter: int = 60,
    seed: int = 0,
) -> ProbeResult:
    """Fit a linear probe on training features only, choosing L2 on a held-out part of them.

    ``val_fraction`` of the training rows (a seeded random split) is held out;
    each l2 in ``l2_grid`` is fitted on the rest (strongest first, each fit
    warm-started from the previous) and scored on the held-out rows. The best
    l2 (ties go to the stronger one) is then refitted on all training rows,
    warm-started from its search solution. Features are standardised with
    training statistics. Held-out accuracy settles within ~60 L-BFGS
    iterations (docs/evaluation.md#the-linear-probe), so the search stops there
    and only the final fit runs longer.
    """
    x = as_features(train_x, "train_x")
    y = as_labels(train_y, x.shape[0], "train_y").to(x.device)
    if x.shape[0] < 2:
        raise ValueError(f"train_x has {x.shape[0]} rows; a probe needs at least 2")
    if not l2_grid or any(l2 < 0 for l2 in l2_grid):
        raise ValueError(f"l2_grid must be a non-empty tuple of non-negative weights, got {l2_grid}")
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
    n_classes = int(y.max()) + 1 if num_classes is None else num_classes
    if int(y.max()) >= n_classes:
        raise ValueError(f"train_y holds class {int(y.max())} but num_classes={n_classes}")

    val_accuracy: dict[float, float] = {}
    if len(l2_grid) == 1:
        best_l2, init = float(l2_grid[0]), None
    else:
        n_val = min(x.shape[0] - 1, max(1, round(val_fraction * x.shape[0])))
        perm = torch.randperm(x.shape[0], generator=torch.Generator().manual_seed(seed)).to(x.device)
        val_idx, fit_idx = perm[:n_val], perm[n_val:]
        mean, std = standardization(x[fit_idx])
        x_fit, x_val = (x[fit_idx] - mean) / std, (x[val_idx] - mean) / std
        solutions = {}
        init = None
        for l2 in sorted(l2_grid, reverse=True):
            w, b, _ = fit_logistic_regression(
                x_fit, y[fit_idx], num_classes=n_classes, l2=l2, max_iter=search_max_iter, init=init
            )
            init = solutions[float(l2)] = (w, b)
            val_accuracy[float(l2)] = _top1(x_val @ w + b, y[val_idx])
        best_l2 = max(val_accuracy, key=lambda l2: (val_accuracy[l2], l2))
        init = solutions[best_l2]
        del x_fit, x_val

    mean, std = standardization(x)
    w, b, n_iter = fit_logistic_regression(
        (x - mean) / std, y, num_classes=n_classes, l2=best_l2, max_iter=max_iter, init=init
    )
    return ProbeResult(w, b, mean, std, best_l2, val_accuracy, n_iter)


def evaluate(probe: ProbeResult, test_x: ArrayLike, test_y: ArrayLike) -> dict[str, float]:
    """Top-1 and top-5 accuracy in percent (top-5 becomes top-C when there are fewer classes)."""
    return topk_accuracy(probe.logits(test_x), test_y)


def topk_accuracy(logits: torch.Tensor, labels: ArrayLike) -> dict[str, float]:
    """Top-1 and top-5 accuracy in percent of class scores (N, C); top-5 becomes top-C when C < 5."""
    y = as_labels(labels, logits.shape[0], "test_y").to(logits.device)
    if len(y) and int(y.max()) >= logits.shape[1]:
        raise ValueError(f"test_y holds class {int(y.max())} but the probe has {logits.shape[1]} classes")
    top5 = logits.topk(min(5, logits.shape[1]), dim=1).indices  # (N, 5)
    return {
        "top1": 100.0 * (top5[:, 0] == y).float().mean().item(),
        "top5": 100.0 * (top5 == y[:, None]).any(dim=1).float().mean().item(),
    }
