"""Epochs of uint8 batches straight from a (memory-mapped) ImageDataset.

No worker processes: a batch is one numpy gather from the memmap plus one
layout change, about a millisecond for 256 CIFAR-sized images, while every
augmentation runs later on the batch's device. The shuffle order of an epoch
is a function of (seed, epoch) only, so a run resumed from ``state_dict()``
sees exactly the batches the uninterrupted run would have seen. Per-image
sampling weights (``set_weights``, e.g. DeepCluster's uniform sampling over
clusters) replace the permutation by a seeded draw with replacement, and
travel in ``state_dict()`` so a resumed epoch draws the same images.
"""
from __future__ import annotations

import queue
import threading
from typing import Any, Iterator, TypeVar

import numpy as np
import torch

from selfsup.data.batch import Batch
from selfsup.data.dataset import ImageDataset
from selfsup.registry import InputError

T = TypeVar("T")


def make_batch(dataset: ImageDataset, idx: np.ndarray, device: torch.device) -> Batch:
    """Gather images ``idx`` (any order) into a Batch on ``device``."""
    pixels = np.asarray(dataset.images[idx])  # (B, H, W, C) uint8
    # numpy's transposing copy: torch's permute().contiguous() for uint8 is far slower when its intra-op
    # threads compete for busy cores (docs/speed.md#augmentation-and-data-loading)
    images = torch.from_numpy(np.ascontiguousarray(pixels.transpose(0, 3, 1, 2)))  # (B, C, H, W)
    index = torch.from_numpy(idx.astype(np.int64, copy=False))
    labels = None if dataset.labels is None else torch.from_numpy(dataset.labels[idx])
    return to_device(Batch(images, index, labels), device)


def to_device(batch: Batch, device: torch.device) -> Batch:
    """A CPU batch moved to ``device``, through pinned memory when it is CUDA."""
    if device.type == "cuda":
        pinned = Batch(batch.images.pin_memory(), batch.index.pin_memory(),
                       None if batch.labels is None else batch.labels.pin_memory())
        return pinned.to(device, non_blocking=True)
    return batch if device.type == "cpu" else batch.to(device)


