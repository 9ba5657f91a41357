"""MoCo, MoCo v3, BYOL, SimSiam, Barlow Twins, VICReg: queue, momentum targets, shuffled BN, one training step."""
import pytest
import torch
from torch import nn

from selfsup.augment import ViewAugment
from selfsup.backbones import build_backbone
from selfsup.data.batch import Batch
from selfsup.methods import build_method
from selfsup.nn import FeatureQueue, grouped_forward, shuffled_forward
from selfsup.train.optim import build_optimizer

pytestmark = pytest.mark.usefixtures("one_thread")

SMALL_HEADS = {  # tiny heads keep the step cheap; the defaults are the papers'
    "moco": dict(queue_size=20, proj_hidden_dim=32, proj_dim=16),
    "mocov3": dict(hidden_dim=32, dim=16),
    "byol": dict(proj_hidden_dim=32, proj_dim=16, pred_hidden_dim=32),
    "simsiam": dict(proj_hidden_dim=32, dim=16, pred_hidden_dim=8),
    "barlow_twins": dict(proj_hidden_dim=32, proj_dim=16),
    "vicreg": dict(proj_hidden_dim=32, proj_dim=16),
}
WITH_TARGETS = ["moco", "mocov3", "byol"]


def make(name, **kwargs):
    torch.manual_seed(0)
    backbone = build_backbone("resnet18_v1", width=0.125, stem="small")
    return build_method(name, backbone=backbone, augment=ViewAugment(16), **{**SMALL_HEADS[name], **kwargs})


def batch(n=8):
    g = torch.Generator().manual_seed(0)
    return Batch(torch.randint(0, 256, (n, 1, 16, 16), dtype=torch.uint8, generator=g), torch.arange(n))


def test_queue_is_fifo_and_wraps_around():
    q = FeatureQueue(5, 2)
    q.enqueue(torch.tensor([[1.0, 1], [2, 2], [3, 3]]))
    assert int(q.ptr) == 3 and q.features[:3, 0].tolist() == [1, 2, 3]
    q.enqueue(torch.tensor([[4.0, 4], [5, 5], [6, 6]]))  # rows 3, 4, then back to 0
    assert int(q.ptr) == 1 and q.features[:, 0].tolist() == [6, 2, 3, 4, 5]
    q.enqueue(torch.tensor([[7.0, 7]]))  # the oldest left (2) goes next
    assert int(q.ptr) == 2 and q.features[:, 0].tolist() == [6, 7, 3, 4, 5]
    q.enqueue(torch.arange(14.0).reshape(7, 2))  # longer than the queue: only the newest 5 stay
    assert sorted(q.features[:, 0].tolist()) == [4, 6, 8, 10, 12]


def test_queue_travels_in_the_state_dict():
    q = FeatureQueue(4, 3)
    q.enqueue(torch.ones(3, 3))
    state = q.state_dict()
    assert set(state) == {"features", "ptr"}
    fresh = FeatureQueue(4, 3)
    fresh.load_state_dict(state)
    assert torch.equal(fresh.features, q.features) and int(fresh.ptr) == 3


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


@pytest.mark.parametrize("name", WITH_TARGETS)
def test_momentum_targets_get_no_gradient_and_are_not_optimised(name):
    method = make(name)
    out = method.training_step(batch(8), 0)
    out.loss.backward()
    targets = [t for _, t in method.ema_pairs()]
    assert targets and all(p.grad is None and not p.requires_grad for t in targets for p in t.parameters())
    assert all(p.grad is not None for p in method.backbone.parameters())
    optimised = {id(p) for g in build_optimizer("sgd", method, 0.1, 0.0).param_groups for p in g["params"]}
    assert not optimised & {id(p) for t in targets for p in t.parameters()}
    assert 0.9 <= method.ema_momentum() < 1


@pytest.mark.parametrize("name", sorted(SMALL_HEADS))
def test_one_step_gives_a_finite_loss_and_the_backbone_embedding(name):
    method = make(name)
    out = method.training_step(batch(8), 0)
    assert out.loss.ndim == 0 and torch.isfinite(out.loss)
    assert out.embedding.shape == (8, method.backbone.out_dim) and not out.embedding.requires_grad


def test_shuffled_and_grouped_forward_return_rows_in_input_order():
    x = torch.randn(8, 5)
    per_sample = nn.Linear(5, 3)
    with torch.no_grad():
        assert torch.allclose(shuffled_forward(per_sample, x, groups=4), per_sample(x), atol=1e-6)
        assert torch.allclose(grouped_forward(per_sample, x, groups=2), per_sample(x), atol=1e-6)


def test_shuffled_bn_normalises_each_group_on_its_own():
    bn = nn.BatchNorm1d(1, affine=False)
    x = torch.tensor([[0.0], [0.0], [0.0], [0.0], [10.0], [10.0], [10.0], [12.0]])
    whole = bn(x)
    grouped = grouped_forward(bn, x, groups=2)  # first group is constant: normalises to 0
    assert torch.allclose(grouped[:4], torch.zeros(4, 1)) and not torch.allclose(grouped, whole)
    with pytest.raises(ValueError, match="shuffle_bn_groups=3"):
        grouped_forward(bn, x, groups=3)


def test_builder_sizes_moco_queue_to_the_training_set():
    from selfsup.train.build import load_checked_config
    from selfsup.train.build import load_train_data, method_from_config

    cfg = load_checked_config("moco", ["data.subset=300", "backbone.width=0.125", "method.queue_size=512"])
    with pytest.warns(UserWarning, match="clamped to 300"):
        moco = method_from_config(cfg, load_train_data(cfg))
    assert len(moco.queue) == 300


def test_moco_head_with_bn_option_trains_a_step():
    out = make("moco", proj_bn=True).training_step(batch(8), 0)
    assert torch.isfinite(out.loss)


def test_simsiam_predictor_keeps_the_peak_lr_while_the_rest_decays(tmp_path):
    """SimSiam's predictor is trained at a fixed rate (the loop skips the schedule for groups marked fixed_lr)."""
    from selfsup.train.build import load_checked_config
    from selfsup.train import checkpoint
    from selfsup.train.loop import train

    method = make("simsiam")
    groups = build_optimizer("sgd", method, 0.1, 1e-4, fixed_lr=method.fixed_lr_modules()).param_groups
    fixed = {id(p) for g in groups if g.get("fixed_lr") for p in g["params"]}
    assert fixed == {id(p) for p in method.predictor.parameters()}
    assert sum(len(g["params"]) for g in groups) == sum(1 for p in method.parameters() if p.requires_grad)
    assert not make("simsiam", fix_predictor_lr=False).fixed_lr_modules()
    cfg = load_checked_config("simsiam", [f"out_dir={tmp_path}", "name=s", "data.subset=64", "backbone.width=0.125",
                                  "train.steps=4", "train.warmup_steps=1", "train.batch_size=16", "train.lr=0.05",
                                  "train.progress=false", "method.proj_hidden_dim=32", "method.dim=16",
                                  "method.pred_hidden_dim=8"])
    state = checkpoint.load(train(cfg) / "last.pt")
    lrs = {bool(g.get("fixed_lr")): g["lr"] for g in state["optimizer"]["param_groups"]}
    assert lrs[True] == 0.05 and lrs[False] < 0.05
