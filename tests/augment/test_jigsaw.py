"""Jigsaw permutations and tiles (selfsup.augment.jigsaw)."""
import hashlib
import itertools
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import selfsup
from selfsup.augment.jigsaw import (
    _greedy_permutations,
    grayscale_tiles,
    jigsaw_tiles,
    permutation_set,
    standardize_tiles,
    tile_grid_boxes,
)

pytestmark = pytest.mark.usefixtures("one_thread")


def pairwise_min_hamming(perms):
    """Brute force over every pair of rows, in plain Python."""
    rows = [tuple(r) for r in perms.tolist()]
    return min(sum(a != b for a, b in zip(p, q)) for p, q in itertools.combinations(rows, 2))


def test_jigsaw_permutations_have_min_hamming_distance():
    perms = permutation_set(100)
    assert perms.shape == (100, 9) and perms.dtype == torch.int64
    assert all(sorted(r) == list(range(9)) for r in perms.tolist())  # valid permutations
    assert len({tuple(r) for r in perms.tolist()}) == 100  # all distinct
    assert perms[0].tolist() == list(range(9))
    # The greedy max-min selection reaches 7 for the first 64 and 6 for 100; random sets stay below.
    assert pairwise_min_hamming(perms) == 6
    assert pairwise_min_hamming(permutation_set(64)) == 7
    g = torch.Generator().manual_seed(0)
    random_set = torch.stack([torch.randperm(9, generator=g) for _ in range(100)])
    assert pairwise_min_hamming(random_set) < 6


def test_greedy_selection_matches_a_plain_python_greedy_on_2x2():
    """The vectorised greedy equals a slow literal one (max min distance, then max sum, then first)."""
    all_perms = list(itertools.permutations(range(4)))

    def dist(p, q):
        return sum(a != b for a, b in zip(p, q))

    chosen = [all_perms[0]]
    for _ in range(9):
        best = max(
            (p for p in all_perms if p not in chosen),
            key=lambda p: (min(dist(p, c) for c in chosen), sum(dist(p, c) for c in chosen), -all_perms.index(p)),
        )
        chosen.append(best)
    assert permutation_set(10, grid=2).tolist() == [list(p) for p in chosen]


