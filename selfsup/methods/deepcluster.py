"""DeepCluster: cluster the features, then learn to predict the cluster assignments.

Caron, Bojanowski, Joulin & Douze, "Deep Clustering for Unsupervised Learning
of Visual Features", ECCV 2018, arXiv:1807.05520. Every epoch the frozen
network's features of the whole training set (centre crops, no augmentation)
are PCA-reduced, whitened and L2-normalised, clustered with k-means, and the
assignments become pseudo-labels that a freshly initialised linear classifier
on top of the backbone learns to predict for the epoch (Sec. 3.2, 4).

Two guards against trivial solutions (Sec. 3.3): empty clusters are re-seeded
inside k-means (``selfsup.eval.clustering.kmeans`` moves an empty cluster onto
the row farthest from its centroid, where the paper splits a random non-empty
cluster: both keep k clusters in use), and images are sampled "based on a
uniform distribution over the classes, or pseudo-labels": per-image weights
1 / (clusters in use * size of its cluster), which the loop hands to the loader.

The classifier's weights are re-initialised after each clustering; the
optimizer's momentum for them is not reset (the method does not own the
optimizer), which fades within ~10 SGD steps.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from selfsup.augment import ViewAugment
from selfsup.backbones.base import Backbone
from selfsup.data.batch import Batch
from selfsup.data.dataset import ImageDataset
from selfsup.eval.clustering import kmeans, partition_scores
from selfsup.eval.features import backbone_features
from selfsup.methods.base import Method, StepOutput


def pca_whiten(x: torch.Tensor, dim: int, eps: float = 1e-5) -> torch.Tensor:
    """Rows of x (N, D) projected on the top-``dim`` principal axes, each scaled to unit variance: (N, dim)."""
    x = x.double()
    centred = x - x.mean(0)
    cov = centred.T @ centred / max(1, x.shape[0] - 1)  # (D, D)
    var, axes = torch.linalg.eigh(cov)  # ascending
    var, axes = var.flip(0)[:dim], axes.flip(1)[:, :dim]  # (dim,), (D, dim)
    return (centred @ axes / (var.clamp_min(0) + eps).sqrt()).float()


def cluster_balanced_weights(assignments: torch.Tensor, num_clusters: int) -> np.ndarray:
    """Per-image sampling weights (N,) giving every non-empty cluster the same total probability."""
    a = assignments.cpu().numpy()
    sizes = np.bincount(a, minlength=num_clusters).astype(np.float64)  # (k,)
    used = int((sizes > 0).sum())
    return 1.0 / (used * sizes[a])


class DeepCluster(Method):
    def __init__(
        self,
        backbone: Backbone,
        augment: ViewAugment,
        num_samples: int,  # the training set's size, filled in by the builder
        num_clusters: int = 10000,  # the paper's k on ImageNet, 10x its classes: some over-segmentation helps
        pca_dim: int = 256,  # the paper's PCA size; capped at the backbone's width
        kmeans_iter: int = 20,
        extract_batch_size: int = 512,
    ):
        super().__init__(backbone)
        if not 2 <= num_clusters <= num_samples:
            raise ValueError(f"num_clusters must be in [2, num_samples={num_samples}], got {num_clusters}")
        if pca_dim < 1:
            raise ValueError(f"pca_dim must be >= 1, got {pca_dim}")
        self.augment = augment
        self.num_clusters, self.kmeans_iter, self.extract_batch_size = num_clusters, kmeans_iter, extract_batch_size
        self.pca_dim = min(pca_dim, backbone.out_dim)
        self.classifier = nn.Linear(backbone.out_dim, num_clusters)
        self.register_buffer("pseudo_labels", torch.full((num_samples,), -1, dtype=torch.long))  # (n,) per image
        # NMI between the last two clusterings; -1 (not NaN: checkpoints hold finite state only) before the second
        self.register_buffer("cluster_nmi", torch.tensor(-1.0))

    @torch.no_grad()
    def on_epoch_start(self, epoch: int, dataset: ImageDataset, device: torch.device) -> np.ndarray:
        """Cluster the whole training set, store the pseudo-labels, reset the classifier; return sampling weights."""
        if len(dataset) != len(self.pseudo_labels):
            raise ValueError(f"dataset has {len(dataset)} images, the pseudo-labels {len(self.pseudo_labels)}")
        feats = backbone_features(self.backbone, dataset, self.augment.size, device=device,
                                  batch_size=self.extract_batch_size, precision="fp32").to(device)  # (N, D), eval mode
        x = F.normalize(pca_whiten(feats, self.pca_dim), dim=1)  # (N, pca_dim)
        assign = kmeans(x, self.num_clusters, n_iter=self.kmeans_iter, seed=epoch).assignments.to(device)  # (N,)
        if (self.pseudo_labels >= 0).all():
            self.cluster_nmi.fill_(partition_scores(assign, self.pseudo_labels)["nmi"])
        self.pseudo_labels.copy_(assign)
        nn.init.normal_(self.classifier.weight, std=0.01)  # as the paper's code re-creates its top layer
        nn.init.zeros_(self.classifier.bias)
        return cluster_balanced_weights(assign, self.num_clusters)

    def training_step(self, batch: Batch, step: int) -> StepOutput:
        target = self.pseudo_labels[batch.index]  # (B,)
        if (target < 0).any():
            raise RuntimeError("DeepCluster has no pseudo-labels yet: on_epoch_start must cluster the data first")
        h = self.backbone(self.augment(batch.images))  # (B, D)
        logits = self.classifier(h).float()  # (B, k)
        loss = F.cross_entropy(logits, target)
        metrics = {"pretext_acc": (logits.argmax(1) == target).float().mean().item()}
        if self.cluster_nmi >= 0:
            metrics["cluster_nmi"] = self.cluster_nmi.item()
        return StepOutput(loss, metrics, embedding=h.detach())
