"""Atomic checkpoints of finite tensors that load with ``weights_only=True``, and the safetensors export."""
from __future__ import annotations

import os
import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch

from selfsup.registry import InputError, RunStopped


def non_finite(tree: Any, where: str = "") -> str | None:
    """The name of the first floating-point tensor in ``tree`` (dicts, lists, tensors) with a NaN or inf, else None."""
    if isinstance(tree, torch.Tensor):
        return where or "tensor" if tree.is_floating_point() and not torch.isfinite(tree).all() else None
    items = tree.items() if isinstance(tree, dict) else enumerate(tree) if isinstance(tree, (list, tuple)) else ()
    for key, value in items:
        found = non_finite(value, f"{where}.{key}" if where else str(key))
        if found:
            return found
    return None


def save_atomic(obj: Any, path: Path) -> None:
    """Write to a temporary file in the same folder, then rename: a kill never leaves half a file.

    A failed write (full disk, lost permission) removes its temporary file and keeps the previous
    checkpoint; the error says so in one line.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    except OSError as err:
        tmp.unlink(missing_ok=True)
        kept = "the previous one is kept" if path.exists() else "there is no earlier one"
        raise RunStopped(f"cannot write the checkpoint {path}: {err.strerror or err}; {kept}") from None


def load(path: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Only tensors and plain containers: no code runs when a checkpoint is read."""
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:  # torch names the refused global on a line of its own
        named = [line.strip() for line in str(err).splitlines() if "GLOBAL" in line or "global" in line]
        raise InputError(f"{path} holds objects other than tensors and plain containers, which cannot be read safely"
                         f" ({(named or ['refused by weights_only'])[0][:200]})") from None
    except (zipfile.BadZipFile, EOFError, RuntimeError) as err:
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise InputError(f"{path} is not a selfsup checkpoint ({reason[:200]})") from None
    if not isinstance(state, dict):
        raise InputError(f"{path} is not a selfsup checkpoint: it holds a {type(state).__name__}, not a dict")
    return state


def export_backbone(backbone: torch.nn.Module, path: Path) -> None:
    """The trained encoder alone, as safetensors (shareable, loads without pickle)."""
    from safetensors.torch import save_file

    state = {k: v.detach().contiguous().cpu() for k, v in backbone.state_dict().items()}
    tmp = Path(path).with_name(f".{Path(path).name}.tmp")
    save_file(state, str(tmp))
    os.replace(tmp, path)
