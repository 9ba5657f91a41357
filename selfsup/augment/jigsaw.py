"""Jigsaw tiles: a 3x3 grid cut from each view, with gaps and jitter, shuffled by one of a fixed set of permutations.

Noroozi & Favaro, "Unsupervised Learning of Visual Representations by Solving
Jigsaw Puzzles", ECCV 2016, arXiv:1603.09246. Tiles are cut "with a random
shift" inside their cells so that "edge continuity" and shared borders cannot
solve the puzzle, and the permutations are chosen so that they are far apart
in Hamming distance: "the minimum hamming distance between permutations of the
set ... the larger the better" (Sec. 3.3, Table 3).

Public API (PIRL uses it too): ``permutation_set``, ``jigsaw_tiles``,
``tile_grid_boxes``, ``grayscale_tiles``, ``standardize_tiles``.
"""
from __future__ import annotations

import functools
import itertools

import numpy as np
import torch

_GRAY_WEIGHTS = (0.299, 0.587, 0.114)  # ITU-R 601 luma, as ViewAugment's greyscale


@functools.lru_cache(maxsize=8)
def _all_permutations(k: int) -> np.ndarray:
    """(k!, k) uint8, every permutation of range(k) in lexicographic order."""
    return np.array(list(itertools.permutations(range(k))), dtype=np.uint8)


@functools.lru_cache(maxsize=16)
def _greedy_permutations(n: int, k: int) -> np.ndarray:
    """(n, k) int64: greedy max-min Hamming selection from all k! permutations, fully deterministic.

    Start from the identity; then repeatedly add the permutation whose minimum
    Hamming distance to the set so far is largest, breaking ties by the largest
    summed distance to the set (the paper's own criterion, the average), then by
    lexicographic order. No randomness, so every run and process gets the same set.
    One step is 2k vector ops over the k! candidates: 1000 of 9! take ~2-3 s.
    """
    perms = _all_permutations(k)  # (k!, k)
    columns = np.ascontiguousarray(perms.T)  # (k, k!): one contiguous row per position
    total = perms.shape[0]
    min_dist = np.full(total, k + 1, dtype=np.int64)  # (k!,) min distance to the chosen set
    sum_dist = np.zeros(total, dtype=np.int64)  # (k!,) summed distance to the chosen set
    chosen = [0]  # the identity is the first permutation in lexicographic order
    dist = np.zeros(total, dtype=np.int64)
    for _ in range(n - 1):
        last = perms[chosen[-1]]
        dist[:] = 0
        for pos in range(k):
            dist += columns[pos] != last[pos]
        np.minimum(min_dist, dist, out=min_dist)
        sum_dist += dist
        # The score orders by min distance first, sum second; chosen rows have min distance 0 and lose.
        score = min_dist * (n * k + 1) + sum_dist
        chosen.append(int(np.argmax(score)))
    return perms[chosen].astype(np.int64)


def permutation_set(n: int = 100, grid: int = 3) -> torch.Tensor:
    """The jigsaw's ``n`` permutations of the grid*grid tiles, (n, grid*grid) int64, row 0 the identity.

    The same for every call, run and process (cached in memory per process).
    The paper trains with 100 and compares 64 to 1000 (Table 3); any n up to
    (grid*grid)! is allowed. Returns a fresh tensor, safe to modify.
    """
    if isinstance(grid, bool) or not isinstance(grid, int) or not 2 <= grid <= 3:
        raise ValueError(f"grid must be 2 or 3 (all (grid*grid)! permutations are enumerated), got {grid!r}")
    k = grid * grid
    count = int(np.prod(np.arange(1, k + 1)))
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= count:
        raise ValueError(f"n (number of permutations) must be an int in [1, {count}], got {n!r}")
    return torch.from_numpy(_greedy_permutations(n, k).copy())


def tile_grid_boxes(
    batch: int, size: int, grid: int = 3, gap: int = 2, jitter: int = 2, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, int]:
    """Top-left corners (batch, grid*grid, 2) as (row, col), row-major cells, and the tile side.

    The view (size x size) is cut into grid x grid cells of side ``size // grid``
    (centred, leftover pixels dropped). Each tile has side
    ``cell - gap - jitter`` and sits at a random offset in [0, jitter] inside its
    cell, so two neighbouring tiles are always at least ``gap`` pixels apart
    (and at most gap + 2 * jitter): no shared border, no shared pixel.
    """
    for name, value, low in (("grid", grid, 1), ("gap", gap, 0), ("jitter", jitter, 0)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"{name} must be an int >= {low}, got {value!r}")
    cell = size // grid
    tile = cell - gap - jitter
    if tile < 1:
        raise ValueError(
            f"a {size}px view in a {grid}x{grid} grid has {cell}px cells: no room for gap={gap} and jitter={jitter}"
        )
    if generator is not None and generator.device.type != "cpu":
        raise ValueError(f"generator must be a CPU torch.Generator, got one on {generator.device}")
    margin = (size - grid * cell) // 2
    cells = torch.arange(grid) * cell + margin  # (grid,)
    origin = torch.stack(torch.meshgrid(cells, cells, indexing="ij"), dim=-1).reshape(1, grid * grid, 2)
    offset = torch.randint(0, jitter + 1, (batch, grid * grid, 2), generator=generator)
    return origin + offset, tile  # (B, grid*grid, 2), int


