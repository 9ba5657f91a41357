"""Contract tests generated from the registries: a new backbone, method, bundled config, grid or protocol is tested
here with no new test code.

Methods are built from their bundled config (each method has one, named after it) at a tiny size: ResNet-18 v1 of
width 0.125 with the small stem, a batch of 8 from the first 16 training images, fp32 on the CPU.
"""
from __future__ import annotations

import functools
import inspect
import json

import pytest
import torch
from torch import nn

from selfsup.backbones import BACKBONES, backbone_names, build_backbone
from selfsup.backbones.adapters import rgb_input
from selfsup.cli import main
from selfsup.config import CONFIG_DIR
from selfsup.eval import supervised
from selfsup.methods import METHODS, Method
from selfsup.registry import ConfigError
from selfsup.runs import evaluate
from selfsup.runs.evaluate import PROTOCOLS, RunEval
from selfsup.runs.grid import GRID_DIR, load_grid
from selfsup.train import checkpoint, speed
from selfsup.train.build import load_checked_config, load_train_data, make_backbone, make_loader, method_from_config
from selfsup.train.step import TrainStep, epoch_batches

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = 0.125  # width that keeps every backbone a few hundred thousand parameters


# ---- backbones: every name in BACKBONES -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_models() -> dict[str, nn.Module]:
    torch.manual_seed(0)
    return {name: build_backbone(name, width=TINY) for name in backbone_names()}


@pytest.mark.parametrize("name", backbone_names())
def test_forward_backward_at_32px_reaches_every_parameter(name, tiny_models):
    model = tiny_models[name].train()
    x = torch.randn(2, 3, 32, 32)
    out = model(x)
    assert out.shape == (2, model.out_dim)
    out.square().mean().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert not missing, f"no gradient for {missing[:3]}"
    model.zero_grad(set_to_none=True)


@pytest.mark.parametrize("name", backbone_names())
def test_forward_backward_at_224px_with_imagenet_stem(name):
    torch.manual_seed(0)
    takes_stem = "stem" in inspect.signature(BACKBONES.get(name)).parameters
    model = build_backbone(name, width=TINY, **({"stem": "imagenet"} if takes_stem else {})).train()
    out = model(torch.randn(2, 3, 224, 224))
    assert out.shape == (2, model.out_dim)
    assert torch.isfinite(out).all()
    out.square().mean().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert not missing, f"no gradient for {missing[:3]}"


@pytest.mark.parametrize("name", backbone_names())
def test_feature_names_ordered_and_shapes_match_features(name, tiny_models):
    model = tiny_models[name].eval()
    names = model.feature_names
    assert names[-1] == "pre_logits" and len(set(names)) == len(names)
    with torch.no_grad():
        feats = model.features(torch.randn(2, 3, 32, 32))
    assert tuple(feats) == names
    shapes = model.feature_shapes(32)
    assert {k: tuple(v.shape[1:]) for k, v in feats.items()} == shapes
    assert shapes["pre_logits"] == (model.out_dim,)


@pytest.mark.parametrize("name", backbone_names())
def test_features_subset_returned_in_network_order(name, tiny_models):
    model = tiny_models[name].eval()
    first, last = model.feature_names[0], model.feature_names[-1]
    with torch.no_grad():
        feats = model.features(torch.randn(1, 3, 32, 32), (last, first))
    assert tuple(feats) == (first, last)
    with pytest.raises(ConfigError, match="no_such_layer"):
        model.features(torch.randn(1, 3, 32, 32), ("no_such_layer",))


@pytest.mark.parametrize("name", backbone_names())
def test_unknown_option_raises_config_error_naming_it(name):
    with pytest.raises(ConfigError, match="not_an_option"):
        build_backbone(name, not_an_option=1)
    with pytest.raises(ConfigError, match="width"):
        build_backbone(name, width="wide")


@pytest.mark.parametrize("name", backbone_names())
def test_pre_logits_dim_sets_out_dim(name):
    model = build_backbone(name, width=TINY, pre_logits_dim=24)
    assert model.out_dim == 24
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 24)


