"""metrics.jsonl: a torn last line (a kill mid-write) is dropped with a warning; other damage names its line."""
import json

import pytest

from selfsup.registry import InputError
from selfsup.train.loop import train
from selfsup.train.metrics_log import read_records, truncate
from tests.train.test_loop import tiny_config
from tests.train.test_run_folder import _killed_at


def test_a_torn_last_line_is_dropped_with_a_warning_naming_the_file(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"step": 1, "loss": 2.0}\n{"step": 2, "lo')
    with pytest.warns(UserWarning, match=f"{path}: dropped its torn last line 2"):
        assert read_records(path) == [{"step": 1, "loss": 2.0}]


def test_a_bad_line_before_the_last_is_an_error_naming_it(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"step": 1}\nnot json\n{"step": 3}\n')
    with pytest.raises(InputError, match=f"{path} line 2 is not a JSON record"):
        read_records(path)


def test_truncate_keeps_records_up_to_the_step(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text("".join(json.dumps({"step": s}) + "\n" for s in (1, 2, 3)))
    truncate(path, 2)
    assert read_records(path) == [{"step": 1}, {"step": 2}]


def test_resume_goes_on_after_a_torn_metrics_line(tmp_path, monkeypatch):
    cfg = tiny_config(tmp_path, "torn", "train.steps=4", "train.ckpt_every=2")
    _killed_at(monkeypatch, cfg, 3)
    with open(cfg.run_dir / "metrics.jsonl", "a") as f:
        f.write('{"step": 4, "lo')
    with pytest.warns(UserWarning, match="torn last line"):
        train(cfg, resume=True)
    assert [r["step"] for r in read_records(cfg.run_dir / "metrics.jsonl")] == [1, 2, 3, 4]
