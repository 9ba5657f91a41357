"""SwAV as a method: unit-norm prototypes frozen at first, the queue of embeddings, multi-crop views."""
import pytest
import torch

from tests.methods.tiny import bundled_crop_sides, loop_step, tiny_multicrop, uint8_batch

pytestmark = pytest.mark.usefixtures("one_thread")


def test_swav_prototypes_stay_unit_norm_and_are_frozen_for_the_first_steps():
    m = tiny_multicrop("swav", n_prototypes=10, proj_hidden_dim=16, proj_dim=8, freeze_prototypes_steps=2)
    step_fn = loop_step(m)
    with torch.no_grad():
        m.prototypes.weight.mul_(3.0)  # off the sphere: the next step must project them back
    before = torch.nn.functional.normalize(m.prototypes.weight, dim=1).clone()
    for step in range(2):
        out = step_fn(uint8_batch(seed=step), step)
        assert m.prototypes.weight.grad is None  # frozen: the optimizer skips them
        torch.testing.assert_close(m.prototypes.weight, before)
        assert torch.isfinite(out.loss) and out.embedding.shape == (8, m.backbone.out_dim)
    step_fn(uint8_batch(seed=2), 2)
    assert m.prototypes.weight.grad is not None
    assert not torch.allclose(m.prototypes.weight, before)
    m.training_step(uint8_batch(seed=3), 3)  # every step starts by normalising them
    torch.testing.assert_close(m.prototypes.weight.norm(dim=1), torch.ones(10))


def test_swav_queue_fills_newest_first_is_checkpointed_and_changes_codes_once_full():
    m = tiny_multicrop("swav", n_prototypes=6, proj_hidden_dim=16, proj_dim=8, queue_length=16, queue_start_step=1)
    assert {"queue", "queue_filled"} <= set(m.state_dict())
    m.training_step(uint8_batch(seed=0), 0)
    assert int(m.queue_filled) == 0  # not started yet
    m.training_step(uint8_batch(seed=1), 1)
    assert int(m.queue_filled) == 8 and m.queue[:, 8:].abs().sum() == 0
    first = m.queue[:, :8].clone()
    m.training_step(uint8_batch(seed=2), 2)
    assert int(m.queue_filled) == 16
    torch.testing.assert_close(m.queue[:, 8:], first)  # older rows move back
    scores = torch.nn.functional.normalize(torch.randn(8, 6), dim=1)
    c = m.prototypes.weight.float()
    with_queue = m._codes(scores, 0, c)
    m.queue_filled.zero_()
    without = m._codes(scores, 0, c)
    assert with_queue.shape == without.shape == (8, 6) and not torch.allclose(with_queue, without)
    restored = tiny_multicrop("swav", n_prototypes=6, proj_hidden_dim=16, proj_dim=8, queue_length=16)
    restored.load_state_dict(m.state_dict())
    torch.testing.assert_close(restored.queue, m.queue)


def test_swav_rejects_bad_arguments_by_name():
    for kwargs, name in (({"n_prototypes": 0}, "n_prototypes"), ({"epsilon": 0.0}, "epsilon"),
                         ({"queue_length": -1}, "queue_length")):
        with pytest.raises(ValueError, match=name):
            tiny_multicrop("swav", **kwargs)


def test_bundled_config_builds_two_28px_views_and_its_14px_small_crops():
    sides, n_small = bundled_crop_sides("swav")
    assert sides == [28, 28] + [14] * n_small
