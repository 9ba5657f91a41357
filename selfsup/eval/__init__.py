"""Evaluation protocols on frozen features: extraction + cache, linear probe, kNN, k-means, monitors.

Accuracies are percentages (0-100), as papers report them; clustering scores
(NMI, ARI, purity) and monitors are in their natural units.
"""
from selfsup.eval.clustering import KMeansResult, cluster_scores, kmeans, partition_scores
from selfsup.eval.features import FeatureCache, extract_features, file_digest, pooled_size
from selfsup.eval.knn import knn_accuracy, knn_classify, knn_scores
from selfsup.eval.linear import ProbeResult, evaluate, fit_linear_probe, fit_logistic_regression
from selfsup.nn.monitors import embedding_std, rankme

__all__ = [
    "FeatureCache",
    "KMeansResult",
    "ProbeResult",
    "cluster_scores",
    "embedding_std",
    "evaluate",
    "extract_features",
    "file_digest",
    "fit_linear_probe",
    "fit_logistic_regression",
    "kmeans",
    "knn_accuracy",
    "knn_classify",
    "knn_scores",
    "partition_scores",
    "pooled_size",
    "rankme",
]
