"""PIRL on tiny batches: lambda weighting of the two NCE terms, the transforms' heads, negatives from the bank."""
import math

import pytest
import torch
import torch.nn.functional as F

from selfsup.losses.nce import nce_loss
from selfsup.methods.pirl import pirl_loss, random_rotation
from tests.methods.tiny import geometric_views, tiny_method, uint8_batch

pytestmark = pytest.mark.usefixtures("one_thread")


def tiny(name, num_samples=20, **kw):
    return tiny_method(name, augment=geometric_views(28), num_samples=num_samples, **kw)


def batch(index=(3, 5, 11, 12)):
    return uint8_batch(len(index), 28, seed=3, index=torch.tensor(index))


def test_pirl_loss_weights_the_transformed_term_by_lambda():
    a, b = torch.tensor(2.0), torch.tensor(6.0)
    assert pirl_loss(a, b, 0.5).item() == pytest.approx(4.0)
    assert pirl_loss(a, b, 0.25).item() == pytest.approx(0.25 * 2 + 0.75 * 6)


def test_pirl_step_is_lambda_times_transformed_nce_plus_rest_times_image_nce():
    m = tiny("pirl", transform="rotation", num_negatives=6, loss_weight=0.3).eval()  # eval: BN deterministic
    m.log_z.fill_(math.log(20.0))
    b = batch()
    bank = m.memory.bank.clone()
    torch.manual_seed(7)
    got = m.training_step(b, 0).loss
    # the same draws by hand, in the method's order: view of I, view of I^t + rotation, negatives
    torch.manual_seed(7)
    f = F.normalize(m.f(m.encode(m.augment(b.images))), dim=1)
    g = F.normalize(m.g_rotation(m.encode(random_rotation(m.augment(b.images)))), dim=1)
    neg_index = torch.randint(20, (4, 6))

    def nce(z):
        pos = (z * bank[b.index]).sum(1)
        neg = torch.einsum("bd,bkd->bk", z, bank[neg_index])
        return nce_loss(pos, neg, num_samples=20, log_z=math.log(20.0))

    expected = 0.3 * nce(g) + 0.7 * nce(f)
    assert got.item() == pytest.approx(expected.item(), rel=1e-5)
    # the bank row of each image moved towards f(v_I) (not g): m <- normalize(0.5 m + 0.5 f)
    assert torch.allclose(m.memory.bank[b.index], F.normalize(0.5 * bank[b.index] + 0.5 * f.detach(), dim=1), atol=1e-5)


@pytest.mark.parametrize("loss_weight, frozen", [(1.0, "f"), (0.0, "g_rotation")])
def test_pirl_lambda_extremes_leave_the_other_head_without_gradient(loss_weight, frozen):
    m = tiny("pirl", transform="rotation", num_negatives=6, loss_weight=loss_weight)
    m.training_step(batch(), 0).loss.backward()
    assert getattr(m, frozen).weight.grad is None or not getattr(m, frozen).weight.grad.any()
    other = m.g_rotation if frozen == "f" else m.f
    assert other.weight.grad.abs().sum() > 0


def test_pirl_jigsaw_feeds_the_view_and_nine_tiles_per_image():
    m = tiny("pirl", transform="jigsaw", num_negatives=6, image_size=32)
    seen = []
    hook = m.backbone.register_forward_pre_hook(lambda mod, args: seen.append(tuple(args[0].shape)))
    out = m.training_step(batch(), 0)
    hook.remove()
    assert torch.isfinite(out.loss)
    assert seen[0] == (4, 3, 28, 28)  # the image
    assert seen[1][0] == 36 and seen[1][2] == seen[1][3] == 32 // 3 - 4  # 9 tiles per image, 6 px
    assert m.g_rotation is None


def test_pirl_both_transforms_has_both_heads_and_a_finite_loss():
    m = tiny("pirl", transform="both", num_negatives=6, image_size=32)
    assert m.g_jigsaw is not None and m.g_rotation is not None
    assert torch.isfinite(m.training_step(batch(), 0).loss)


def test_pirl_default_negatives_scale_with_the_dataset():
    assert tiny("pirl", num_samples=20, transform="rotation").num_negatives == 10
    with pytest.raises(ValueError, match="loss_weight"):
        tiny("pirl", transform="rotation", loss_weight=1.5)
    with pytest.raises(ValueError, match="num_negatives"):
        tiny("pirl", transform="rotation", num_negatives=20)