@pytest.mark.parametrize("name", backbone_names())
def test_bf16_autocast_with_channels_last_gives_finite_outputs_and_gradients(name, tiny_models):
    model = tiny_models[name].train().to(memory_format=torch.channels_last)
    x = torch.randn(2, 3, 32, 32).to(memory_format=torch.channels_last)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(x)
    out.float().square().mean().backward()
    assert torch.isfinite(out.float()).all()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
    model.zero_grad(set_to_none=True)
    model.to(memory_format=torch.contiguous_format)


# ---- methods: every name in METHODS, built from its bundled config --------------------------------------------------

TINY_RUN = ["data.subset=16", "backbone.width=0.125", "train.batch_size=8", "train.precision=fp32", "train.steps=4",
            "train.warmup_steps=0"]
TINY_OPTIONS = {  # where a bundled setting does not fit 16 images
    "deepcluster": ["method.num_clusters=4"],
    "moco": ["method.queue_size=16"],
}
EMA_METHODS = [n for n in METHODS.names() if METHODS.get(n).ema_pairs is not Method.ema_pairs]


def tiny_config(name: str):
    return load_checked_config(name, [*TINY_RUN, *TINY_OPTIONS.get(name, [])])


@functools.cache
def stepped(name: str) -> tuple:
    """``name`` built as the loop builds it, after one training step of the loop's own TrainStep:
    (config, dataset, method, step, output); once per worker, the tests below only read it."""
    cfg = tiny_config(name)
    data = load_train_data(cfg)
    cpu = torch.device("cpu")
    method = method_from_config(cfg, data, cpu)
    batch = next(epoch_batches(make_loader(cfg, data, cpu), method, data, cpu))  # opens epoch 0 (DeepCluster clusters)
    step = TrainStep(method, cfg.train)
    return cfg, data, method, step, step(batch, 0)


@pytest.mark.parametrize("name", METHODS.names())
def test_every_method_has_a_bundled_config_named_after_it(name):
    assert (CONFIG_DIR / f"{name}.yaml").is_file()
    assert load_checked_config(name).method["name"] == name


@pytest.mark.parametrize("name", METHODS.names())
def test_one_train_step_gives_a_finite_loss_gradients_for_the_whole_backbone_and_its_embedding(name):
    _, _, method, _, out = stepped(name)
    assert out.loss.ndim == 0 and torch.isfinite(out.loss)
    grads = {n: p.grad for n, p in method.backbone.named_parameters()}
    missing = [n for n, g in grads.items() if g is None]
    assert not missing, f"no gradient for {missing[:3]}"
    assert all(torch.isfinite(g).all() for g in grads.values())
    assert sum(g.abs().sum() for g in grads.values()) > 0
    assert out.embedding.shape == (8, method.backbone.out_dim) and not out.embedding.requires_grad
    assert checkpoint.non_finite(method.state_dict()) is None  # else the loop refuses to save its checkpoint


