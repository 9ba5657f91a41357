"""MoCo on tiny batches: its queue of unit keys, clamped to the dataset, and the BN head option."""
import pytest
import torch

from tests.methods.tiny import tiny_method, uint8_batch

pytestmark = pytest.mark.usefixtures("one_thread")

SMALL_HEADS = {"moco": dict(queue_size=20, proj_hidden_dim=32, proj_dim=16)}  # tiny heads keep the step cheap


def make(name, **kwargs):
    return tiny_method(name, **{**SMALL_HEADS[name], **kwargs})


def batch(n=8):
    return uint8_batch(n, 16, seed=0)


def test_moco_step_enqueues_its_unit_keys_and_checkpoints_them():
    moco = make("moco")
    before = moco.queue.features.clone()
    moco.training_step(batch(8), 0)
    assert int(moco.queue.ptr) == 8
    assert not torch.equal(moco.queue.features[:8], before[:8]) and torch.equal(moco.queue.features[8:], before[8:])
    assert torch.allclose(moco.queue.features[:8].norm(dim=1), torch.ones(8), atol=1e-5)
    assert {"queue.features", "queue.ptr"} <= set(moco.state_dict())


def test_moco_queue_longer_than_dataset_is_clamped_with_a_warning():
    with pytest.warns(UserWarning, match="queue_size=20 exceeds"):
        moco = make("moco", num_samples=12)
    assert len(moco.queue) == 12


def test_moco_head_with_bn_option_trains_a_step():
    out = make("moco", proj_bn=True).training_step(batch(8), 0)
    assert torch.isfinite(out.loss)
