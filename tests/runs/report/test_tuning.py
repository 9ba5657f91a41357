"""`selfsup tuning`: variants scored on the validation split only, compared with the config before tuning."""
import json

import pytest
import yaml

from selfsup.cli import main
from selfsup.data.splits import LOCK_ENV, is_test_locked
from selfsup.registry import InputError
from selfsup.runs import grid as grid_module
from selfsup.runs.grid import GRID_DIR, load_grid, parse_grid, run_grid
from selfsup.runs.report import leaderboard as lb
from selfsup.runs.report import tuning as tu


@pytest.fixture(scope="module")
def tuned_grid(tmp_path_factory):
    """The tiny grid as a tuning grid (validation only), noting whether the test split was locked in training."""
    out = tmp_path_factory.mktemp("tune")
    data = yaml.safe_load((GRID_DIR / "tiny.yaml").read_text())
    data.update(out_dir=str(out / "grid"), eval={"train_subset": 500, "splits": ["val"]})
    data["methods"] = ["rotation", {"config": "rotation", "label": "rotation-lr1", "overrides": {"train.lr": 1.0}}]
    locked = []
    train = grid_module.train
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv(LOCK_ENV, raising=False)
        mp.setattr(grid_module, "train", lambda *a, **k: (locked.append(is_test_locked()), train(*a, **k))[1])
        run_grid(parse_grid(data), print_fn=lambda line: None)
        assert not is_test_locked(), "the lock must end with the grid"
    return out, locked


def test_the_tuning_grid_trains_as_the_leaderboard_does_and_scores_validation_only():
    tune, board = load_grid("tune"), load_grid("leaderboard")
    assert tune.splits == ("val",) and tune.budget == board.budget
    assert {(c.backbone, c.width, c.seed) for c in tune.cells} <= {(c.backbone, c.width, c.seed) for c in board.cells}
    raw = {name: yaml.safe_load((GRID_DIR / f"{name}.yaml").read_text()) for name in ("tune", "leaderboard")}
    assert raw["tune"]["overrides"] == raw["leaderboard"]["overrides"] and raw["tune"]["backbones"] == raw[
        "leaderboard"]["backbones"]
    assert {c.config for c in tune.cells} <= {c.config for c in board.cells}
    for cell in tune.cells:  # the step count of the cell it is compared with, however fast this CPU is
        before = tu.RESULTS_DIR / f"{cell.config}-before.json"
        if not before.exists():
            before = lb.RESULTS_DIR / f"{cell.config}-{cell.backbone}-w{cell.width:g}-s0.json"
        assert cell.steps == json.loads(before.read_text())["steps"], cell.name


def test_a_grid_that_scores_no_test_split_trains_with_the_test_split_locked(tuned_grid):
    _, locked = tuned_grid
    assert locked == [True, True]


def test_collect_and_the_page_compare_each_variant_with_its_leaderboard_cell_before_tuning(tuned_grid, tmp_path):
    out, _ = tuned_grid
    board = tmp_path / "board"
    board.mkdir()
    with pytest.raises(InputError, match="no seed-0 leaderboard cell of 'rotation'"):
        tu.collect(out / "grid", tmp_path / "results", board, print_fn=lambda line: None)
    plain = tu.lb.cell_result(out / "grid" / "rotation-resnet18_v1-w0.125-s0", ("val",))
    assert "test" not in plain and "knn_top1" in plain["val"]
    (board / "rotation-s0.json").write_text(json.dumps(plain))
    results = tmp_path / "results"
    written = tu.collect(out / "grid", results, board, print_fn=lambda line: None)
    assert sorted(p.name for p in written) == ["rotation-before.json", "rotation-lr1-resnet18_v1-w0.125-s0.json",
                                               "rotation-resnet18_v1-w0.125-s0.json"]
    records = tu.read_results(results)["rotation"]
    assert [r["kind"] for r in records] == ["before", "variant", "variant"]
    page = tmp_path / "tuning.md"
    tu.write_docs(results, page, board)
    rows = {line.split(" | ")[0]: line for line in page.read_text().splitlines() if line.startswith("| rotation")}
    assert "`train.lr=1.0`" in rows["| rotation-lr1"] and rows["| rotation-lr1"].endswith("|  |")
    assert rows["| rotation"].endswith("| yes |"), "the variant equal to the leaderboard cell is the bundled one"
    assert main(["tuning", "--results", str(results), "--doc", str(tmp_path / "again.md")]) == 0
    assert rows["| rotation-lr1"].split(" | ")[:5] == next(
        line for line in (tmp_path / "again.md").read_text().splitlines() if line.startswith("| rotation-lr1")).split(
        " | ")[:5]


def test_differences_name_changed_added_and_removed_keys_but_not_the_calibrated_steps():
    before = {"name": "a", "train": {"lr": 0.3, "steps": 100}, "method": {"gap": 4}}
    after = {"name": "b", "train": {"lr": 0.1, "steps": 200}, "method": {"image_size": None}}
    assert tu.differences(after, before) == {"method.gap": None, "train.lr": 0.1}  # None and absent are alike


def test_the_committed_tuning_page_is_the_one_the_result_files_make(tmp_path):
    if not tu.read_results():
        pytest.skip("no tuning result files committed yet")
    tu.write_docs(doc=tmp_path / "tuning.md")
    assert (tmp_path / "tuning.md").read_text() == tu.DOC.read_text(), "docs/tuning.md is stale: run `selfsup tuning`"
