"""Pictures of the dense pretext tasks: a PNG with one row per image and one column per stage."""
import pytest
import torch
from PIL import Image

from selfsup.augment import ViewAugment
from selfsup.backbones import build_backbone
from selfsup.methods import build_method
from selfsup.runs.pictures import DRAWERS

pytestmark = pytest.mark.usefixtures("one_thread")


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
