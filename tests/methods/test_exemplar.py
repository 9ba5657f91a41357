"""Exemplar CNN on tiny batches: n augmented views of every image."""
import pytest

from tests.methods.tiny import backbone_inputs, geometric_views, tiny_method, uint8_batch

pytestmark = pytest.mark.usefixtures("one_thread")


def tiny(name, **kw):
    return tiny_method(name, augment=geometric_views(28), **kw)


def images(b=4, c=1, size=28):
    return uint8_batch(b, size, c, seed=3)


def test_exemplar_step_sees_n_views_per_image():
    method = tiny("exemplar", n_views=3, embed_dim=16)
    seen, out = backbone_inputs(method, images(b=4))
    assert seen == [(12, 3, 28, 28)]
    assert out.loss.item() >= 0 and 0 <= out.metrics["pretext_acc"] <= 1
    with pytest.raises(Exception, match="n_views"):
        tiny("exemplar", n_views=1)
