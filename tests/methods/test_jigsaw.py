"""The classification pretext methods on tiny batches: what the backbone sees, labels, heads, state."""
import pytest
import torch

from selfsup.augment import ViewAugment
from selfsup.augment.jigsaw import crop_tiles, permutation_set, standardize_tiles, tile_grid_boxes
from selfsup.backbones import build_backbone
from selfsup.data import Batch
from selfsup.methods import build_method
from selfsup.backbones.adapters import TileMeanBackbone, tile_representation
from selfsup.methods.rotation import rotate_all

pytestmark = pytest.mark.usefixtures("one_thread")


def tiny(name, **kw):
    torch.manual_seed(0)
    backbone = build_backbone("resnet18_v1", width=0.125, stem="small")
    return build_method(name, backbone=backbone, augment=ViewAugment(size=28, jitter_p=0.0, gray_p=0.0), **kw)


def images(b=4, c=1, size=28):
    g = torch.Generator().manual_seed(3)
    return Batch(torch.randint(0, 256, (b, c, size, size), dtype=torch.uint8, generator=g), torch.arange(b))


def backbone_inputs(method, batch):
    """Shapes of everything the backbone is called on during one training step."""
    seen = []
    hook = method.backbone.register_forward_pre_hook(lambda m, args: seen.append(tuple(args[0].shape)))
    out = method.training_step(batch, 0)
    hook.remove()
    return seen, out


def test_rotation_feeds_all_four_rotations_of_every_image():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, 2, 5, 5, generator=g)
    views, labels = rotate_all(x)
    assert views.shape == (12, 2, 5, 5)
    for i in range(3):
        for k in range(4):
            rows = [j for j in range(12) if torch.equal(views[j], torch.rot90(x[i], k, dims=(1, 2)))]
            assert len(rows) == 1 and labels[rows[0]] == k  # each rotation exactly once, with its label
    method = tiny("rotation")
    seen, out = backbone_inputs(method, images(b=5))
    assert seen == [(20, 3, 28, 28)] and 0 <= out.metrics["pretext_acc"] <= 1


def test_jigsaw_step_sees_nine_tiles_per_image_and_carries_its_permutations():
    method = tiny("jigsaw", num_permutations=64)
    seen, out = backbone_inputs(method, images(b=4))
    assert seen == [(36, 3, 17, 17)]  # 9 tiles of 17 px from the 64 px view
    assert out.loss.ndim == 0 and out.embedding.shape == (4, method.backbone.out_dim)
    assert method.head.out_features == 64 and method.head.in_features == 9 * method.backbone.out_dim
    assert torch.equal(method.state_dict()["perms"], permutation_set(64))
    out.loss.backward()
    assert method.backbone.stages["stem"][0].weight.grad is not None


def test_jigsaw_rejects_tiles_that_do_not_fit():
    with pytest.raises(ValueError, match="no room"):
        tiny("jigsaw", image_size=None, gap=5, jitter=5)  # 28 px: 9 px cells


def test_tile_representation_is_the_mean_over_the_nine_centred_tiles():
    method = tiny("jigsaw").eval()
    x = torch.randn(2, 3, 28, 28)
    rep = tile_representation(method.backbone, x)
    assert rep.shape == (2, method.backbone.out_dim)
    up = torch.nn.functional.interpolate(x, size=64, mode="bilinear", align_corners=False)
    corners, side = tile_grid_boxes(2, 64, 3, 4, 0)
    tiles = standardize_tiles(crop_tiles(up, corners + 1, side))  # (2, 9, 3, 17, 17)
    with torch.no_grad():
        by_hand = torch.stack([method.backbone(tiles[:, k]) for k in range(9)], 1).mean(1)
    assert torch.allclose(rep, by_hand, atol=1e-5)


def test_relative_location_step_sees_patch_pairs():
    method = tiny("relative_location")
    seen, out = backbone_inputs(method, images(b=4, c=3))
    assert seen == [(8, 3, 15, 15)]  # centre and neighbour of each image, 15 px
    assert out.embedding.shape == (4, method.backbone.out_dim) and 0 <= out.metrics["pretext_acc"] <= 1
    assert tiny("relative_location", chroma="drop").training_step(images(b=4, c=3), 0).loss.isfinite()
    with pytest.raises(Exception, match="chroma"):
        tiny("relative_location", chroma="grey")


def test_exemplar_step_sees_n_views_per_image():
    method = tiny("exemplar", n_views=3, embed_dim=16)
    seen, out = backbone_inputs(method, images(b=4))
    assert seen == [(12, 3, 28, 28)]
    assert out.loss.item() >= 0 and 0 <= out.metrics["pretext_acc"] <= 1
    with pytest.raises(Exception, match="n_views"):
        tiny("exemplar", n_views=1)


def test_tile_mean_backbone_offers_the_tile_representation_to_the_evaluation_tools():
    method = tiny("jigsaw").eval()
    wrapped = TileMeanBackbone(method.backbone, image_size=64, gap=2, jitter=2)
    x = torch.randn(2, 3, 28, 28)
    assert torch.equal(wrapped.features(x, ("pre_logits",))["pre_logits"], tile_representation(method.backbone, x))
    assert wrapped(x).shape == (2, method.backbone.out_dim) and wrapped.out_dim == method.backbone.out_dim
    with pytest.raises(Exception, match="block1"):
        wrapped.features(x, ("block1",))
