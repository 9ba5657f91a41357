"""`selfsup grid GRID.yaml`: strict grid files, resumable cells, failures recorded without stopping the grid."""
import json
import time

import pytest
import yaml

from selfsup.cli import main
from selfsup.registry import ConfigError
from selfsup.runs import grid as grid_mod
from selfsup.runs.grid import GRID_DIR, Budget, calibrate_steps, load_grid, parse_grid, run_grid, with_budget
from selfsup.train.step import TrainStep


def tiny(tmp_path, **changes):
    data = yaml.safe_load((GRID_DIR / "tiny.yaml").read_text())
    data["out_dir"] = str(tmp_path / "grid")
    data["eval"] = {"train_subset": 500}
    data.update(changes)
    return data


def test_bundled_grids_hold_the_backbones_and_widths_they_are_for():
    # every bundled grid parsing and validating is tests/test_contracts.py's
    g = load_grid("fmnist_small")
    assert {c.backbone for c in g.cells} == {"resnet18_v1", "resnet18_v2", "vgg19_bn"}
    assert all(cfg.data.subset == 10000 and cfg.backbone["width"] == 0.25 for cfg in g.configs.values())
    paper = load_grid("imagenet_paper")
    assert {c.width for c in paper.cells if c.backbone == "resnet50_v2"} == {1.0, 2.0, 3.0, 4.0}


def test_unknown_grid_key_is_an_error_naming_it(tmp_path):
    with pytest.raises(ConfigError, match=r"unknown grid key 'backbone'.*did you mean 'backbones'"):
        parse_grid({**tiny(tmp_path), "backbone": []})
    with pytest.raises(ConfigError, match=r"unknown grid key 'budget\.step'"):
        parse_grid(tiny(tmp_path, budget={"step": 3}))
    with pytest.raises(ConfigError, match=r"unknown protocol"):
        parse_grid(tiny(tmp_path, protocols=["knn", "lineaar"]))


def test_a_method_entry_may_set_its_own_seeds_and_a_repeated_cell_is_an_error(tmp_path):
    g = parse_grid(tiny(tmp_path, methods=["rotation", {"config": "simclr", "seeds": [0, 1, 2]}]))
    assert [c.name for c in g.cells] == ["rotation-resnet18_v1-w0.125-s0"] + [
        f"simclr-resnet18_v1-w0.125-s{s}" for s in (0, 1, 2)]
    assert g.configs["simclr-resnet18_v1-w0.125-s2"].train.seed == 2
    with pytest.raises(ConfigError, match=r"grid cell rotation-resnet18_v1-w0.125-s1 comes twice"):
        parse_grid(tiny(tmp_path, seeds=[1, 1]))


def test_a_method_entry_may_fix_its_steps_under_a_minute_budget(tmp_path, monkeypatch):
    def no_calibration(*args):
        raise AssertionError("a method entry with steps must not be timed")

    monkeypatch.setattr(grid_mod, "calibrate_steps", no_calibration)
    g = parse_grid(tiny(tmp_path, methods=[{"config": "rotation", "steps": 7}], budget={"minutes": 1}))
    (cell,) = g.cells
    cfg = grid_mod._start(cell, g, tmp_path, info := {})
    assert (cfg.train.steps, cell.steps, info) == (7, 7, {})
    with pytest.raises(ConfigError, match=r"methods\[0\]\.steps"):
        parse_grid(tiny(tmp_path, methods=[{"config": "rotation", "steps": 0}], budget={"minutes": 1}))


def test_bad_cell_config_fails_before_anything_runs(tmp_path, capsys):
    data = tiny(tmp_path, methods=["rotation", {"config": "simclr", "overrides": {"method.temprature": 0.1}}])
    with pytest.raises(ConfigError, match=r"simclr-resnet18_v1-w0.125-s0.*temprature"):
        parse_grid(data)
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(data))
    assert main(["bench", str(path)]) == 2
    assert "temprature" in capsys.readouterr().err
    assert not (tmp_path / "grid").exists()


def test_budget_scales_warmup_and_minutes_calibrate_a_whole_schedule(tmp_path):
    cfg = parse_grid(tiny(tmp_path, overrides={"data.subset": 256, "train.batch_size": 32})).configs[
        "rotation-resnet18_v1-w0.125-s0"]
    assert (cfg.train.steps, cfg.train.warmup_steps) == (2000, 100)  # the bundled config's own schedule
    assert with_budget(cfg, Budget(steps=400), 400).train.warmup_steps == 20  # same 5% warm-up
    steps, per_step = calibrate_steps(cfg, minutes=0.5, probe_steps=1)
    assert per_step > 0 and steps == max(2, int(30 / per_step))


