"""Jigsaw (Noroozi & Favaro) on tiny batches: nine tiles per image, the permutation set it carries, tiles that fit."""
import pytest
import torch

from selfsup.augment.jigsaw import permutation_set
from tests.methods.tiny import backbone_inputs, geometric_views, tiny_method, uint8_batch

pytestmark = pytest.mark.usefixtures("one_thread")


def tiny(name, **kw):
    return tiny_method(name, augment=geometric_views(28), **kw)


def images(b=4, c=1, size=28):
    return uint8_batch(b, size, c, seed=3)


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
