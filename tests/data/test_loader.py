"""BatchLoader and iterate: NCHW batches of the indexed images, seeded epochs, resume, prefetch, ranks, weights."""
from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

from selfsup.data import Batch, BatchLoader, ImageDataset, from_arrays, iterate
from tests.data.writers import pattern_images


def small_dataset(n: int = 50) -> ImageDataset:
    return from_arrays(pattern_images(n, 4), labels=np.arange(n) % 5)


def served_indices(loader: BatchLoader, batches: int) -> list[list[int]]:
    out: list[list[int]] = []
    while len(out) < batches:
        for batch in loader:
            out.append(batch.index.tolist())
            if len(out) == batches:
                break
    return out


def test_loader_batches_hold_the_indexed_images_in_nchw():
    ds = small_dataset()
    loader = BatchLoader(ds, batch_size=8, seed=3)
    batch = next(iter(loader))
    assert isinstance(batch, Batch) and batch.images.shape == (8, 3, 4, 4) and batch.images.dtype == torch.uint8
    assert batch.images.is_contiguous() and batch.index.dtype == torch.int64
    idx = batch.index.numpy()
    np.testing.assert_array_equal(batch.images.numpy(), ds.images[idx].transpose(0, 3, 1, 2))
    np.testing.assert_array_equal(batch.labels.numpy(), ds.labels[idx])


def test_loader_epochs_are_reproducible_permutations_that_differ_between_epochs():
    ds = small_dataset()
    a, b = BatchLoader(ds, 8, seed=1), BatchLoader(ds, 8, seed=1)
    assert len(a) == 6  # 50 // 8, last partial batch dropped
    first, second = served_indices(a, 12), served_indices(b, 12)
    assert first == second
    epoch0, epoch1 = sum(first[:6], []), sum(first[6:], [])
    assert len(set(epoch0)) == 48 and epoch0 != epoch1 and a.epoch == 2
    assert served_indices(BatchLoader(ds, 8, seed=2), 6) != first[:6]
    ordered = served_indices(BatchLoader(ds, 8, shuffle=False, drop_last=False), 7)
    assert sum(ordered, []) == list(range(50))


@pytest.mark.parametrize("stop_after", [1, 5, 6, 9])
def test_resumed_loader_serves_exactly_the_uninterrupted_batches(stop_after):
    ds = small_dataset()
    reference = served_indices(BatchLoader(ds, 8, seed=7), 14)
    first = BatchLoader(ds, 8, seed=7)
    before = served_indices(first, stop_after)
    state = first.state_dict()
    resumed = BatchLoader(ds, 8, seed=7)
    resumed.load_state_dict(state)
    assert before + served_indices(resumed, 14 - stop_after) == reference


def test_loader_state_from_another_seed_is_refused():
    loader = BatchLoader(small_dataset(), 8, seed=1)
    with pytest.raises(ValueError, match=r"seed=2, this loader has 1"):
        loader.load_state_dict({"epoch": 0, "position": 0, "seed": 2, "batch_size": 8})


def test_prefetching_loader_serves_the_same_batches_and_stops_its_thread():
    ds = small_dataset()
    plain = [(b.index.tolist(), b.images) for b in BatchLoader(ds, 8, seed=4)]
    fetched = [(b.index.tolist(), b.images) for b in BatchLoader(ds, 8, seed=4, prefetch=True)]
    assert [p[0] for p in plain] == [f[0] for f in fetched]
    assert all(torch.equal(p[1], f[1]) for p, f in zip(plain, fetched))
    loader = BatchLoader(ds, 8, seed=4, prefetch=True)
    for _ in loader:
        break
    assert not [t for t in threading.enumerate() if t.name == "selfsup-prefetch"]
    assert loader.state_dict()["position"] == 1


def test_loader_with_batch_larger_than_dataset_is_an_error():
    with pytest.raises(ValueError, match=r"batch_size=64 exceeds the 50 images"):
        BatchLoader(small_dataset(), 64)


def test_iterate_keeps_the_last_partial_batch_in_order():
    ds = small_dataset(10)
    batches = list(iterate(ds, batch_size=4))
    assert [len(b) for b in batches] == [4, 4, 2]
    assert torch.cat([b.index for b in batches]).tolist() == list(range(10))
    np.testing.assert_array_equal(torch.cat([b.images for b in batches]).numpy(), ds.images.transpose(0, 3, 1, 2))
    assert next(iter(iterate(from_arrays(ds.images), 4))).labels is None


def test_data_parallel_ranks_split_each_epoch_into_disjoint_equal_shares():
    ds = small_dataset(50)
    shares = [served_indices(BatchLoader(ds, 4, seed=5, rank=r, world_size=3), 4) for r in range(3)]
    flat = [sum(s, []) for s in shares]
    assert all(len(f) == 16 for f in flat) and len(set(sum(flat, []))) == 48  # 50 // 3 = 16 each, disjoint
    assert len(BatchLoader(ds, 4, rank=2, world_size=3)) == 4
    with pytest.raises(ValueError, match=r"rank must lie in \[0, world_size=2\), got 2"):
        BatchLoader(ds, 4, rank=2, world_size=2)


def test_weighted_loader_epochs_follow_the_weights_deterministically_and_resume():
    ds = from_arrays(np.random.default_rng(0).integers(0, 256, (40, 16, 16), dtype=np.uint8))
    w = np.ones(40)
    w[:10] = 9.0  # the first 10 images hold 90/120 = 3/4 of the mass
    loader = BatchLoader(ds, 8, seed=1)
    loader.set_weights(w)
    order = loader.order(0)
    again = BatchLoader(ds, 8, seed=1)
    again.set_weights(w)
    assert np.array_equal(order, again.order(0)) and len(order) == 40
    draws = np.concatenate([loader.order(e) for e in range(50)])
    assert abs((draws < 10).mean() - 0.75) < 0.03
    it = iter(loader)
    seen = [next(it).index for _ in range(2)]
    resumed = BatchLoader(ds, 8, seed=1)
    resumed.load_state_dict(loader.state_dict())  # weights travel in the state
    assert np.allclose(resumed.weights, loader.weights)
    rest_a = [b.index for b in loader]
    rest_b = [b.index for b in resumed]
    assert all(torch.equal(a, b) for a, b in zip(rest_a, rest_b)) and len(rest_a) == 3 and len(seen) == 2
    with pytest.raises(ValueError, match="weights must have shape"):
        loader.set_weights(np.ones(3))
    with pytest.raises(ValueError, match="non-negative"):
        loader.set_weights(-np.ones(40))


def test_ranks_take_disjoint_equal_shards_of_the_same_seeded_permutation():
    data = from_arrays(np.zeros((103, 4, 4, 1), dtype=np.uint8))
    for epoch in (0, 1):
        shards = [BatchLoader(data, 10, seed=7, rank=r, world_size=3).order(epoch) for r in range(3)]
        assert [len(s) for s in shards] == [34, 34, 34]
        assert len(set(np.concatenate(shards).tolist())) == 102
        whole = np.random.default_rng([7, epoch]).permutation(103)[:102]
        assert np.array_equal(np.sort(np.concatenate(shards)), np.sort(whole))
    assert not np.array_equal(shards[0], BatchLoader(data, 10, seed=7, rank=0, world_size=3).order(0))
