"""The one thing every loader yields and every method consumes."""
from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class Batch:
    """A batch of raw images, still uint8, already on the training device.

    Methods build their own views from ``images`` (augmentation runs on the
    batch's device). ``index`` is each image's position in the dataset: memory
    banks (NPID, PIRL) and DeepCluster's pseudo-labels are keyed by it.
    ``labels`` is only ever read by evaluation, never by a training loss.
    """

    images: torch.Tensor  # (B, C, H, W) uint8, C in {1, 3}
    index: torch.Tensor  # (B,) int64
    labels: torch.Tensor | None = None  # (B,) int64

    def to(self, device: torch.device | str, non_blocking: bool = False) -> "Batch":
        move = lambda t: None if t is None else t.to(device, non_blocking=non_blocking)  # noqa: E731
        return Batch(move(self.images), move(self.index), move(self.labels))

    def __len__(self) -> int:
        return self.images.shape[0]
