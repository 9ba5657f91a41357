"""The loop: resume equivalence, NaN stop, run-folder guard, exports."""
import json
import os

import pytest
import torch
from safetensors.torch import load_file

import selfsup.train.loop as loop
from selfsup.runs.folder import load_backbone
from selfsup.train import checkpoint
from selfsup.train.build import load_checked_config
from selfsup.train.loop import RunExistsError, train
from selfsup.train.step import NonFiniteLossError, TrainStep

TINY = ["data.subset=256", "backbone.width=0.125", "train.batch_size=32", "train.precision=fp32",
        "train.progress=false", "train.log_every=1", "train.warmup_steps=0"]


def tiny_config(tmp_path, name, *extra):
    return load_checked_config("rotation", [f"out_dir={tmp_path}", f"name={name}", *TINY, *extra])


def test_resume_after_kill_gives_identical_weights(tmp_path, monkeypatch):
    ref = train(tiny_config(tmp_path, "ref", "train.steps=6", "train.ckpt_every=3"))

    real_step = TrainStep.__call__

    def killed_at_step_4(self, batch, step):
        if step == 4:
            raise KeyboardInterrupt("simulated kill")
        return real_step(self, batch, step)

    cfg = tiny_config(tmp_path, "killed", "train.steps=6", "train.ckpt_every=3")
    monkeypatch.setattr(TrainStep, "__call__", killed_at_step_4)
    with pytest.raises(KeyboardInterrupt):
        train(cfg)
    assert checkpoint.load(cfg.run_dir / "last.pt")["step"] == 3
    monkeypatch.setattr(TrainStep, "__call__", real_step)
    resumed = train(cfg, resume=True)

    a, b = load_file(str(ref / "backbone.safetensors")), load_file(str(resumed / "backbone.safetensors"))
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    steps = [json.loads(line)["step"] for line in (resumed / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4, 5, 6]  # records after the checkpoint are dropped and logged again once


def test_checkpoint_loads_with_weights_only(tmp_path):
    run = train(tiny_config(tmp_path, "w", "train.steps=2"))
    state = torch.load(run / "last.pt", weights_only=True)
    assert state["step"] == 2 and "optimizer" in state and "rng" in state
    assert (run / "done.json").exists() and (run / "config.yaml").exists()


def test_nan_loss_stops_at_once_naming_the_step_and_keeps_checkpoint(tmp_path, monkeypatch):
    real_step = TrainStep.__call__

    def poisoned(self, batch, step):
        if step == 3:
            for p in self.method.parameters():
                p.data.fill_(float("nan"))
        return real_step(self, batch, step)

    monkeypatch.setattr(TrainStep, "__call__", poisoned)
    cfg = tiny_config(tmp_path, "nan", "train.steps=8", "train.ckpt_every=2")
    with pytest.raises(NonFiniteLossError, match="at step 3.*last good checkpoint.*step 2"):
        train(cfg)
    state = checkpoint.load(cfg.run_dir / "last.pt")
    assert state["step"] == 2
    assert all(torch.isfinite(v).all() for v in state["method"].values() if v.is_floating_point())
    assert not (cfg.run_dir / "done.json").exists()


def test_finished_run_folder_is_never_overwritten(tmp_path):
    cfg = tiny_config(tmp_path, "once", "train.steps=1")
    train(cfg)
    before = (cfg.run_dir / "backbone.safetensors").read_bytes()
    with pytest.raises(RunExistsError, match="already holds a run"):
        train(cfg)
    with pytest.raises(RunExistsError, match="finished"):
        train(cfg, resume=True)
    assert (cfg.run_dir / "backbone.safetensors").read_bytes() == before


def test_resume_without_checkpoint_is_an_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        train(tiny_config(tmp_path, "fresh", "train.steps=1"), resume=True)


def test_metrics_log_has_loss_throughput_and_collapse_monitors(tmp_path):
    run = train(tiny_config(tmp_path, "log", "train.steps=2"))
    rec = json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])
    assert {"loss", "lr", "img_per_s", "pretext_acc", "emb_std", "rankme", "collapsed"} <= rec.keys()


def test_collapsed_encoder_is_flagged_in_the_log_and_warned(tmp_path, monkeypatch):
    real_make = loop.method_from_config

    def collapsed(cfg, dataset, device):
        method = real_make(cfg, dataset, device)
        for m in method.backbone.modules():  # zero convs: every image maps to the same pre-logits
            if isinstance(m, torch.nn.Conv2d):
                torch.nn.init.zeros_(m.weight)
        return method

    monkeypatch.setattr(loop, "method_from_config", collapsed)  # what train() builds its method with
    cfg = load_checked_config(
        "simclr", [f"out_dir={tmp_path}", "name=collapsed", *TINY, "train.steps=2", "train.lr=1e-8"]
    )
    with pytest.warns(UserWarning, match="collapsed"):
        run = train(cfg)
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert all(r["collapsed"] for r in records) and records[-1]["emb_std"] < 1e-4


def test_healthy_encoder_is_not_flagged(tmp_path):
    run = train(load_checked_config("simclr", [f"out_dir={tmp_path}", "name=ok", *TINY, "train.steps=2"]))
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert not any(r["collapsed"] for r in records)



def test_compile_option_compiles_the_backbone_in_place(tmp_path, monkeypatch):
    """train.compile calls Module.compile on the backbone, which keeps state_dict keys (checkpoints and resume
    unchanged). Compiling for real takes tens of seconds on the CPU, so it is measured by `selfsup speed
    --compile`, not here."""
    compiled = []
    monkeypatch.setattr(torch.nn.Module, "compile", lambda self, *a, **k: compiled.append(self))
    train(tiny_config(tmp_path, "plain", "train.steps=1"))
    assert compiled == []
    run = train(tiny_config(tmp_path, "c", "train.compile=true", "train.steps=1"))
    assert len(compiled) == 1 and type(compiled[0]).__name__ == type(load_backbone(run)[0]).__name__


def test_a_checkpoint_with_non_finite_state_is_never_written(tmp_path, monkeypatch):
    """A finite loss can come with infinite BN statistics; resuming from them would fail at once."""
    real_step = TrainStep.__call__

    def blown_up(self, batch, step):
        out = real_step(self, batch, step)
        if step == 2:  # after step 3's update; the next checkpoint is at step 4
            next(b for n, b in self.method.named_buffers() if "running_var" in n).fill_(float("inf"))
        return out

    monkeypatch.setattr(TrainStep, "__call__", blown_up)
    cfg = tiny_config(tmp_path, "inf", "train.steps=8", "train.ckpt_every=2")
    with pytest.raises(NonFiniteLossError, match=r"running_var is NaN or infinite at step 4; stopped without saving.*"
                                                 r"last good checkpoint.*\(step 2\)"):
        train(cfg)
    assert checkpoint.load(cfg.run_dir / "last.pt")["step"] == 2


def test_a_malformed_checkpoint_is_one_line_naming_the_file(tmp_path):
    from selfsup.registry import InputError

    bad = tmp_path / "last.pt"
    bad.write_bytes(b"PK\x03\x04 this is not a checkpoint")
    with pytest.raises(InputError, match=f"{bad} is not a selfsup checkpoint"):
        checkpoint.load(bad)


def test_a_checkpoint_carrying_code_runs_nothing(tmp_path):
    from selfsup.registry import InputError

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {tmp_path / 'pwned'}",))

    bad = tmp_path / "last.pt"
    torch.save({"method": Evil()}, bad)
    with pytest.raises(InputError, match="cannot be read safely"):
        checkpoint.load(bad)
    assert not (tmp_path / "pwned").exists()
