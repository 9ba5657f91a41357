"""The online probe: logged on the validation split, cost recorded, and the training trajectory left unchanged."""
import json

import pytest
import torch
from safetensors.torch import load_file

from selfsup.registry import ConfigError
from selfsup.train.build import load_checked_config
from selfsup.train.loop import train

TINY = ["data.subset=256", "backbone.width=0.125", "train.batch_size=32", "train.precision=fp32", "train.steps=6",
        "train.progress=false", "train.log_every=2", "train.warmup_steps=0", "train.probe_bank=300",
        "train.probe_val=100"]


def _run(tmp_path, name, *extra):
    return train(load_checked_config("simclr", [f"out_dir={tmp_path}", f"name={name}", *TINY, *extra]))


def test_probe_logs_val_knn_and_leaves_the_weights_bit_identical(tmp_path):
    plain = _run(tmp_path, "plain")
    probed = _run(tmp_path, "probed", "train.probe_every=3")
    records = [json.loads(line) for line in (probed / "metrics.jsonl").read_text().splitlines()]
    probes = [r for r in records if "val_knn_top1" in r]
    assert [r["step"] for r in probes] == [3, 6] and all(0 <= r["val_knn_top1"] <= 100 for r in probes)
    assert all(r["probe_s"] > 0 for r in probes) and not any("val_knn_top1" in r for r in records if "loss" in r)
    a, b = (load_file(str(run / "backbone.safetensors")) for run in (plain, probed))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)  # BN statistics included
    losses = [[r["loss"] for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines()) if "loss" in r]
              for run in (plain, probed)]
    assert losses[0] == losses[1]


def test_probe_settings_are_checked(tmp_path):
    with pytest.raises(ConfigError, match=r"train.probe_every'=-1 must be in \[0, inf\)"):
        load_checked_config("simclr", [f"out_dir={tmp_path}", "train.probe_every=-1"])
    with pytest.raises(ConfigError, match=r"train.probe_bank'=0 must be in \[1, inf\)"):
        load_checked_config("simclr", [f"out_dir={tmp_path}", "train.probe_bank=0"])
