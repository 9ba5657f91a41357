"""SimSiam: the predictor keeps its learning rate while the rest follows the schedule."""
import pytest

from selfsup.train.optim import build_optimizer
from tests.methods.tiny import tiny_method

pytestmark = pytest.mark.usefixtures("one_thread")

SMALL_HEADS = {"simsiam": dict(proj_hidden_dim=32, dim=16, pred_hidden_dim=8)}  # tiny heads keep the step cheap


def make(name, **kwargs):
    return tiny_method(name, **{**SMALL_HEADS[name], **kwargs})


def test_simsiam_predictor_keeps_the_peak_lr_while_the_rest_decays(tmp_path):
    """SimSiam's predictor is trained at a fixed rate (the loop skips the schedule for groups marked fixed_lr)."""
    from selfsup.train import checkpoint
    from selfsup.train.build import load_checked_config
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
