"""The command line fails early and clearly on bad input."""
import subprocess
import sys

import pytest

from selfsup.cli import main


def test_bad_config_key_exits_2_naming_the_key(capsys):
    assert main(["train", "simclr", "train.lrr=0.1"]) == 2
    err = capsys.readouterr().err
    assert "'train.lrr'" in err and "did you mean 'train.lr'" in err


def test_bad_dataset_path_fails_before_training(tmp_path, capsys):
    code = main(["train", "rotation", f"out_dir={tmp_path}", "data.root=/no/such/folder", "train.progress=false"])
    assert code == 2
    assert "/no/such/folder" in capsys.readouterr().err
    assert not (tmp_path / "rotation-fmnist").exists()


def test_console_script_entry_point_runs():
    out = subprocess.run([sys.executable, "-m", "selfsup.cli", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "demo" in out.stdout


def test_eval_writes_json_beside_the_run_for_trained_and_random_init(tmp_path, capsys):
    import json

    assert main(["train", "rotation", f"out_dir={tmp_path}", "name=r", "data.subset=256", "backbone.width=0.125",
                 "train.steps=2", "train.warmup_steps=0", "train.batch_size=32", "train.progress=false",
                 "eval.linear=false", "eval.precision=fp32"]) == 0
    assert main(["eval", str(tmp_path / "r")]) == 0
    assert "knn_top1" in capsys.readouterr().out
    assert main(["eval", str(tmp_path / "r"), "--random-init"]) == 0
    trained = json.loads((tmp_path / "r" / "eval.json").read_text())
    random_init = json.loads((tmp_path / "r" / "eval_random_init.json").read_text())
    assert trained["weights"] == "trained" and random_init["weights"] == "random_init"
    assert 10 < trained["knn_top1"] <= 100 and trained["test_split"] == "test"
    assert trained["precision"] == random_init["precision"] == "fp32"  # eval.precision reached the protocols


def test_eval_of_a_folder_that_is_not_a_run_is_a_clear_error(tmp_path, capsys):
    assert main(["eval", str(tmp_path)]) == 2
    assert "not a selfsup run folder" in capsys.readouterr().err


def test_pictures_command_writes_one_png_per_task(tmp_path, capsys):
    assert main(["pictures", "--out", str(tmp_path), "--tasks", "rotation", "inpainting"]) == 0
    assert sorted(p.name for p in tmp_path.glob("*.png")) == ["inpainting.png", "rotation.png"]
    assert main(["pictures", "--out", str(tmp_path), "--tasks", "telepathy"]) == 2
    assert "no picture for ['telepathy']" in capsys.readouterr().err


def test_overrides_after_options_are_applied_and_unknown_arguments_fail(capsys):
    assert main(["speed", "rotation", "--data-only", "--steps", "1", "data.subset=64", "train.batch_size=4"]) == 0
    assert "1 batches of 4" in capsys.readouterr().out  # the override after the options took effect
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "rotation", "--bogus"])
    assert exit_info.value.code == 2 and "unrecognized arguments: --bogus" in capsys.readouterr().err


def test_a_bug_keeps_its_traceback_instead_of_the_one_line_bad_input_exit(monkeypatch):
    import selfsup.runs.evaluate as evaluate

    def broken(*args, **kwargs):
        raise ValueError("an internal inconsistency")  # a bug, not something the user typed

    monkeypatch.setattr(evaluate, "evaluate_run", broken)
    with pytest.raises(ValueError, match="internal inconsistency"):
        main(["eval", "runs/anything"])


def test_a_nan_stop_is_one_line_with_the_checkpoint_and_exit_1(tmp_path, capsys):
    code = main(["train", "rotation", f"out_dir={tmp_path}", "name=nan", "data.subset=256", "backbone.width=0.125",
                 "train.batch_size=32", "train.progress=false", "train.steps=30", "train.lr=1e30",
                 "train.warmup_steps=0", "train.precision=fp32"])
    err = capsys.readouterr().err.strip()
    assert code == 1 and len(err.splitlines()) == 1, err
    assert err.startswith("selfsup train: ") and "stopped" in err


def test_bad_device_is_one_line(capsys):
    assert main(["train", "rotation", "train.device=tpu"]) == 2
    assert "train.device='tpu'" in capsys.readouterr().err


def test_resume_auto_is_an_option_value_and_other_values_stay_overrides(monkeypatch):
    from selfsup.train import loop

    seen = {}
    monkeypatch.setattr(loop, "train", lambda cfg, resume: seen.update(resume=resume, steps=cfg.train.steps) or "x")
    main(["train", "rotation", "--resume", "auto"])
    assert seen == {"resume": "auto", "steps": 2000}
    main(["train", "rotation", "--resume", "train.steps=500"])
    assert seen == {"resume": True, "steps": 500}


def test_the_module_docstring_lists_every_command():
    import argparse

    from selfsup import cli

    sub = next(a for a in cli.build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    commands = [a.dest for a in sub._choices_actions]  # aliases aside
    missing = [name for name in commands if f"    selfsup {name} " not in cli.__doc__]
    assert not missing, f"selfsup/cli.py's docstring does not list {missing}"
