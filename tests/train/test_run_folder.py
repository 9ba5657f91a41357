"""The run folder while it trains: one writer, a resume that keeps its settings, no leftovers, clear path errors."""
import json
import os

import pytest
import yaml

from selfsup.registry import ConfigError, InputError
from selfsup.train import checkpoint, run_folder
from selfsup.train.loop import train
from selfsup.train.run_folder import RunLockedError, config_changes
from selfsup.train.step import TrainStep
from tests.train.test_loop import tiny_config


def _killed_at(monkeypatch, cfg, step):
    """Train ``cfg`` until a simulated kill at ``step``; its checkpoint is the last multiple of ckpt_every."""
    real = TrainStep.__call__

    def killed(self, batch, i):
        if i == step:
            raise KeyboardInterrupt("simulated kill")
        return real(self, batch, i)

    monkeypatch.setattr(TrainStep, "__call__", killed)
    with pytest.raises(KeyboardInterrupt):
        train(cfg)
    monkeypatch.setattr(TrainStep, "__call__", real)


def test_a_second_writer_of_the_run_folder_is_refused_naming_the_holder(tmp_path):
    cfg = tiny_config(tmp_path, "busy", "train.steps=1")
    cfg.run_dir.mkdir(parents=True)
    with run_folder.locked(cfg.run_dir):
        with pytest.raises(RunLockedError, match=rf"being written by pid {os.getpid()} on "):
            train(cfg)
    assert not (cfg.run_dir / "metrics.jsonl").exists()
    train(cfg)  # the lock went with its holder
    assert (cfg.run_dir / "done.json").exists()


def test_resume_refuses_changed_settings_by_name_and_keeps_the_run(tmp_path, monkeypatch):
    cfg = tiny_config(tmp_path, "r", "train.steps=4", "train.ckpt_every=2")
    _killed_at(monkeypatch, cfg, 3)
    before = (cfg.run_dir / "last.pt").read_bytes()
    for change, named in (("train.lr=0.5", "train.lr: 0.1 in config.yaml, 0.5 now"),
                          ("backbone.width=0.25", "backbone.width: 0.125 in config.yaml, 0.25 now"),
                          ("method.name=simclr", "method.name: 'rotation'")):
        with pytest.raises(ConfigError, match=named):
            train(tiny_config(tmp_path, "r", "train.steps=4", "train.ckpt_every=2", change), resume=True)
    assert (cfg.run_dir / "last.pt").read_bytes() == before


def test_resume_may_extend_a_run_and_config_yaml_records_it(tmp_path, monkeypatch):
    cfg = tiny_config(tmp_path, "ext", "train.steps=4", "train.ckpt_every=2")
    _killed_at(monkeypatch, cfg, 3)
    train(tiny_config(tmp_path, "ext", "train.steps=6", "train.ckpt_every=2"), resume=True)
    assert yaml.safe_load((cfg.run_dir / "config.yaml").read_text())["train"]["steps"] == 6
    assert json.loads((cfg.run_dir / "done.json").read_text())["steps"] == 6


def test_resume_auto_starts_continues_and_leaves_a_finished_run_alone(tmp_path, monkeypatch):
    cfg = tiny_config(tmp_path, "auto", "train.steps=4", "train.ckpt_every=2")
    _killed_at(monkeypatch, cfg, 3)
    train(cfg, resume="auto")
    done = (cfg.run_dir / "backbone.safetensors").read_bytes()
    train(cfg, resume="auto")  # finished: returns at once
    assert (cfg.run_dir / "backbone.safetensors").read_bytes() == done
    fresh = tiny_config(tmp_path, "auto-new", "train.steps=1")
    train(fresh, resume="auto")
    assert (fresh.run_dir / "done.json").exists()


def test_config_changes_lists_dotted_keys_including_constructor_sections():
    saved = {"train": {"lr": 0.3, "steps": 4}, "method": {"name": "simclr"}}
    new = {"train": {"lr": 0.3, "steps": 8}, "method": {"name": "simclr", "temperature": 0.2}}
    assert config_changes(saved, new) == [("train.steps", 4, 8), ("method.temperature", None, 0.2)]


def test_a_fresh_start_clears_what_a_run_dead_before_its_first_checkpoint_left(tmp_path):
    cfg = tiny_config(tmp_path, "dead", "train.steps=2")
    cfg.run_dir.mkdir(parents=True)
    (cfg.run_dir / "metrics.jsonl").write_text('{"step": 7, "loss": 1.0}\n')
    (cfg.run_dir / ".last.pt.tmp12345").write_bytes(b"half a checkpoint")
    train(cfg)
    steps = [json.loads(line)["step"] for line in (cfg.run_dir / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2]
    assert not list(cfg.run_dir.glob(".*.tmp*"))


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_output_folder_is_one_line_naming_it(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        with pytest.raises(InputError, match=f"cannot write the run folder {ro}/x"):
            train(tiny_config(ro, "x", "train.steps=1"))
    finally:
        ro.chmod(0o700)


def test_an_output_path_through_a_file_is_one_line_naming_it(tmp_path):
    (tmp_path / "file").write_text("not a folder")
    with pytest.raises(InputError, match=f"cannot write the run folder {tmp_path}/file/x"):
        train(tiny_config(tmp_path / "file", "x", "train.steps=1"))


def test_a_construction_error_leaves_no_run_folder(tmp_path):
    with pytest.raises(ConfigError):
        train(tiny_config(tmp_path, "bad", "train.steps=1", "augment.blur_kernel=2"))
    assert not (tmp_path / "bad").exists()


def test_a_full_disk_keeps_the_previous_checkpoint_and_leaves_no_temporary_file(tmp_path, monkeypatch):
    cfg = tiny_config(tmp_path, "full", "train.steps=4", "train.ckpt_every=2")
    real_save = checkpoint.torch.save
    calls = []

    def full_after_first(obj, f, *a, **k):
        calls.append(f)
        if len(calls) > 1:
            open(f, "wb").write(b"partial")
            raise OSError(28, "No space left on device")
        return real_save(obj, f, *a, **k)

    monkeypatch.setattr(checkpoint.torch, "save", full_after_first)
    with pytest.raises(checkpoint.RunStopped, match="No space left on device; the previous one is kept"):
        train(cfg)
    assert checkpoint.load(cfg.run_dir / "last.pt")["step"] == 2
    assert not list(cfg.run_dir.glob(".*.tmp*"))