def test_minute_budgets_count_deepclusters_clustering_in_every_epoch(monkeypatch):
    """Its step needs the pseudo-labels of its epoch hook, and the hook's cost recurs every epoch."""
    from selfsup.methods.deepcluster import DeepCluster
    from selfsup.train.build import load_checked_config

    hook = DeepCluster.on_epoch_start

    def slow_hook(self, *args):
        time.sleep(2.0)
        return hook(self, *args)

    monkeypatch.setattr(DeepCluster, "on_epoch_start", slow_hook)
    cfg = load_checked_config("deepcluster", ["data.subset=64", "backbone.width=0.125", "train.batch_size=16",
                                      "train.precision=fp32", "method.num_clusters=4"])
    steps, per_step = calibrate_steps(cfg, minutes=0.1, probe_steps=1)
    assert per_step >= 2.0 / (64 // 16) and steps == max(2, int(6 / per_step))


def test_grid_resumes_interrupted_cells_records_failures_and_skips_finished_ones(tmp_path, monkeypatch):
    broken = {"config": "rotation", "label": "broken", "overrides": {"data.subset": 10**7}}  # fails at run time
    g = parse_grid(tiny(tmp_path, methods=["rotation", broken, "simclr"]))
    out = g.out_dir
    real_step = TrainStep.__call__

    def interrupted(self, batch, step):
        if type(self.method).__name__ == "SimCLR" and step == 3:
            raise KeyboardInterrupt  # a killed job, after the checkpoint at step 2
        return real_step(self, batch, step)

    monkeypatch.setattr(TrainStep, "__call__", interrupted)
    lines = []
    with pytest.raises(KeyboardInterrupt):
        run_grid(g, print_fn=lines.append)
    rot, bad, sim = (out / c.name for c in g.cells)
    assert (rot / "done.json").exists() and "knn_top1" in json.loads((rot / "eval.json").read_text())
    assert "data.subset" in (bad / "error.txt").read_text()
    assert (sim / "last.pt").exists() and not (sim / "done.json").exists()
    assert any("FAILED" in line and "broken" in line for line in lines)
    # the architecture's random init is evaluated once, beside its first finished cell, with the same protocols
    assert "knn_top1" in json.loads((rot / "eval_random_init.json").read_text())
    assert any("random init of resnet18_v1" in line for line in lines)

    monkeypatch.setattr(TrainStep, "__call__", real_step)
    lines.clear()
    status = run_grid(g, print_fn=lines.append)
    assert status[sim.name]["status"] == "done" and status[sim.name]["started_as"] == "interrupted"
    assert status[bad.name]["status"] == "failed" and "data.subset" in status[bad.name]["error"]
    assert [r["step"] for r in map(json.loads, (sim / "metrics.jsonl").read_text().splitlines())] == [1, 2, 3, 4]
    assert not (sim / "eval_random_init.json").exists()  # same backbone and seed as rotation's: no second baseline
    assert "finished earlier, skipped" in lines[0]
    saved = json.loads((out / "grid_status.json").read_text())["cells"]
    assert saved[bad.name]["status"] == "failed" and saved[rot.name]["status"] == "done"

    mtimes = {p: p.stat().st_mtime_ns for cell in (rot, sim) for p in cell.rglob("*") if p.is_file()}
    trained = []

    def train_spy(cfg, resume):
        trained.append(cfg.name)
        raise RuntimeError("not trained in this test")

    monkeypatch.setattr(grid_mod, "train", train_spy)
    status = run_grid(g, print_fn=lines.append)
    assert trained == [bad.name]  # only the failed cell is tried again
    assert status[rot.name]["status"] == status[sim.name]["status"] == "done"
    assert mtimes == {p: p.stat().st_mtime_ns for cell in (rot, sim) for p in cell.rglob("*") if p.is_file()}

    g.cells = [c for c in g.cells if c.name == sim.name]  # `--only simclr*` later: its baseline is rotation's
    run_grid(g, print_fn=lines.append)
    assert not (sim / "eval_random_init.json").exists()


def test_only_runs_the_cells_whose_names_match_and_names_a_pattern_that_matches_none(capsys):
    assert main(["grid", "leaderboard", "--dry-run", "--only", "moco-*", "swav*"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0].rsplit("/", 1)[1] for line in lines[:-1]] == ["moco-resnet18_v1-w0.25-s0",
                                                                          "swav-resnet18_v1-w0.25-s0"]
    assert main(["grid", "leaderboard", "--dry-run", "--only", "nothing*"]) == 2
    assert "no cell of leaderboard matches" in capsys.readouterr().err
