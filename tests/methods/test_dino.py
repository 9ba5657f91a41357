"""DINO as a method: the EMA teacher, its temperature schedule, the weight-normalised head, multi-crop views."""
import pytest
import torch

from selfsup.train.step import ema_update
from tests.methods.tiny import bundled_crop_sides, loop_step, tiny_multicrop, uint8_batch

pytestmark = pytest.mark.usefixtures("one_thread")


def test_dino_teacher_starts_as_the_student_gets_no_gradient_and_follows_by_ema():
    m = tiny_multicrop("dino", out_dim=32, hidden_dim=16, bottleneck_dim=8, freeze_last_layer_steps=1)
    assert m.ema_momentum() == 0.996
    pairs = m.ema_pairs()
    for online, target in pairs:
        for p_o, p_t in zip(online.parameters(), target.parameters()):
            assert torch.equal(p_o, p_t) and not p_t.requires_grad
    step_fn = loop_step(m)
    last_before = m.head.last.detach().clone()
    step_fn(uint8_batch(), 0)
    assert m.head.last.grad is None and torch.equal(m.head.last, last_before)  # frozen at step 0
    assert all(p.grad is None for p in m.teacher_backbone.parameters())
    assert m.center.abs().sum() > 0  # the centre moved off zero toward the teacher's mean
    step_fn(uint8_batch(seed=1), 1)
    assert m.head.last.grad is not None
    teacher_before = [p.clone() for p in m.teacher_head.parameters()]
    ema_update(pairs, 0.9)
    for p_t, p_0, p_s in zip(m.teacher_head.parameters(), teacher_before, m.head.parameters()):
        torch.testing.assert_close(p_t, 0.9 * p_0 + 0.1 * p_s)


def test_dino_teacher_temperature_warms_up_linearly_then_stays():
    m = tiny_multicrop("dino", out_dim=32, hidden_dim=16, bottleneck_dim=8, teacher_temperature_warmup_steps=10)
    temps = [m.teacher_temperature_at(s) for s in (0, 5, 10, 1000)]
    assert temps == pytest.approx([0.04, 0.055, 0.07, 0.07])
    assert tiny_multicrop("dino", out_dim=32, hidden_dim=16).teacher_temperature_at(0) == 0.07  # no warm-up


def test_dino_head_last_layer_is_weight_normalized():
    m = tiny_multicrop("dino", out_dim=32, hidden_dim=16, bottleneck_dim=8)
    with torch.no_grad():
        m.head.last.mul_(7.0)  # the scale of v does not matter, only its direction
    x = torch.randn(5, m.backbone.out_dim)
    m.head.eval()
    logits = m.head(x)
    assert logits.shape == (5, 32) and logits.abs().max() <= 1.0 + 1e-5  # unit bottleneck . unit rows


def test_dino_rejects_bad_arguments_by_name():
    for kwargs, name in (({"momentum": 1.5}, "momentum"), ({"teacher_temperature": 0.0}, "teacher_temperature"),
                         ({"freeze_last_layer_steps": -1}, "freeze_last_layer_steps")):
        with pytest.raises(ValueError, match=name):
            tiny_multicrop("dino", **kwargs)


def test_bundled_config_builds_two_28px_views_and_its_14px_small_crops():
    sides, n_small = bundled_crop_sides("dino")
    assert sides == [28, 28] + [14] * n_small
