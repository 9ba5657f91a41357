"""Every pretext picture writes a non-empty PNG, with and without a built method."""
import pytest
import torch

from selfsup.augment import ViewAugment
from selfsup.backbones import build_backbone
from selfsup.methods import build_method
from selfsup.runs.pictures import DRAWERS

pytestmark = pytest.mark.usefixtures("one_thread")

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("name", ["rotation", "jigsaw", "relative_location", "exemplar"])
@pytest.mark.parametrize("with_method", [False, True])
def test_each_picture_writes_a_png(name, with_method, tmp_path):
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (3, 1, 28, 28), dtype=torch.uint8, generator=g)
    method = None
    if with_method:
        backbone = build_backbone("resnet18_v1", width=0.125)
        method = build_method(name, backbone=backbone, augment=ViewAugment(size=28))
    path = DRAWERS[name](images, tmp_path / "sub" / f"{name}.png", method=method)
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC and len(data) > 2000


def test_pictures_reject_non_uint8_images(tmp_path):
    with pytest.raises(ValueError, match="uint8"):
        DRAWERS["rotation"](torch.zeros(2, 1, 28, 28), tmp_path / "x.png")