def crop_tiles(x: torch.Tensor, corners: torch.Tensor, tile: int) -> torch.Tensor:
    """Cut square tiles from x (B, C, H, W) at ``corners`` (B, T, 2) (row, col): (B, T, C, tile, tile)."""
    b = x.shape[0]
    corners = corners.to(x.device)
    steps = torch.arange(tile, device=x.device)
    rows = (corners[..., 0, None] + steps)[:, :, :, None]  # (B, T, tile, 1)
    cols = (corners[..., 1, None] + steps)[:, :, None, :]  # (B, T, 1, tile)
    which = torch.arange(b, device=x.device).view(b, 1, 1, 1)
    tiles = x.permute(0, 2, 3, 1)[which, rows, cols]  # (B, T, tile, tile, C)
    return tiles.permute(0, 1, 4, 2, 3).contiguous()  # (B, T, C, tile, tile)


def jigsaw_tiles(
    x: torch.Tensor,
    perms: torch.Tensor,
    grid: int = 3,
    gap: int = 2,
    jitter: int = 2,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Shuffled tiles of a float view batch x (B, C, H, W) and the index of each image's permutation.

    Returns ``tiles`` (B, grid*grid, C, t, t) and ``perm_index`` (B,) into
    ``perms`` (P, grid*grid). Position k of image b's sequence holds the tile of
    cell ``perms[perm_index[b], k]`` (cells in row-major order), so
    ``tiles[b, k]`` is put back with ``grid_cells[perms[i, k]] = tiles[b, k]``.
    Random draws (permutation, jitter) come from ``generator`` on the CPU.
    """
    if x.ndim != 4 or not x.is_floating_point():
        raise ValueError(f"x must be a float (B, C, H, W) batch, got {x.dtype} {tuple(x.shape)}")
    if x.shape[-1] != x.shape[-2]:
        raise ValueError(f"x must hold square views, got {tuple(x.shape)}")
    if perms.ndim != 2 or perms.shape[1] != grid * grid:
        raise ValueError(f"perms must be (P, {grid * grid}) for grid={grid}, got {tuple(perms.shape)}")
    b = x.shape[0]
    corners, tile = tile_grid_boxes(b, x.shape[-1], grid, gap, jitter, generator)  # (B, T, 2)
    perm_index = torch.randint(0, perms.shape[0], (b,), generator=generator)  # (B,)
    order = perms.cpu()[perm_index]  # (B, T): cell shown at each position
    corners = corners.gather(1, order[..., None].expand(-1, -1, 2))  # (B, T, 2) in shuffled order
    return crop_tiles(x, corners, tile), perm_index.to(x.device)


def grayscale_tiles(tiles: torch.Tensor, p: float = 2 / 3, generator: torch.Generator | None = None) -> torch.Tensor:
    """Replace each RGB tile (B, T, 3, t, t) by its luma with probability ``p``, independently per tile.

    Against the chromatic-aberration shortcut; on grey tiles a no-op.
    """
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"p (greyscale probability) must be in [0, 1], got {p!r}")
    if tiles.shape[2] != 3 or p == 0:
        return tiles
    w = torch.tensor(_GRAY_WEIGHTS, device=tiles.device, dtype=tiles.dtype).view(1, 1, 3, 1, 1)
    luma = (tiles * w).sum(dim=2, keepdim=True).expand_as(tiles)  # (B, T, 3, t, t)
    pick = torch.rand(tiles.shape[:2], generator=generator) < p  # (B, T) on the CPU
    pick = pick.to(tiles.device).view(*tiles.shape[:2], 1, 1, 1)
    return torch.where(pick, luma, tiles)


def standardize_tiles(tiles: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """Zero mean, unit std per tile over its channels and pixels (B, T, C, t, t).

    "Revisiting"'s per-patch standardisation.

    Removes each tile's brightness and contrast, which could otherwise tell
    where in the image it came from.
    """
    mean = tiles.mean(dim=(2, 3, 4), keepdim=True)
    std = tiles.std(dim=(2, 3, 4), keepdim=True, unbiased=False)
    return (tiles - mean) / (std + eps)
