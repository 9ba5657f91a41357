"""Evaluation protocols: each pinned against a reference (sklearn, brute force) or a known answer."""
from __future__ import annotations

import gzip
import inspect
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from selfsup.backbones.base import Backbone
from selfsup.eval import (
    FeatureCache,
    cluster_scores,
    embedding_std,
    evaluate,
    extract_features,
    fit_linear_probe,
    kmeans,
    knn_accuracy,
    knn_classify,
    knn_scores,
    partition_scores,
    pooled_size,
    rankme,
)
from selfsup.eval.linear import standardization

FMNIST = Path("/usr/share/datasets/fashion-mnist")
N_TRAIN, N_TEST = 10_000, 2_000  # subset: the first 10k training and first 2k test images


pytestmark = pytest.mark.usefixtures("one_thread")


def _read_idx_gz(path: Path) -> np.ndarray:
    with gzip.open(path, "rb") as f:
        _, _, ndim = struct.unpack(">HBB", f.read(4))
        shape = struct.unpack(f">{ndim}I", f.read(4 * ndim))
        return np.frombuffer(f.read(), dtype=np.uint8).reshape(shape)


@pytest.fixture(scope="module")
def fmnist() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Raw Fashion-MNIST pixels as float features: (x_train, y_train, x_test, y_test)."""
    if not FMNIST.exists():
        pytest.skip(f"Fashion-MNIST not found at {FMNIST}")
    x = _read_idx_gz(FMNIST / "train-images-idx3-ubyte.gz")[:N_TRAIN].reshape(N_TRAIN, -1)
    y = _read_idx_gz(FMNIST / "train-labels-idx1-ubyte.gz")[:N_TRAIN]
    xt = _read_idx_gz(FMNIST / "t10k-images-idx3-ubyte.gz")[:N_TEST].reshape(N_TEST, -1)
    yt = _read_idx_gz(FMNIST / "t10k-labels-idx1-ubyte.gz")[:N_TEST]
    as_x = lambda a: torch.from_numpy(a.astype(np.float32))  # noqa: E731
    as_y = lambda a: torch.from_numpy(a.astype(np.int64))  # noqa: E731
    return as_x(x), as_y(y), as_x(xt), as_y(yt)


# ---------------------------------------------------------------- linear probe


def test_lbfgs_probe_matches_sklearn_logistic_regression_on_fashion_mnist(fmnist):
    from sklearn.linear_model import LogisticRegression
    from threadpoolctl import threadpool_limits

    x, y, xt, yt = fmnist
    l2 = 1e-2  # our objective: mean CE + l2/2 ||W||^2 == sklearn's with C = 1 / (l2 * n); both converge
    probe = fit_linear_probe(x, y, l2_grid=(l2,), max_iter=500)
    ours = evaluate(probe, xt, yt)["top1"]

    mean, std = standardization(x)
    with threadpool_limits(1):  # as for torch: two BLAS threads on a busy 2-core box are 5x slower
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


def test_l2_is_chosen_by_held_out_training_accuracy(fmnist):
    x, y, _, _ = fmnist
    grid = (1e-1, 1e-3, 1e-5)
    probe = fit_linear_probe(x[:3000], y[:3000], l2_grid=grid, val_fraction=0.2, search_max_iter=50, max_iter=50)
    assert set(probe.val_accuracy) == set(grid)
    best = max(probe.val_accuracy.values())
    assert probe.l2 == max(l2 for l2, acc in probe.val_accuracy.items() if acc == best)


def test_probe_search_is_deterministic_given_seed(fmnist):
    x, y, _, _ = fmnist
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


def test_knn_matches_brute_force_reference_on_fashion_mnist(fmnist):
    x, y, xt, _ = fmnist
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


def test_knn_chunked_equals_unchunked(fmnist):
    x, y, xt, _ = fmnist
    one = knn_scores(x[:2000], y[:2000], xt[:100], k=50, chunk_size=100)
    many = knn_scores(x[:2000], y[:2000], xt[:100], k=50, chunk_size=7)
    torch.testing.assert_close(many, one, rtol=1e-5, atol=0)
    assert torch.equal(many.argmax(1), one.argmax(1))


def test_knn_accuracy_is_a_percentage_and_bf16_agrees_with_fp32(fmnist):
    x, y, xt, yt = fmnist
    fp32 = knn_accuracy(x[:5000], y[:5000], xt[:500], yt[:500], k=20)
    bf16 = knn_accuracy(x[:5000], y[:5000], xt[:500], yt[:500], k=20, precision="bf16")
    assert 70.0 < fp32 < 100.0  # raw-pixel kNN on Fashion-MNIST is in the 80s
    assert abs(fp32 - bf16) <= 1.0


def test_knn_rejects_mismatched_dims_and_labels():
    with pytest.raises(ValueError, match="dims"):
        knn_classify(torch.randn(5, 4), torch.zeros(5, dtype=torch.long), torch.randn(3, 6))
    with pytest.raises(ValueError, match="train_labels"):
        knn_classify(torch.randn(5, 4), torch.zeros(4, dtype=torch.long), torch.randn(3, 4))


# ---------------------------------------------------------------- clustering


def _blobs(n_per: int = 200, centers: int = 4, dim: int = 16, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    mu = 10.0 * torch.randn(centers, dim, generator=g)
    y = torch.arange(centers).repeat_interleave(n_per)
    return mu[y] + torch.randn(len(y), dim, generator=g), y


def test_kmeans_recovers_well_separated_blobs():
    x, y = _blobs()
    scores = cluster_scores(x, y, 4, seed=1)
    assert scores["nmi"] > 0.95
    assert scores["purity"] > 0.95


def test_kmeans_with_more_clusters_than_distinct_points_keeps_valid_assignments():
    x = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]]).repeat(10, 1)  # 30 rows, 3 distinct
    result = kmeans(x, 5, seed=0)
    assert result.assignments.shape == (30,)
    assert int(result.assignments.max()) < 5
    assert result.inertia == pytest.approx(0.0, abs=1e-6)
    assert len(result.assignments.unique()) == 3


def test_kmeans_reseeds_an_empty_cluster():
    x, _ = _blobs(centers=3)
    init = torch.cat([x[[0, 200, 400]], torch.full((1, x.shape[1]), 1e4)])  # 4th centroid far from all data
    result = kmeans(x, 4, init=init)
    assert len(result.assignments.unique()) == 4
    assert result.centroids.abs().max() < 1e3


def test_partition_scores_are_perfect_for_relabelled_classes():
    y = torch.arange(5).repeat(20)
    scores = partition_scores((y + 2) % 5, y)
    assert scores == pytest.approx({"nmi": 1.0, "ari": 1.0, "purity": 1.0})


def test_kmeans_rejects_k_larger_than_the_number_of_rows():
    with pytest.raises(ValueError, match="k must be"):
        kmeans(torch.randn(3, 2), 4)


# ---------------------------------------------------------------- monitors


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


# ---------------------------------------------------------------- feature extraction


class TinyNet(Backbone):
    feature_names = ("conv1", "conv2", "pre_logits")
    out_dim = 16

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.conv2 = nn.Conv2d(8, 16, 3, stride=2, padding=1)

    def features(self, x, names=None):
        names = names or self.feature_names
        out = {"conv1": F.relu(self.conv1(x))}  # (B, 8, 16, 16)
        out["conv2"] = F.relu(self.conv2(out["conv1"]))  # (B, 16, 8, 8)
        out["pre_logits"] = out["conv2"].mean((2, 3))  # (B, 16)
        return {n: out[n] for n in names}


def _to_input(batch: torch.Tensor) -> torch.Tensor:
    return batch.float() / 127.5 - 1.0


def _images(n: int = 37) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (n, 16, 16, 3), dtype=np.uint8)


def test_extract_features_returns_each_layer_for_every_image():
    torch.manual_seed(0)
    net = TinyNet()
    feats = extract_features(net, _images(), _to_input, layers=("conv2", "pre_logits"), batch_size=10, precision="fp32")
    assert feats["conv2"].shape == (37, 16, 8, 8)
    assert feats["pre_logits"].shape == (37, 16)
    assert feats["pre_logits"].dtype == torch.float32
    with torch.no_grad():
        direct = net(_to_input(torch.from_numpy(_images()).permute(0, 3, 1, 2)))
    torch.testing.assert_close(feats["pre_logits"], direct, rtol=1e-4, atol=1e-5)
    assert net.training  # mode restored


def test_extract_features_pools_spatial_layers_to_about_pool_to_dims():
    feats = extract_features(TinyNet(), _images(), _to_input, layers=("conv1", "conv2"), pool_to=128)
    assert feats["conv1"].shape == (37, 8 * 4 * 4)  # 8 x 16 x 16 -> 8 x 4 x 4 = 128
    assert feats["conv2"].shape == (37, 16 * 3 * 3)  # 16 x 8 x 8 -> 16 x 3 x 3 = 144 (closest)
    assert pooled_size(96, 55, 55, 9216) == (10, 10)  # AlexNet conv1 in the per-layer benchmark


def test_extract_features_bf16_is_close_to_fp32_and_reads_memmaps(tmp_path):
    torch.manual_seed(0)
    net = TinyNet()
    mm = np.lib.format.open_memmap(tmp_path / "images.npy", mode="w+", dtype=np.uint8, shape=(37, 16, 16, 3))
    mm[:] = _images()
    fp32 = extract_features(net, mm, _to_input, precision="fp32")["pre_logits"]
    bf16 = extract_features(net, mm, _to_input, precision="bf16")["pre_logits"]
    assert (bf16 - fp32).norm() / fp32.norm() < 2e-2


def test_extract_features_names_a_missing_layer_and_bad_images():
    with pytest.raises(KeyError, match="fc7"):
        extract_features(TinyNet(), _images(), _to_input, layers=("fc7",))
    with pytest.raises(ValueError, match="uint8"):
        extract_features(TinyNet(), _images().astype(np.float32), _to_input)


def test_feature_cache_round_trips_and_extracts_only_missing_layers(tmp_path):
    cache = FeatureCache(tmp_path)
    assert cache.get("run1", "conv1", "train", 9216) is None
    feats = torch.randn(4, 3)
    cache.put("run1", "conv1", "train", 9216, feats)
    assert torch.equal(cache.get("run1", "conv1", "train", 9216), feats)
    assert cache.get("run1", "conv1", "train", None) is None  # pooling is part of the key

    asked = []

    def extract(layers):
        asked.append(layers)
        return {name: torch.zeros(4, 2) for name in layers}

    out = cache.get_or_extract("run1", "train", ("conv1", "conv2"), 9216, extract)
    assert asked == [("conv2",)]
    assert torch.equal(out["conv1"], feats)
    assert cache.get_or_extract("run1", "train", ("conv1", "conv2"), 9216, extract)["conv2"].shape == (4, 2)
    assert asked == [("conv2",)]  # second call served from disk
    assert not list(tmp_path.rglob("*.tmp"))


def test_feature_cache_rejects_keys_that_are_not_plain_names(tmp_path):
    with pytest.raises(ValueError, match="split"):
        FeatureCache(tmp_path).path("run1", "conv1", "../test")
