"""`selfsup leaderboard`: one result file per finished cell, and the tables generated from those files alone."""
import json

import pytest
import yaml

from selfsup.cli import main
from selfsup.methods import METHODS
from selfsup.registry import InputError
from selfsup.runs.grid import GRID_DIR, load_grid, parse_grid, run_grid
from selfsup.runs.report import leaderboard as lb


@pytest.fixture(scope="module")
def finished_grid(tmp_path_factory):
    out = tmp_path_factory.mktemp("lb")
    data = yaml.safe_load((GRID_DIR / "tiny.yaml").read_text())
    data.update(out_dir=str(out / "grid"), eval={"train_subset": 500, "splits": ["val", "test"]})
    run_grid(parse_grid(data), print_fn=lambda line: None)
    return out


def test_bundled_leaderboard_grid_trains_every_method_but_colorization_for_minutes_on_one_backbone():
    g = load_grid("leaderboard")
    assert {c.method for c in g.cells} == set(METHODS.names()) - {"colorization"}
    seeds = {m: sorted(c.seed for c in g.cells if c.method == m) for m in {c.method for c in g.cells}}
    assert sorted(m for m, s in seeds.items() if s == [0, 1, 2]) == ["barlow_twins", "byol", "exemplar", "rotation",
                                                                    "simclr", "vicreg"]
    assert all(s in ([0], [0, 1, 2]) for s in seeds.values())
    assert g.budget.minutes and g.splits == ("val", "test") and {c.backbone for c in g.cells} == {"resnet18_v1"}
    assert all(cfg.data.name == "fashion_mnist" and cfg.data.split == "train" for cfg in g.configs.values())


def test_collect_writes_a_result_file_per_cell_with_provenance_and_both_splits(finished_grid, tmp_path):
    results = tmp_path / "results"
    written = lb.collect(finished_grid / "grid", results, print_fn=lambda line: None)
    assert sorted(p.name for p in written) == ["random_init.json", "raw_pixels.json",
                                               "rotation-resnet18_v1-w0.125-s0.json",
                                               "simclr-resnet18_v1-w0.125-s0.json"]
    cell = json.loads((results / "rotation-resnet18_v1-w0.125-s0.json").read_text())
    assert cell["steps"] == 4 and cell["epochs"] == pytest.approx(4 * 32 / 512)
    assert set(cell["val"]) == set(cell["test"]) == {"knn_top1"} and cell["val"] != cell["test"]
    assert cell["trained_by"][0]["machine"]["threads"] >= 1 and cell["trained_by"][0]["commit"]
    assert cell["config"]["data"]["split"] == "train"
    pixels = json.loads((results / "raw_pixels.json").read_text())
    assert 10.0 < pixels["val"]["knn_top1"] <= 100.0 and "linear_top1" not in pixels["test"]  # eval.linear: false


def test_tables_order_methods_by_validation_knn_and_the_readme_lists_every_method(tmp_path):
    results = tmp_path / "results"
    results.mkdir()

    def cell(method, val, test, seed=0):
        (results / f"{method}-s{seed}.json").write_text(json.dumps(
            {"kind": "method", "method": method, "seed": seed, "steps": 10, "epochs": 1.0, "images_per_s": 100.0,
             "train_minutes": 1.0, "val": {"knn_top1": val}, "test": {"knn_top1": test}, "trained_by": []}))

    cell("simclr", 70.0, 90.0)
    cell("rotation", 80.0, 60.0)
    cell("rotation", 82.0, 62.0, seed=1)
    (results / "raw_pixels.json").write_text(json.dumps({"kind": "raw_pixels", "val": {"knn_top1": 81.0},
                                                         "test": {"knn_top1": 82.1}}))
    groups = lb.read_results(results)
    rows = lb.table(groups).splitlines()
    assert rows[2].startswith("| raw pixels") and "82.10" in rows[2]
    assert rows[3].startswith("| [`rotation`]") and "81.00 ± 1.41" in rows[3] and rows[4].startswith("| [`simclr`]")
    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n\nbefore\n{lb.README_START}\nold\n{lb.README_END}\nafter\n")
    lb.write_docs(results, tmp_path / "leaderboard.md", readme)
    text = readme.read_text()
    assert text.startswith("# x\n\nbefore\n") and text.endswith(f"{lb.README_END}\nafter\n") and "old" not in text
    assert all(f"[`{m}`]" in text for m in METHODS.names()) and "arxiv.org/abs/1803.07728" in text
    assert lb.table(groups) in (tmp_path / "leaderboard.md").read_text()
    readme.write_text("no markers")
    with pytest.raises(InputError, match="leaderboard markers"):
        lb.write_docs(results, tmp_path / "leaderboard.md", readme)


def test_the_committed_tables_are_those_the_result_files_make():
    groups = lb.read_results()
    if not groups:
        pytest.skip("no leaderboard result files committed yet")
    assert lb.table(groups) in lb.DOC.read_text(), "docs/leaderboard.md is stale: run `selfsup leaderboard`"
    assert lb.readme_table(groups) in lb.README.read_text(), "README's methods table is stale: `selfsup leaderboard`"


def test_cli_names_an_unfinished_or_missing_grid_folder(tmp_path, capsys):
    assert main(["leaderboard", str(tmp_path / "nope"), "--results", str(tmp_path / "r"), "--no-readme"]) == 2
    assert "no such grid folder" in capsys.readouterr().err
