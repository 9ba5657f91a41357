"""Inpainting masks: the central square, random blocks, the overlap band."""
import pytest
import torch

from selfsup.augment.masks import border_band, central_square_mask, random_block_masks

pytestmark = pytest.mark.usefixtures("one_thread")


def test_central_square_hides_a_quarter_of_the_image_in_the_middle():
    m = central_square_mask(28)
    assert m.sum().item() == 14 * 14 and m.mean().item() == pytest.approx(0.25)
    assert torch.equal(m, m.flip(0)) and torch.equal(m, m.flip(1))  # centred
    assert m[7:21, 7:21].all() and m[6].sum() == 0
    with pytest.raises(ValueError, match="side_fraction"):
        central_square_mask(28, 0.0)


def test_random_blocks_cover_at_most_the_allowed_area_and_follow_the_generator():
    masks = random_block_masks(64, 32, blocks=5, block_fraction=0.25, max_area=0.25,
                               generator=torch.Generator().manual_seed(0))
    area = masks.mean(dim=(1, 2))
    assert masks.shape == (64, 32, 32) and set(masks.unique().tolist()) <= {0.0, 1.0}
    assert (area >= 64 / 1024).all() and (area <= 0.25).all()  # at least one 8x8 block, at most a quarter
    assert area.std() > 0  # blocks land in different places
    again = random_block_masks(64, 32, blocks=5, block_fraction=0.25, max_area=0.25,
                               generator=torch.Generator().manual_seed(0))
    assert torch.equal(masks, again)


def test_border_band_is_the_visible_ring_around_the_hole():
    m = torch.zeros(1, 1, 6, 6)
    m[..., 2:4, 2:4] = 1
    band = border_band(m, 1)
    assert band.sum().item() == 16 - 4
    assert (band * m).sum() == 0 and band[..., 1:5, 1:5].sum() == 12
    assert border_band(m, 0).sum() == 0
