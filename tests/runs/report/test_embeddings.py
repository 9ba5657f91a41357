"""The report's retrieval grids: nearest neighbours, and queries that cover the classes."""
import numpy as np

from selfsup.runs.report.embeddings import nearest_neighbours, pick_queries


def test_nearest_neighbours_and_queries_cover_classes():
    train = np.array([[1.0, 0.0], [0.0, 1.0], [0.7, 0.7], [-1.0, 0.0]])
    assert nearest_neighbours(train, np.array([[1.0, 0.1]]), k=3).tolist() == [[0, 2, 1]]
    labels = np.array([2, 2, 0, 1, 0, 1])
    assert pick_queries(labels, 4).tolist() == [2, 3, 0, 4]
