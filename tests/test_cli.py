"""The command line fails early and clearly on bad input."""
import subprocess
import sys

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