def test_permutation_set_is_the_same_in_a_fresh_process_and_without_cache():
    digest = hashlib.sha256(permutation_set(100).numpy().tobytes()).hexdigest()
    uncached = _greedy_permutations.__wrapped__(100, 9)
    assert hashlib.sha256(uncached.tobytes()).hexdigest() == digest
    code = ("import hashlib; from selfsup.augment.jigsaw import permutation_set; "
            "print(hashlib.sha256(permutation_set(100).numpy().tobytes()).hexdigest())")
    root = str(Path(selfsup.__file__).resolve().parent.parent)  # this checkout, not another install
    env = {**os.environ, "PYTHONPATH": root, "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env, cwd=root)
    assert out.stdout.strip() == digest
    assert digest == "445417e7e25bdf9dc841b1e2382ca90c4305b3e82b5f4d3a911ff5da06b49fc7"  # pinned across versions


def test_permutation_set_sizes_and_bad_arguments():
    assert permutation_set(64).shape == (64, 9)
    assert permutation_set(1000).shape == (1000, 9)
    assert torch.equal(permutation_set(64), permutation_set(100)[:64])  # greedy: a prefix of the larger set
    with pytest.raises(ValueError, match="n .*0"):
        permutation_set(0)
    with pytest.raises(ValueError, match="grid"):
        permutation_set(10, grid=4)


def coordinate_image(b, size):
    """Each pixel holds its own flat index r * size + c (all channels), so tiles reveal where they came from."""
    idx = torch.arange(size * size, dtype=torch.float64).view(1, 1, size, size)
    return idx.expand(b, 3, size, size).clone()


@pytest.mark.parametrize("gap,jitter", [(2, 2), (0, 3), (4, 0)])
def test_jigsaw_tiles_keep_the_gap_between_neighbours(gap, jitter):
    size, b = 64, 16
    x = coordinate_image(b, size)
    perms = permutation_set(100)
    g = torch.Generator().manual_seed(0)
    tiles, index = jigsaw_tiles(x, perms, gap=gap, jitter=jitter, generator=g)
    t = 21 - gap - jitter
    assert tiles.shape == (b, 9, 3, t, t) and index.shape == (b,)
    for i in range(b):
        # Undo the shuffle: position k holds the tile of cell perms[index, k].
        cells = [None] * 9
        for k, cell in enumerate(perms[index[i]].tolist()):
            cells[cell] = tiles[i, k, 0]
        rows = [(c // size, c % size) for c in (cell.reshape(-1).long() for cell in cells)]
        boxes = [(int(r.min()), int(r.max()), int(c.min()), int(c.max())) for r, c in rows]
        for cell, (r0, r1, c0, c1) in enumerate(boxes):
            assert r1 - r0 == t - 1 and c1 - c0 == t - 1  # a solid square of the image
            gr, gc = divmod(cell, 3)
            assert 21 * gr <= r0 and r1 < 21 * (gr + 1) and 21 * gc <= c0 and c1 < 21 * (gc + 1)  # in its cell
        for a, c in itertools.combinations(range(9), 2):
            ra, rc = divmod(a, 3), divmod(c, 3)
            if abs(ra[0] - rc[0]) + abs(ra[1] - rc[1]) == 1:  # 4-neighbours
                (a0, a1, a2, a3), (c0, c1, c2, c3) = boxes[a], boxes[c]
                apart = max(c0 - a1 - 1, a0 - c1 - 1, c2 - a3 - 1, a2 - c3 - 1)  # pixels strictly between them
                assert apart >= gap
                assert not set(cells[a].reshape(-1).tolist()) & set(cells[c].reshape(-1).tolist())


def test_jigsaw_tiles_jitter_moves_tiles_and_labels_cover_the_set():
    g = torch.Generator().manual_seed(1)
    corners, _ = tile_grid_boxes(512, 64, jitter=3, generator=g)
    assert corners.min(0).values.tolist() == tile_grid_boxes(1, 64, jitter=0)[0][0].tolist()
    assert (corners.max(0).values - corners.min(0).values).eq(3).all()
    _, index = jigsaw_tiles(torch.zeros(4000, 1, 30, 30), permutation_set(10), generator=g)
    assert set(index.tolist()) == set(range(10))


def test_jigsaw_tiles_reject_bad_arguments():
    with pytest.raises(ValueError, match="no room"):
        jigsaw_tiles(torch.zeros(2, 3, 12, 12), permutation_set(10), gap=2, jitter=2)
    with pytest.raises(ValueError, match="perms"):
        jigsaw_tiles(torch.zeros(2, 3, 64, 64), permutation_set(10, grid=2))
    with pytest.raises(ValueError, match="gap"):
        jigsaw_tiles(torch.zeros(2, 3, 64, 64), permutation_set(10), gap=-1)


def test_grayscale_tiles_turns_about_two_thirds_grey_and_standardize_gives_unit_stats():
    g = torch.Generator().manual_seed(2)
    tiles = torch.rand(200, 9, 3, 5, 5, generator=g)
    grey = grayscale_tiles(tiles, generator=g)
    is_grey = (grey[:, :, 0] == grey[:, :, 1]).all(-1).all(-1) & (grey[:, :, 1] == grey[:, :, 2]).all(-1).all(-1)
    assert 0.62 < is_grey.float().mean().item() < 0.71
    kept = ~is_grey
    assert torch.equal(grey[kept], tiles[kept])
    luma = 0.299 * tiles[:, :, 0] + 0.587 * tiles[:, :, 1] + 0.114 * tiles[:, :, 2]
    assert torch.allclose(grey[is_grey][:, 0], luma[is_grey], atol=1e-6)
    z = standardize_tiles(tiles * 3 + 1)
    assert torch.allclose(z.mean(dim=(2, 3, 4)), torch.zeros(200, 9), atol=1e-5)
    assert torch.allclose(z.std(dim=(2, 3, 4), unbiased=False), torch.ones(200, 9), atol=1e-4)
