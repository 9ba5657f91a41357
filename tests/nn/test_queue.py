"""MoCo's feature queue: first in, first out, wrapping around, carried by the state dict."""
import torch

from selfsup.nn import FeatureQueue


def test_queue_is_fifo_and_wraps_around():
    q = FeatureQueue(5, 2)
    q.enqueue(torch.tensor([[1.0, 1], [2, 2], [3, 3]]))
    assert int(q.ptr) == 3 and q.features[:3, 0].tolist() == [1, 2, 3]
    q.enqueue(torch.tensor([[4.0, 4], [5, 5], [6, 6]]))  # rows 3, 4, then back to 0
    assert int(q.ptr) == 1 and q.features[:, 0].tolist() == [6, 2, 3, 4, 5]
    q.enqueue(torch.tensor([[7.0, 7]]))  # the oldest left (2) goes next
    assert int(q.ptr) == 2 and q.features[:, 0].tolist() == [6, 7, 3, 4, 5]
    q.enqueue(torch.arange(14.0).reshape(7, 2))  # longer than the queue: only the newest 5 stay
    assert sorted(q.features[:, 0].tolist()) == [4, 6, 8, 10, 12]


def test_queue_travels_in_the_state_dict():
    q = FeatureQueue(4, 3)
    q.enqueue(torch.ones(3, 3))
    state = q.state_dict()
    assert set(state) == {"features", "ptr"}
    fresh = FeatureQueue(4, 3)
    fresh.load_state_dict(state)
    assert torch.equal(fresh.features, q.features) and int(fresh.ptr) == 3
