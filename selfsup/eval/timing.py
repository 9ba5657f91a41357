"""Timing of the evaluation protocols at the size of a Fashion-MNIST / CIFAR-10 run.

``selfsup eval-timing`` (or ``python -m selfsup.eval.timing``) times the L-BFGS
probe, kNN and k-means on a 60k x 512 Gaussian mixture, then the L-BFGS probe
against scikit-learn's LogisticRegression on raw Fashion-MNIST pixels (the
scikit-learn fit takes minutes on 2 cores; ``--skip-fmnist`` leaves it out).
"""
from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
import torch

from selfsup.data import load_dataset
from selfsup.eval.clustering import cluster_scores
from selfsup.eval.knn import knn_accuracy
from selfsup.eval.linear import evaluate, fit_linear_probe, standardization


def gaussian_mixture(
    n_train: int, n_test: int, dim: int, classes: int, *, latent: int = 32, separation: float = 0.6,
    noise: float = 0.5, seed: int = 0,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Features shaped like a trained encoder's: (x_train, y_train, x_test, y_test).

    Classes are Gaussians in a ``latent``-dim subspace, linearly embedded in
    ``dim`` dims plus isotropic noise, so the probe, kNN and k-means all have
    signal to find (about 90% / 87% / NMI 0.7 with the defaults).
    """
    g = torch.Generator().manual_seed(seed)
    means = separation * torch.randn(classes, latent, generator=g)  # (C, L)
    embed = torch.randn(latent, dim, generator=g) / latent**0.5  # (L, D)

    def sample(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        y = torch.randint(classes, (n,), generator=g)
        z = means[y] + torch.randn(n, latent, generator=g)  # (n, L)
        return z @ embed + noise * torch.randn(n, dim, generator=g), y

    return (*sample(n_train), *sample(n_test))


def _timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def bench_synthetic(args: argparse.Namespace) -> list[tuple[str, float, str]]:
    xtr, ytr, xte, yte = gaussian_mixture(args.n_train, args.n_test, args.dim, args.classes)
    rows = []
    probe, t = _timed(lambda: fit_linear_probe(xtr, ytr))
    acc = evaluate(probe, xte, yte)
    search = ", ".join(f"{l2:g}:{a:.1f}" for l2, a in sorted(probe.val_accuracy.items()))
    rows.append(
        (
            f"L-BFGS probe ({len(probe.val_accuracy)}-value l2 search + refit)",
            t,
            f"top1 {acc['top1']:.2f}%, l2={probe.l2:g} [{search}]",
        )
    )
    for precision in ("fp32", "bf16"):
        acc1, t = _timed(lambda: knn_accuracy(xtr, ytr, xte, yte, k=args.k, precision=precision))
        rows.append((f"kNN k={args.k} {precision} ({args.n_test} x {args.n_train})", t, f"top1 {acc1:.2f}%"))
    scores, t = _timed(lambda: cluster_scores(xtr, ytr, args.classes, n_iter=args.kmeans_iter))
    rows.append((f"k-means k={args.classes} ({args.kmeans_iter} iter max) + scores", t,
                 f"NMI {scores['nmi']:.3f}, ARI {scores['ari']:.3f}, purity {scores['purity']:.3f}"))
    return rows


def bench_fmnist(args: argparse.Namespace) -> list[tuple[str, float, str]]:
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from threadpoolctl import threadpool_limits

    splits = [load_dataset("fashion_mnist", root=args.fmnist_dir, split=s) for s in ("train", "test")]
    (xtr, ytr), (xte, yte) = ((torch.from_numpy(np.asarray(ds.images).reshape(len(ds), -1).astype(np.float32)),
                               torch.from_numpy(np.asarray(ds.labels, dtype=np.int64))) for ds in splits)
    n = len(xtr)
    rows = []
    probe, t = _timed(lambda: fit_linear_probe(xtr, ytr, l2_grid=(args.l2,), max_iter=args.max_iter))
    rows.append((f"L-BFGS torch, l2={args.l2:g} fixed ({probe.n_iter} iter)", t,
                 f"top1 {evaluate(probe, xte, yte)['top1']:.2f}%"))
    probe, t = _timed(lambda: fit_linear_probe(xtr, ytr, max_iter=args.max_iter))
    rows.append((f"L-BFGS torch, l2 search -> {probe.l2:g}", t, f"top1 {evaluate(probe, xte, yte)['top1']:.2f}%"))

    mean, std = standardization(xtr)
    ztr, zte = ((xtr - mean) / std).numpy(), ((xte - mean) / std).numpy()
    clf = LogisticRegression(C=1.0 / (args.l2 * n), max_iter=args.max_iter)
    with warnings.catch_warnings(record=True) as caught, threadpool_limits(args.threads):
        warnings.simplefilter("always", ConvergenceWarning)
        _, t = _timed(lambda: clf.fit(ztr, ytr.numpy()))
    note = " (not converged)" if any(issubclass(w.category, ConvergenceWarning) for w in caught) else ""
    acc = 100.0 * float((clf.predict(zte) == yte.numpy()).mean())
    rows.append((f"sklearn lbfgs, same objective ({int(clf.n_iter_[0])} iter){note}", t, f"top1 {acc:.2f}%"))
    return rows


def _print_table(title: str, rows: list[tuple[str, float, str]]) -> None:
    width = max(len(r[0]) for r in rows)
    print(f"\n{title}")
    print(f"{'protocol':<{width}}  {'seconds':>8}  result")
    for name, seconds, result in rows:
        print(f"{name:<{width}}  {seconds:>8.2f}  {result}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="selfsup eval-timing", description=__doc__.splitlines()[0])
    parser.add_argument("--n-train", type=int, default=60_000)
    parser.add_argument("--n-test", type=int, default=10_000)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--k", type=int, default=200, help="kNN neighbours")
    parser.add_argument("--kmeans-iter", type=int, default=50)
    parser.add_argument("--l2", type=float, default=1e-4, help="fixed L2 weight for the sklearn comparison")
    parser.add_argument("--max-iter", type=int, default=500, help="L-BFGS iterations, both libraries")
    parser.add_argument("--fmnist-dir", default=None, help="Fashion-MNIST's folder (default: the Debian package's)")
    parser.add_argument("--skip-fmnist", action="store_true")
    parser.add_argument("--threads", type=int, default=None, help="threads for torch and sklearn's BLAS")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    _print_table(f"Gaussian mixture: {args.n_train} train / {args.n_test} test x {args.dim} dims, "
                 f"{args.classes} classes", bench_synthetic(args))
    if not args.skip_fmnist:
        _print_table("Fashion-MNIST raw pixels (60000 x 784, standardised), test on 10000", bench_fmnist(args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