def in_background(items: Iterator[T], depth: int = 1) -> Iterator[T]:
    """Produce ``items`` on a thread, at most ``depth`` ahead of the consumer.

    Producer errors are raised in the consumer; closing the consumer early
    stops the thread (no leaked threads when a training loop breaks out).
    """
    slots: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(entry: tuple[str, Any]) -> bool:
        while not stop.is_set():
            try:
                slots.put(entry, timeout=0.05)
                return True
            except queue.Full:
                pass
        return False

    def work() -> None:
        try:
            for item in items:
                if not put(("item", item)):
                    return
            put(("done", None))
        except BaseException as e:  # noqa: BLE001 - handed to the consumer
            put(("error", e))

    thread = threading.Thread(target=work, name="selfsup-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            kind, value = slots.get()
            if kind == "done":
                return
            if kind == "error":
                raise value
            yield value
    finally:
        stop.set()
        thread.join()


class BatchLoader:
    """Shuffled epochs of Batches with resumable position.

    Iterating yields the rest of the current epoch, then moves to the next
    one; breaking out of the loop keeps the position, so the next ``iter``
    continues where it stopped. ``state_dict()`` taken after consuming a batch
    resumes at the following batch.

    Args:
        dataset: the images (ideally memory-mapped from ``prepare``).
        batch_size: images per batch.
        device: where the batches land; from pinned memory when it is CUDA.
        shuffle: a fresh permutation per epoch, seeded by (seed, epoch).
        drop_last: drop the last partial batch, so every batch has ``batch_size`` images.
        seed: the shuffle seed.
        rank, world_size: this process's share of each epoch in data-parallel training.
        prefetch: build the next batch on a background thread while this one is used.
            Off by default: on a busy CPU with few cores it made steps slower
            (it competes with torch's threads for the cores); try it when the
            main thread mostly waits on a GPU.
    """

    def __init__(
        self,
        dataset: ImageDataset,
        batch_size: int,
        device: torch.device | str = "cpu",
        shuffle: bool = True,
        drop_last: bool = True,
        seed: int = 0,
        prefetch: bool = False,
        rank: int = 0,
        world_size: int = 1,
    ):
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise InputError(f"batch_size must be a positive integer, got {batch_size!r}")
        if not 0 <= rank < world_size:
            raise InputError(f"rank must lie in [0, world_size={world_size}), got {rank}")
        self.rank, self.world_size = rank, world_size
        self.per_rank = len(dataset) // world_size if world_size > 1 else len(dataset)
        if drop_last and self.per_rank < batch_size:
            raise InputError(
                f"batch_size={batch_size} exceeds the {self.per_rank} images of {dataset.name!r} per process "
                "with drop_last=True: an epoch would have no batches"
            )
        self.dataset = dataset
        self.batch_size = batch_size
        self.device = torch.device(device)
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.seed = seed
        self.prefetch = prefetch
        self.epoch = 0
        self.position = 0  # batches of the current epoch already handed out
        self.weights: np.ndarray | None = None  # (N,) sampling probabilities; None: a plain shuffle

    def set_weights(self, weights: np.ndarray | None) -> None:
        """Draw the next epochs' images with probability proportional to ``weights`` (N,); None restores shuffling.

        Each epoch still serves len(dataset) images (drawn with replacement,
        seeded by (seed, epoch)); set weights before the epoch's first batch.
        """
        if weights is None:
            self.weights = None
            return
        w = np.asarray(weights, dtype=np.float64)
        n = len(self.dataset)
        if w.shape != (n,):
            raise InputError(f"weights must have shape ({n},), one per image, got {w.shape}")
        if not np.isfinite(w).all() or (w < 0).any() or w.sum() <= 0:
            raise InputError("weights must be finite, non-negative and not all zero")
        self.weights = w / w.sum()

    def __len__(self) -> int:
        n = self.per_rank
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def order(self, epoch: int) -> np.ndarray:
        """The dataset indices this process serves in ``epoch``, in order.

        Every process draws the same permutation and takes every
        ``world_size``-th index from ``rank`` on, after cutting the tail so all
        processes serve the same number of batches.
        """
        n = len(self.dataset)
        rng = np.random.default_rng([self.seed, epoch])
        if self.weights is not None:
            order = rng.choice(n, size=n, replace=True, p=self.weights)
        else:
            order = rng.permutation(n) if self.shuffle else np.arange(n, dtype=np.int64)
        if self.world_size > 1:
            order = order[: self.per_rank * self.world_size][self.rank :: self.world_size]
        return order

    def _batches(self, epoch: int, start: int) -> Iterator[tuple[int, Batch]]:
        order = self.order(epoch)
        for b in range(start, len(self)):
            idx = order[b * self.batch_size : (b + 1) * self.batch_size]
            yield b, make_batch(self.dataset, idx, self.device)

    def __iter__(self) -> Iterator[Batch]:
        epoch = self.epoch
        batches = self._batches(epoch, self.position)
        if self.prefetch:
            batches = in_background(batches)
        for b, batch in batches:
            # advance before yielding: state_dict() read while this batch is in use points past it
            self.position = b + 1
            if self.position == len(self):
                self.epoch, self.position = epoch + 1, 0
            yield batch

    def state_dict(self) -> dict[str, Any]:
        state = {
            "epoch": self.epoch, "position": self.position,
            "seed": self.seed, "batch_size": self.batch_size, "world_size": self.world_size,
        }  # fmt: skip
        if self.weights is not None:
            state["weights"] = torch.from_numpy(self.weights.copy())  # a tensor: checkpoints load with weights_only
        return state

    def load_state_dict(self, state: dict[str, int]) -> None:
        for key in ("seed", "batch_size", "world_size"):
            if key in state and state[key] != getattr(self, key):
                raise InputError(
                    f"loader state has {key}={state[key]}, this loader has {getattr(self, key)}; "
                    "the batches would differ"
                )
        if not 0 <= state["position"] < len(self):
            raise InputError(f"loader state position={state['position']} is outside an epoch of {len(self)} batches")
        self.epoch, self.position = int(state["epoch"]), int(state["position"])
        self.set_weights(None if state.get("weights") is None else state["weights"].cpu().numpy())


def iterate(dataset: ImageDataset, batch_size: int, device: torch.device | str = "cpu") -> Iterator[Batch]:
    """Every image once, in dataset order, the last batch possibly smaller (for evaluation)."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise InputError(f"batch_size must be a positive integer, got {batch_size!r}")
    device = torch.device(device)
    for start in range(0, len(dataset), batch_size):
        yield make_batch(dataset, np.arange(start, min(start + batch_size, len(dataset)), dtype=np.int64), device)