def same(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Equal tensors, NaN equal to NaN."""
    return a.dtype == b.dtype and a.shape == b.shape and (torch.equal(a, b) or bool(
        a.is_floating_point() and torch.isclose(a, b, rtol=0, atol=0, equal_nan=True).all()))


@pytest.mark.parametrize("name", METHODS.names())
def test_state_dict_round_trips_into_a_freshly_built_copy(name):
    cfg, data, method, _, _ = stepped(name)
    state = method.state_dict()
    fresh = method_from_config(cfg, data)  # the same seeded init: only the step moved the trained copy's weights
    assert fresh.state_dict().keys() == state.keys()
    assert any(not same(v, state[k]) for k, v in fresh.state_dict().items()), "the check could not fail"
    fresh.load_state_dict(state)
    unequal = [k for k, v in fresh.state_dict().items() if not same(v, state[k])]
    assert not unequal, f"not restored: {unequal[:3]}"


@pytest.mark.parametrize("name", EMA_METHODS)
def test_momentum_targets_get_no_gradient_and_are_not_optimised(name):
    _, _, method, step, _ = stepped(name)
    targets = [t for _, t in method.ema_pairs()]
    assert targets and all(p.grad is None and not p.requires_grad for t in targets for p in t.parameters())
    optimised = {id(p) for g in step.optimizer.param_groups for p in g["params"]}
    assert not optimised & {id(p) for t in targets for p in t.parameters()}
    assert 0.9 <= method.ema_momentum() < 1


@pytest.mark.parametrize("name", METHODS.names())
def test_speed_measures_every_method(name, monkeypatch):
    # The matmul peaks do not depend on the method (tests/train/test_speed.py measures them): a constant here.
    monkeypatch.setattr(speed, "best_matmul_flops", lambda dtype, device, seconds: 1e12)
    r = speed.measure_speed(tiny_config(name), steps=1, warmup=1, matmul_seconds=0.01)
    assert r["method"] == name and r["precision"] == "fp32"
    assert r["backbone_inputs_per_step"] >= 8  # every image passes the backbone at least once
    assert r["images_per_s"] > 0 and r["bare_step_s"] > 0 and r["backbone_gflop_per_step"] > 0


# ---- bundled configs and grids: every file in selfsup/configs -------------------------------------------------------

CONFIGS = sorted(p.stem for p in CONFIG_DIR.glob("*.yaml"))
GRIDS = sorted(p.stem for p in GRID_DIR.glob("*.yaml"))


@pytest.mark.parametrize("name", CONFIGS)
def test_bundled_config_loads_and_validates_against_the_registries(name):
    cfg = load_checked_config(name)
    assert cfg.method["name"] in METHODS.names() and cfg.backbone["name"] in BACKBONES.names()


@pytest.mark.parametrize("name", GRIDS)
def test_bundled_grid_parses_and_every_cell_config_validates(name):
    g = load_grid(name)  # checks every cell's config as load_checked_config does
    assert g.cells and len(g.cells) == len(g.configs)
    assert all(p in PROTOCOLS.names() for p in g.protocols)


# ---- evaluation protocols: every name in PROTOCOLS ------------------------------------------------------------------


def test_every_protocol_has_its_own_key_and_a_summary_that_eval_help_lists(capsys, monkeypatch):
    keys = [PROTOCOLS.get(n).key for n in PROTOCOLS.names()]
    assert all(keys) and len(set(keys)) == len(keys)
    # argparse wraps at the terminal's width, even inside a word like fine-tuning
    monkeypatch.setenv("COLUMNS", "10000")
    with pytest.raises(SystemExit) as done:
        main(["eval", "--help"])
    assert done.value.code == 0
    text = capsys.readouterr().out
    for name in PROTOCOLS.names():
        assert PROTOCOLS.get(name).summary and f"{name}: {PROTOCOLS.get(name).summary}" in text


@pytest.fixture(scope="module")
def tiny_run_eval(tmp_path_factory, one_thread) -> RunEval:
    """What a protocol reads, at random init, scored on 64 training and 32 test Fashion-MNIST images."""
    cfg = load_checked_config("rotation", ["data.subset=64", "backbone.width=0.125", "train.precision=fp32"])
    train, test = load_train_data(cfg), load_train_data(cfg, split="test").subset(range(32))
    torch.manual_seed(cfg.train.seed)
    backbone = rgb_input(make_backbone(cfg).eval(), train.mean, train.std)
    return RunEval(cfg=cfg, run_dir=tmp_path_factory.mktemp("run"), backbone=backbone, init=backbone, random_init=False,
                   train=train, test=test, size=28, device=torch.device("cpu"), precision="fp32", suffix="",
                   pool_to=128, progress=False, cache_tag=evaluate.features_tag("random_init", "fp32", "fmnist", 64))


@pytest.mark.parametrize("name", PROTOCOLS.names_in_order())
def test_every_protocol_runs_and_returns_the_eval_json_entry_its_key_names(name, tiny_run_eval, monkeypatch):
    # A few SGD steps show that the label-using protocols run; how well they learn is tests/eval/test_supervised.py's.
    monkeypatch.setattr(evaluate, "sgd_probe", functools.partial(supervised.sgd_probe, steps=2, lrs=(0.1,)))
    monkeypatch.setattr(evaluate, "finetune", functools.partial(supervised.finetune, steps=2))
    protocol = PROTOCOLS.get(name)
    out = protocol.run(tiny_run_eval)
    assert protocol.key in out
    assert json.loads(json.dumps(out)) == out  # eval.json holds it as it is
