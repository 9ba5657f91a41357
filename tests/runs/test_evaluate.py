"""`selfsup eval` (runs.evaluate): every protocol on a trained run, cached features, transfer, L-only encoders."""
import json

import pytest

from selfsup.cli import main
from selfsup.runs.evaluate import evaluate_run

pytestmark = pytest.mark.usefixtures("one_thread")


def test_eval_cli_runs_every_protocol_and_caches_features(tmp_path, capsys):
    assert main(["train", "rotation", f"out_dir={tmp_path}", "name=r", "data.subset=256", "backbone.width=0.125",
                 "train.steps=3", "train.warmup_steps=0", "train.batch_size=32", "train.progress=false"]) == 0
    run = tmp_path / "r"
    assert main(["eval", str(run), "--protocol", "knn", "linear", "clustering", "layers", "invariance",
                 "--train-subset", "1000", "--pool-to", "128"]) == 0
    r = json.loads((run / "eval.json").read_text())
    assert {"knn_top1", "linear_top1", "clustering", "layers", "invariance", "pretext_acc"} <= set(r)
    assert list(r["layers"]) == ["stem", "block1", "block2", "block3", "block4", "pre_logits"]
    assert set(r["clustering"]) == {"k=10", "k=20"} and 0 <= r["clustering"]["k=10"]["nmi"] <= 1
    assert set(r["invariance"]) == {"rotation", "jigsaw", "colour", "crop", "tiles"}
    assert (run / "invariance.npz").exists()
    cached = sorted(p.name for p in (run / "features").rglob("*.npy"))
    assert "pre_logits__poolnone.npy" in cached and "block2__pool128.npy" in cached
    mtimes = {p: p.stat().st_mtime_ns for p in (run / "features").rglob("*.npy")}
    assert main(["eval", str(run), "--protocol", "knn", "--train-subset", "1000"]) == 0  # reads the cache
    assert all(p.stat().st_mtime_ns == t for p, t in mtimes.items())
    assert json.loads((run / "eval.json").read_text())["layers"] == r["layers"]  # merged, not overwritten
    assert main(["eval", str(run), "--protocol", "knn", "linear", "--dataset", "elpv"]) == 0  # transfer to solar cells
    transfer = json.loads((run / "eval_on_elpv.json").read_text())
    assert transfer["dataset"] == "elpv" and transfer["test_images"] == 654
    assert 40 < transfer["knn_top1"] <= 100 and 40 < transfer["linear_top1"] <= 100  # 4 classes, 58% majority
    assert main(["eval", str(run), "--protocol", "knn", "telepathy"]) == 2
    assert "unknown protocol" in capsys.readouterr().err


def test_eval_cli_wraps_an_l_only_colorization_encoder(tmp_path):
    assert main(["train", "colorization", f"out_dir={tmp_path}", "name=c", "data.name=fashion_mnist",
                 "data.subset=256", "backbone.width=0.125", "train.steps=2", "train.warmup_steps=0",
                 "train.batch_size=16", "train.progress=false"]) == 0
    run = tmp_path / "c"
    assert main(["eval", str(run), "--protocol", "knn", "invariance", "--train-subset", "200"]) == 0
    r = json.loads((run / "eval.json").read_text())
    assert 0 <= r["knn_top1"] <= 100 and set(r["invariance"]) == {"rotation", "jigsaw", "colour", "crop", "tiles"}


def test_eval_refuses_splits_with_different_classes_and_names_the_way_out(tmp_path):
    """'photos' cuts its test split from other photos: kNN would compare unrelated labels, so it must fail."""
    assert main(["train", "colorization", f"out_dir={tmp_path}", "name=c", "data.subset=64", "backbone.width=0.125",
                 "train.steps=1", "train.warmup_steps=0", "train.batch_size=16", "train.progress=false"]) == 0
    with pytest.raises(ValueError, match=r"photos/test's classes .*--dataset"):
        evaluate_run(tmp_path / "c", ("knn",), progress=False)


def test_eval_split_val_scores_the_held_out_rows_and_never_reads_test(tmp_path, monkeypatch):
    assert main(["train", "rotation", f"out_dir={tmp_path}", "name=r", "data.subset=256", "backbone.width=0.125",
                 "train.steps=2", "train.warmup_steps=0", "train.batch_size=32", "train.progress=false"]) == 0
    run = tmp_path / "r"
    monkeypatch.setenv("SELFSUP_LOCK_TEST", "1")
    assert main(["eval", str(run), "--split", "val", "--protocol", "knn", "--train-subset", "1000"]) == 0
    r = json.loads((run / "eval_val.json").read_text())
    assert (r["train_split"], r["test_split"], r["test_images"]) == ("train", "val", 6000)
    assert not (run / "eval.json").exists()
    with pytest.raises(ValueError, match=r"test split is locked"):
        evaluate_run(run, ("knn",), progress=False, split="test")
    monkeypatch.delenv("SELFSUP_LOCK_TEST")
    assert main(["eval", str(run), "--protocol", "knn", "--train-subset", "1000"]) == 0  # default: test
    assert json.loads((run / "eval.json").read_text())["test_split"] == "test"
    assert sorted(p.name for p in (run / "features").glob("*/*")) == ["test", "train", "val"]


def test_eval_refuses_to_score_rows_the_probes_fit(tmp_path):
    assert main(["train", "rotation", f"out_dir={tmp_path}", "name=r", "data.subset=64", "backbone.width=0.125",
                 "train.steps=1", "train.warmup_steps=0", "train.batch_size=32", "train.progress=false",
                 "data.split=trainval"]) == 0
    for split in ("val", "train"):
        with pytest.raises(ValueError, match=rf"--split {split}: the probes' training split 'trainval'"):
            evaluate_run(tmp_path / "r", ("knn",), progress=False, split=split)


def test_evaluating_an_unfinished_run_warns_with_its_step(tmp_path, monkeypatch):
    from tests.train.test_loop import tiny_config
    from tests.train.test_run_folder import _killed_at

    cfg = tiny_config(tmp_path, "half", "train.steps=4", "train.ckpt_every=2")
    _killed_at(monkeypatch, cfg, 3)
    with pytest.warns(UserWarning, match=r"half has not finished training: evaluating its checkpoint at step 2 of "
                                         r"train.steps=4"):
        evaluate_run(cfg.run_dir, ("knn",), progress=False, train_subset=500)
