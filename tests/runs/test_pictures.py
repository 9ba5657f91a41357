"""`selfsup pictures`: every pretext picture writes a PNG, with and without a built method (the dense tasks with a
third column for the model's output)."""
import pytest
import torch
from PIL import Image

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


def _size(path):
    with Image.open(path) as im:
        return im.size


@pytest.mark.parametrize("name", ["colorization", "inpainting"])
def test_draw_without_a_method_shows_two_columns_and_with_one_three(name, tmp_path):
    images = torch.randint(0, 256, (3, 3, 16, 16), dtype=torch.uint8)
    alone = DRAWERS[name](images, tmp_path / "alone.png")
    channels = 1 if name == "colorization" else 3
    backbone = build_backbone("resnet18_v1", stem="small", width=0.125, in_channels=channels)
    method = build_method(name, backbone=backbone, augment=ViewAugment(16))
    with_model = DRAWERS[name](images, tmp_path / "model.png", method=method)
    (w2, h2), (w3, h3) = _size(alone), _size(with_model)
    assert h2 == h3 and w3 > w2 * 1.3  # three columns instead of two, same rows
    assert method.training  # drawing leaves the method as it found it


def test_draw_rejects_float_images(tmp_path):
    with pytest.raises(ValueError, match="uint8"):
        DRAWERS["inpainting"](torch.rand(2, 3, 8, 8), tmp_path / "x.png")
