"""DeepCluster: PCA whitening, per-epoch clustering with balanced weights, the loop's epoch-start hook and resume."""
import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from selfsup.augment import ViewAugment
from selfsup.data import BatchLoader
from selfsup.data.dataset import from_arrays
from selfsup.methods.deepcluster import DeepCluster, cluster_balanced_weights, pca_whiten
from selfsup.train import checkpoint
from selfsup.train.build import load_checked_config
from selfsup.train.loop import train
from selfsup.train.step import TrainStep
from tests.methods.tiny import tiny_method

pytestmark = pytest.mark.usefixtures("one_thread")


def toy_dataset(n=64, size=16):
    g = np.random.default_rng(0)
    return from_arrays(g.integers(0, 256, (n, size, size), dtype=np.uint8))


def tiny_deepcluster(n=64, k=5, size=16):
    return tiny_method("deepcluster", augment=ViewAugment(size=size), num_samples=n, num_clusters=k, pca_dim=8)


def test_pca_whitening_gives_uncorrelated_unit_variance_components():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(500, 6, generator=g) @ torch.randn(6, 6, generator=g) + 3.0
    y = pca_whiten(x, 4).double()
    cov = torch.cov(y.T)
    assert y.shape == (500, 4)
    assert torch.allclose(cov, torch.eye(4, dtype=torch.float64), atol=1e-3)


def test_balanced_weights_give_every_nonempty_cluster_the_same_mass():
    assign = torch.tensor([0, 0, 0, 0, 1, 3, 3])  # cluster 2 empty
    w = cluster_balanced_weights(assign, 4)
    mass = np.bincount(assign.numpy(), weights=w, minlength=4)
    assert np.allclose(mass, [1 / 3, 1 / 3, 0, 1 / 3])


def test_epoch_start_clusters_every_image_resets_the_classifier_and_returns_weights():
    m = tiny_deepcluster()
    ds = toy_dataset()
    with pytest.raises(RuntimeError, match="no pseudo-labels"):
        m.training_step(next(iter(BatchLoader(ds, 8))), 0)
    with torch.no_grad():
        m.classifier.weight.fill_(1.0)
    m.train()
    weights = m.on_epoch_start(0, ds, torch.device("cpu"))
    labels = m.pseudo_labels.clone()
    assert labels.shape == (64,) and labels.min() >= 0 and labels.max() < 5
    assert len(labels.unique()) == 5  # k-means re-seeds empty clusters: all k in use
    assert m.training  # mode restored
    assert m.classifier.weight.std() < 0.05 and not m.classifier.bias.any()  # re-initialised
    mass = np.bincount(labels.numpy(), weights=weights, minlength=5)
    assert np.allclose(mass / mass.sum(), 0.2)
    out = m.training_step(next(iter(BatchLoader(ds, 8))), 0)
    assert torch.isfinite(out.loss)
    assert "pseudo_labels" in m.state_dict()


def test_pseudo_labels_are_recomputed_from_the_current_weights():
    m = tiny_deepcluster()
    ds = toy_dataset()
    m.on_epoch_start(0, ds, torch.device("cpu"))
    first = m.pseudo_labels.clone()
    with torch.no_grad():  # a different network gives different features, hence other clusters
        for p in m.backbone.parameters():
            p.add_(torch.randn_like(p) * 0.5)
    m.on_epoch_start(1, ds, torch.device("cpu"))
    assert not torch.equal(first, m.pseudo_labels)
    assert 0.0 <= m.cluster_nmi.item() <= 1.0


def test_too_many_clusters_is_a_clear_error():
    with pytest.raises(ValueError, match="num_clusters"):
        tiny_deepcluster(n=4, k=5)


TINY = ["data.subset=128", "backbone.width=0.125", "train.batch_size=32", "train.precision=fp32",
        "train.progress=false", "train.log_every=1", "train.warmup_steps=0", "method.num_clusters=8",
        "method.pca_dim=16", "method.kmeans_iter=5"]


def test_loop_clusters_at_each_epoch_start_and_resume_mid_epoch_restores_labels(tmp_path, monkeypatch):
    calls = []
    real_hook = DeepCluster.on_epoch_start

    def counted(self, epoch, dataset, device):
        calls.append(epoch)
        return real_hook(self, epoch, dataset, device)

    monkeypatch.setattr(DeepCluster, "on_epoch_start", counted)
    cfg = lambda name: load_checked_config("deepcluster", [f"out_dir={tmp_path}", f"name={name}", *TINY,  # noqa: E731
                                                   "train.steps=10", "train.ckpt_every=6"])
    ref = train(cfg("ref"))  # 4 batches per epoch: clusterings before steps 0, 4 and 8
    assert calls == [0, 1, 2]
    ref_state = checkpoint.load(ref / "last.pt")

    calls.clear()
    real_step = TrainStep.__call__

    def killed_at_step_7(self, batch, step):
        if step == 7:
            raise KeyboardInterrupt("simulated kill")
        return real_step(self, batch, step)

    monkeypatch.setattr(TrainStep, "__call__", killed_at_step_7)
    with pytest.raises(KeyboardInterrupt):
        train(cfg("killed"))
    assert calls == [0, 1]
    saved = checkpoint.load(tmp_path / "killed" / "last.pt")  # step 6: mid-epoch 1
    assert saved["step"] == 6 and saved["loader"]["position"] == 2 and "weights" in saved["loader"]
    monkeypatch.setattr(TrainStep, "__call__", real_step)
    calls.clear()
    resumed = train(cfg("killed"), resume=True)
    assert calls == [2]  # no re-clustering on resuming mid-epoch; the next epoch clusters again

    a, b = load_file(str(ref / "backbone.safetensors")), load_file(str(resumed / "backbone.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)
    got = checkpoint.load(resumed / "last.pt")
    assert torch.equal(got["method"]["pseudo_labels"], ref_state["method"]["pseudo_labels"])
    records = [json.loads(line) for line in (resumed / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == list(range(1, 11))
    assert "cluster_nmi" in records[-1]
