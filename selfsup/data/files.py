"""Locating a dataset's files, and failing before training when they are not there."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

from selfsup.registry import InputError


def check_split(name: str, split: str, allowed: Sequence[str]) -> None:
    if split not in allowed:
        derived = ", val, trainval (from train)" if "train" in allowed else ""
        raise InputError(f"{name} has no split {split!r}; choose from: {', '.join(allowed)}{derived}")


def find_root(name: str, root: str | Path | None, default: str | Path | None, holds: str) -> Path:
    """``root`` (or the dataset's default location) as an existing directory.

    Args:
        holds: what the folder should contain, quoted in the error message.
    """
    if root is None:
        if default is None:
            raise InputError(f"{name} needs root= (the folder holding {holds})")
        root = default
    path = Path(root).expanduser()
    if not path.is_dir():
        what = "is not a directory" if path.exists() else "does not exist"
        raise FileNotFoundError(f"{name}: data folder {path} {what}; expected a folder holding {holds}")
    return path.resolve()


def first_existing(folder: Path, names: Sequence[str], what: str) -> Path:
    """The first of ``names`` present in ``folder``; FileNotFoundError listing them all otherwise."""
    for n in names:
        if (folder / n).is_file():
            return folder / n
    raise FileNotFoundError(f"{what}: none of {', '.join(names)} found in {folder}")
