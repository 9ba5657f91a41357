"""RotNet on tiny batches: all four rotations of every image, each once with its label."""
import pytest
import torch

from selfsup.methods.rotation import rotate_all
from tests.methods.tiny import backbone_inputs, geometric_views, tiny_method, uint8_batch

pytestmark = pytest.mark.usefixtures("one_thread")


def tiny(name, **kw):
    return tiny_method(name, augment=geometric_views(28), **kw)


def images(b=4, c=1, size=28):
    return uint8_batch(b, size, c, seed=3)


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
