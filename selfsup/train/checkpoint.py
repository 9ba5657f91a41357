"""Atomic checkpoints that load with ``weights_only=True``, and the safetensors export."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch


def save_atomic(obj: Any, path: Path) -> None:
    """Write to a temporary file in the same folder, then rename: a kill never leaves half a file."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def load(path: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Only tensors and plain containers: no code runs when a checkpoint is read."""
    return torch.load(path, map_location=map_location, weights_only=True)


def export_backbone(backbone: torch.nn.Module, path: Path) -> None:
    """The trained encoder alone, as safetensors (shareable, loads without pickle)."""
    from safetensors.torch import save_file

    state = {k: v.detach().contiguous().cpu() for k, v in backbone.state_dict().items()}
    tmp = Path(path).with_name(f".{Path(path).name}.tmp")
    save_file(state, str(tmp))
    os.replace(tmp, path)
