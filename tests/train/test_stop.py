"""A signal stops the run at the next step boundary with a checkpoint and a "resume me" status."""
import os
import signal
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

from selfsup.registry import Preempted
from selfsup.train import checkpoint
from selfsup.train.loop import train
from selfsup.train.step import TrainStep
from selfsup.train.stop import RESUME_STATUS
from tests.train.test_loop import TINY, tiny_config


def _signal_at(monkeypatch, step, *signums):
    real = TrainStep.__call__

    def signalled(self, batch, i):
        if i == step:
            for s in signums:
                os.kill(os.getpid(), s)
        return real(self, batch, i)

    monkeypatch.setattr(TrainStep, "__call__", signalled)
    return real


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGUSR1])
def test_a_scheduler_signal_checkpoints_at_the_step_boundary_and_resumes_identically(tmp_path, monkeypatch, signum):
    ref = train(tiny_config(tmp_path, "ref", "train.steps=5", "train.ckpt_every=100"))
    cfg = tiny_config(tmp_path, "pre", "train.steps=5", "train.ckpt_every=100")
    handler = signal.getsignal(signum)
    real = _signal_at(monkeypatch, 2, signum)
    with pytest.raises(Preempted, match=rf"{signal.Signals(signum).name} received: stopped at step 3") as err:
        train(cfg)
    assert err.value.exit_status == RESUME_STATUS
    assert checkpoint.load(cfg.run_dir / "last.pt")["step"] == 3
    assert signal.getsignal(signum) == handler  # the run's handler goes with it
    monkeypatch.setattr(TrainStep, "__call__", real)
    resumed = train(cfg, resume="auto")
    a, b = load_file(str(ref / "backbone.safetensors")), load_file(str(resumed / "backbone.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_ctrl_c_checkpoints_and_says_how_to_resume_and_a_second_one_interrupts_at_once(tmp_path, monkeypatch):
    cfg = tiny_config(tmp_path, "c", "train.steps=5", "train.ckpt_every=100")
    _signal_at(monkeypatch, 1, signal.SIGINT)
    with pytest.raises(Preempted, match=r"interrupted \(Ctrl-C\) at step 2.*is good.*--resume") as err:
        train(cfg)
    assert err.value.exit_status == 130
    assert checkpoint.load(cfg.run_dir / "last.pt")["step"] == 2
    cfg2 = tiny_config(tmp_path, "cc", "train.steps=5", "train.ckpt_every=100")
    _signal_at(monkeypatch, 1, signal.SIGINT, signal.SIGINT)
    with pytest.raises(KeyboardInterrupt):
        train(cfg2)


def test_the_command_exits_with_the_resume_status_and_one_line(tmp_path):
    """The real signal path: the process gets SIGTERM from outside while it trains."""
    args = [sys.executable, "-m", "selfsup.cli", "train", "rotation", f"out_dir={tmp_path}", "name=sub",
            *TINY, "train.steps=100000", "train.ckpt_every=100000"]
    proc = subprocess.Popen(args, stderr=subprocess.PIPE, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    metrics = tmp_path / "sub" / "metrics.jsonl"
    for _ in range(600):  # wait until it trains (log_every=1: a record per step)
        if metrics.exists() and metrics.read_text().count("\n") >= 2:
            break
        try:
            proc.wait(timeout=0.2)
            break
        except subprocess.TimeoutExpired:
            pass
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == RESUME_STATUS, err
    lines = [line for line in err.splitlines() if line.startswith("selfsup train:")]
    assert len(lines) == 1 and "SIGTERM received" in lines[0] and "--resume auto" in lines[0]
    assert "Traceback" not in err
    assert checkpoint.load(tmp_path / "sub" / "last.pt")["step"] >= 2
