"""Relative-location patch pairs and the chromatic-aberration remedies (selfsup.augment.patches)."""
import pytest
import torch

from selfsup.augment.patches import (
    NEIGHBOUR_CELLS,
    drop_colours,
    patch_pairs,
    project_out_green_magenta,
    resize_views,
)

pytestmark = pytest.mark.usefixtures("one_thread")


def pixel_box(patch, size):
    """(row0, row1, col0, col1) inclusive of a patch cut from an image whose pixels hold their flat index."""
    idx = patch[0].reshape(-1).long()
    r, c = idx // size, idx % size
    return int(r.min()), int(r.max()), int(c.min()), int(c.max())


@pytest.mark.parametrize("gap,jitter", [(4, 2), (1, 5), (0, 0)])
def test_patch_pairs_never_share_or_touch_pixels(gap, jitter):
    size, b = 64, 256
    x = torch.arange(size * size, dtype=torch.float64).view(1, 1, size, size).expand(b, 3, size, size).clone()
    g = torch.Generator().manual_seed(0)
    centre, neighbour, label = patch_pairs(x, gap, jitter, generator=g)
    t = 21 - gap - jitter
    assert centre.shape == neighbour.shape == (b, 3, t, t) and set(label.tolist()) == set(range(8))
    for i in range(b):
        c0, c1, c2, c3 = pixel_box(centre[i], size)
        n0, n1, n2, n3 = pixel_box(neighbour[i], size)
        assert c1 - c0 == t - 1 and n3 - n2 == t - 1  # solid squares
        dr, dc = divmod(NEIGHBOUR_CELLS[int(label[i])], 3)
        dr, dc = dr - 1, dc - 1  # -1, 0, 1: where the neighbour lies
        # Separation along each axis where they are neighbours: the pixels strictly between the boxes.
        between_rows = n0 - c1 - 1 if dr == 1 else c0 - n1 - 1 if dr == -1 else None
        between_cols = n2 - c3 - 1 if dc == 1 else c2 - n3 - 1 if dc == -1 else None
        for between in (between_rows, between_cols):
            assert between is None or between >= gap
        assert max(b for b in (between_rows, between_cols) if b is not None) >= gap
        assert not set(centre[i, 0].reshape(-1).tolist()) & set(neighbour[i, 0].reshape(-1).tolist())
        if dr == 0:  # same cell row: the rows overlap only as much as the jitter lets them differ
            assert abs(n0 - c0) <= jitter


def test_projection_removes_green_magenta_on_colour_and_leaves_grey_alone():
    g = torch.Generator().manual_seed(1)
    colour = torch.rand(4, 3, 6, 6, generator=g)
    out = project_out_green_magenta(colour)
    axis = torch.tensor([-1.0, 2.0, -1.0]).view(1, 3, 1, 1)
    assert (out * axis).sum(1).abs().max() < 1e-6  # nothing left along green-magenta
    assert not torch.allclose(out, colour)
    # What remains (luma-like sum and red-blue difference) is untouched.
    assert torch.allclose(out.sum(1), colour.sum(1), atol=1e-6)
    assert torch.allclose(out[:, 0] - out[:, 2], colour[:, 0] - colour[:, 2], atol=1e-6)
    grey = torch.rand(4, 1, 6, 6, generator=g).expand(4, 3, 6, 6)
    assert torch.allclose(project_out_green_magenta(grey), grey, atol=1e-6)


def test_drop_colours_keeps_one_channel_and_fills_the_others_with_faint_noise():
    g = torch.Generator().manual_seed(2)
    x = torch.rand(64, 3, 8, 8, generator=g)
    out = drop_colours(x, generator=g)
    kept = [(out[i] == x[i]).flatten(1).all(1) for i in range(64)]
    assert all(int(k.sum()) == 1 for k in kept)
    assert {int(k.float().argmax()) for k in kept} == {0, 1, 2}
    dropped = torch.stack([out[i][~kept[i]] for i in range(64)])  # (64, 2, 8, 8)
    assert dropped.abs().max() < 0.1 and dropped.std() > 0


def test_resize_views_to_the_tiling_size():
    x = torch.rand(2, 3, 28, 28)
    assert resize_views(x, 64).shape == (2, 3, 64, 64)
    assert resize_views(x, None) is x and resize_views(x, 28) is x
    flat = torch.full((1, 3, 28, 28), 0.3)
    assert torch.allclose(resize_views(flat, 64), torch.full((1, 3, 64, 64), 0.3))
