"""Raw Fashion-MNIST pixels as features: the known input the evaluation protocols are pinned on."""
from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

FMNIST = Path("/usr/share/datasets/fashion-mnist")
N_TRAIN, N_TEST = 10_000, 2_000  # subset: the first 10k training and first 2k test images


def _read_idx_gz(path: Path) -> np.ndarray:
    with gzip.open(path, "rb") as f:
        _, _, ndim = struct.unpack(">HBB", f.read(4))
        shape = struct.unpack(f">{ndim}I", f.read(4 * ndim))
        return np.frombuffer(f.read(), dtype=np.uint8).reshape(shape)


@pytest.fixture(scope="module")
def fmnist_pixels() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
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
