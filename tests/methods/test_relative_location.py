"""Relative location (Doersch et al.) on tiny batches: the backbone sees centre and neighbour patches."""
import pytest

from tests.methods.tiny import backbone_inputs, geometric_views, tiny_method, uint8_batch

pytestmark = pytest.mark.usefixtures("one_thread")


def tiny(name, **kw):
    return tiny_method(name, augment=geometric_views(28), **kw)


def images(b=4, c=1, size=28):
    return uint8_batch(b, size, c, seed=3)


def test_relative_location_step_sees_patch_pairs():
    method = tiny("relative_location")
    seen, out = backbone_inputs(method, images(b=4, c=3))
    assert seen == [(8, 3, 15, 15)]  # centre and neighbour of each image, 15 px
    assert out.embedding.shape == (4, method.backbone.out_dim) and 0 <= out.metrics["pretext_acc"] <= 1
    assert tiny("relative_location", chroma="drop").training_step(images(b=4, c=3), 0).loss.isfinite()
    with pytest.raises(Exception, match="chroma"):
        tiny("relative_location", chroma="grey")
