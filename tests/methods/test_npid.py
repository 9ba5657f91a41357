"""NPID on tiny batches: memory-bank updates of the batch's rows, Z estimated once, negatives capped by the bank."""
import math

import pytest
import torch

from tests.methods.tiny import geometric_views, tiny_method, uint8_batch

pytestmark = pytest.mark.usefixtures("one_thread")


def tiny(name, num_samples=20, **kw):
    return tiny_method(name, augment=geometric_views(28), num_samples=num_samples, **kw)


def batch(index=(3, 5, 11, 12)):
    return uint8_batch(len(index), 28, seed=3, index=torch.tensor(index))


def test_npid_step_updates_only_the_batch_rows_and_fixes_z_once():
    m = tiny("npid", num_negatives=8)
    before = m.memory.bank.clone()
    b = batch()
    out = m.training_step(b, 0)
    assert torch.isfinite(out.loss) and out.embedding.shape == (4, m.backbone.out_dim)
    changed = (m.memory.bank != before).any(1)
    assert changed.nonzero().flatten().tolist() == [3, 5, 11, 12]
    log_z = m.log_z.item()
    assert math.isfinite(log_z)
    m.training_step(b, 1)
    assert m.log_z.item() == log_z  # estimated on the first batch, then a constant
    assert {"memory.bank", "log_z"} <= m.state_dict().keys()


def test_npid_negatives_are_capped_at_the_bank_size():
    assert tiny("npid", num_samples=10).num_negatives == 9
