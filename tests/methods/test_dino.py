"""SwAV and DINO as methods: prototypes, queue, freezing, teacher, schedules, multi-crop views."""
import pytest
import torch

from selfsup.augment import ViewAugment
from selfsup.augment.multicrop import small_crop_augment
from selfsup.backbones import build_backbone
from selfsup.config import TrainConfig
from selfsup.data.batch import Batch
from selfsup.methods import build_method
from selfsup.train.step import TrainStep, ema_update

pytestmark = pytest.mark.usefixtures("one_thread")


def _batch(n=8, size=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    return Batch(torch.randint(0, 256, (n, 1, size, size), dtype=torch.uint8, generator=g), torch.arange(n))


def _method(name, **kwargs):
    torch.manual_seed(0)
    backbone = build_backbone("resnet18_v1", stem="small", width=0.125)
    return build_method(name, backbone=backbone, augment=ViewAugment(16), n_small_crops=2, small_size=8, **kwargs)


def _step(method):
    """The loop's own step for ``method``: SGD at lr 0.5, fp32."""
    return TrainStep(method, TrainConfig(steps=100, lr=0.5, precision="fp32"))


def test_small_crops_keep_every_large_setting_but_size_and_scale():
    large = ViewAugment(64, crop_scale=(0.3, 1.0), brightness=0.7, blur_p=0.5, mean=(0.3,), std=(0.2,))
    small = small_crop_augment(large, 14, (0.1, 0.4))
    assert (small.size, small.crop_scale) == (14, (0.1, 0.4))
    assert (small.brightness, small.blur_p, small.mean, small.std) == (0.7, 0.5, large.mean, large.std)
    assert (small.blur_kernel, large.blur_kernel) == (3, 7)  # re-derived from the size, not copied


def test_swav_prototypes_stay_unit_norm_and_are_frozen_for_the_first_steps():
    m = _method("swav", n_prototypes=10, proj_hidden_dim=16, proj_dim=8, freeze_prototypes_steps=2)
    step_fn = _step(m)
    with torch.no_grad():
        m.prototypes.weight.mul_(3.0)  # off the sphere: the next step must project them back
    before = torch.nn.functional.normalize(m.prototypes.weight, dim=1).clone()
    for step in range(2):
        out = step_fn(_batch(seed=step), step)
        assert m.prototypes.weight.grad is None  # frozen: the optimizer skips them
        torch.testing.assert_close(m.prototypes.weight, before)
        assert torch.isfinite(out.loss) and out.embedding.shape == (8, m.backbone.out_dim)
    step_fn(_batch(seed=2), 2)
    assert m.prototypes.weight.grad is not None
    assert not torch.allclose(m.prototypes.weight, before)
    m.training_step(_batch(seed=3), 3)  # every step starts by normalising them
    torch.testing.assert_close(m.prototypes.weight.norm(dim=1), torch.ones(10))


def test_swav_queue_fills_newest_first_is_checkpointed_and_changes_codes_once_full():
    m = _method("swav", n_prototypes=6, proj_hidden_dim=16, proj_dim=8, queue_length=16, queue_start_step=1)
    assert {"queue", "queue_filled"} <= set(m.state_dict())
    m.training_step(_batch(seed=0), 0)
    assert int(m.queue_filled) == 0  # not started yet
    m.training_step(_batch(seed=1), 1)
    assert int(m.queue_filled) == 8 and m.queue[:, 8:].abs().sum() == 0
    first = m.queue[:, :8].clone()
    m.training_step(_batch(seed=2), 2)
    assert int(m.queue_filled) == 16
    torch.testing.assert_close(m.queue[:, 8:], first)  # older rows move back
    scores = torch.nn.functional.normalize(torch.randn(8, 6), dim=1)
    c = m.prototypes.weight.float()
    with_queue = m._codes(scores, 0, c)
    m.queue_filled.zero_()
    without = m._codes(scores, 0, c)
    assert with_queue.shape == without.shape == (8, 6) and not torch.allclose(with_queue, without)
    restored = _method("swav", n_prototypes=6, proj_hidden_dim=16, proj_dim=8, queue_length=16)
    restored.load_state_dict(m.state_dict())
    torch.testing.assert_close(restored.queue, m.queue)


def test_swav_rejects_bad_arguments_by_name():
    for kwargs, name in (({"n_prototypes": 0}, "n_prototypes"), ({"epsilon": 0.0}, "epsilon"),
                         ({"queue_length": -1}, "queue_length")):
        with pytest.raises(ValueError, match=name):
            _method("swav", **kwargs)


def test_dino_teacher_starts_as_the_student_gets_no_gradient_and_follows_by_ema():
    m = _method("dino", out_dim=32, hidden_dim=16, bottleneck_dim=8, freeze_last_layer_steps=1)
    assert m.ema_momentum() == 0.996
    pairs = m.ema_pairs()
    for online, target in pairs:
        for p_o, p_t in zip(online.parameters(), target.parameters()):
            assert torch.equal(p_o, p_t) and not p_t.requires_grad
    step_fn = _step(m)
    last_before = m.head.last.detach().clone()
    step_fn(_batch(), 0)
    assert m.head.last.grad is None and torch.equal(m.head.last, last_before)  # frozen at step 0
    assert all(p.grad is None for p in m.teacher_backbone.parameters())
    assert m.center.abs().sum() > 0  # the centre moved off zero toward the teacher's mean
    step_fn(_batch(seed=1), 1)
    assert m.head.last.grad is not None
    teacher_before = [p.clone() for p in m.teacher_head.parameters()]
    ema_update(pairs, 0.9)
    for p_t, p_0, p_s in zip(m.teacher_head.parameters(), teacher_before, m.head.parameters()):
        torch.testing.assert_close(p_t, 0.9 * p_0 + 0.1 * p_s)


def test_dino_teacher_temperature_warms_up_linearly_then_stays():
    m = _method("dino", out_dim=32, hidden_dim=16, bottleneck_dim=8, teacher_temperature_warmup_steps=10)
    temps = [m.teacher_temperature_at(s) for s in (0, 5, 10, 1000)]
    assert temps == pytest.approx([0.04, 0.055, 0.07, 0.07])
    assert _method("dino", out_dim=32, hidden_dim=16).teacher_temperature_at(0) == 0.07  # no warm-up


def test_dino_head_last_layer_is_weight_normalized():
    m = _method("dino", out_dim=32, hidden_dim=16, bottleneck_dim=8)
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
            _method("dino", **kwargs)


@pytest.mark.parametrize("name", ["swav", "dino"])
def test_bundled_config_validates_and_builds(name):
    from selfsup.train.build import load_checked_config

    cfg = load_checked_config(name, ["backbone.width=0.125"])
    kwargs = dict(cfg.method)
    assert kwargs.pop("name") == name
    backbone = build_backbone(cfg.backbone["name"], stem="small", width=0.125)
    m = build_method(name, backbone=backbone, augment=ViewAugment(28, **cfg.augment), **kwargs)
    crops = m.multicrop(_batch(2, 28).images)
    assert [c.shape[-1] for c in crops] == [28, 28] + [14] * kwargs["n_small_crops"]


def test_small_crop_passes_leave_batchnorm_running_stats_alone():
    from selfsup.nn import running_stats_frozen

    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4)).train()
    x = torch.randn(6, 3, 8, 8) * 3 + 1
    with running_stats_frozen(net):
        y = net(x)
    assert torch.equal(net[1].running_mean, torch.zeros(4)) and torch.equal(net[1].running_var, torch.ones(4))
    assert net[1].momentum == 0.1  # restored
    torch.testing.assert_close(y, net(x))  # still normalised with the batch's statistics
    assert not torch.equal(net[1].running_mean, torch.zeros(4))  # outside the block they update again
