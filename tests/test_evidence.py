"""Every choice is made on validation data: the learning tests, the tuning scripts and the report's picks never
read the test split, which is there for final numbers only (selfsup.data.splits)."""
import ast
import importlib
import importlib.util
import json
from pathlib import Path

import pytest

from selfsup.data import load_dataset
from selfsup.data.splits import LOCK_ENV
from selfsup.registry import InputError
from selfsup.runs.report.html import best_run_per_method

ROOT = Path(__file__).resolve().parents[1]
LEARNING_MODULES = sorted((ROOT / "tests").rglob("test_learning*.py"))
SCRIPTS = sorted((ROOT / "scripts").glob("*.py"))
# a script importing any of these reads labelled data, so it must lock the test split before it imports selfsup
READS_DATA = ("selfsup.data", "selfsup.train.build", "selfsup.train.loop", "selfsup.runs", "selfsup.eval", "tests")


def test_the_learning_test_modules_are_found():
    assert {p.name for p in LEARNING_MODULES} >= {"test_learning.py", "test_learning_dense.py"}


@pytest.mark.parametrize("path", LEARNING_MODULES, ids=lambda p: p.name)
def test_every_learning_test_module_runs_with_the_test_split_locked(path):
    module = importlib.import_module(".".join(path.relative_to(ROOT).with_suffix("").parts))
    marks = module.pytestmark if isinstance(module.pytestmark, list) else [module.pytestmark]
    fixtures = {f for m in marks if m.name == "usefixtures" for f in m.args}
    assert "test_split_locked" in fixtures, f"{path.name}: pytestmark must use the test_split_locked fixture"


def test_under_the_lock_the_learning_measurement_runs_and_the_test_split_refuses(test_split_locked, tmp_path):
    from tests.methods.test_learning import measure

    with pytest.raises(InputError, match=LOCK_ENV):
        load_dataset("fashion_mnist", split="test")
    m = measure("rotation", ["train.steps=12", "train.batch_size=16", "data.subset=64"], {}, seed=0, tmp_path=tmp_path)
    assert 0.0 <= m["learned"] <= 100.0 and 0.0 <= m["baseline"] <= 100.0


def _imported_modules(tree: ast.AST) -> list[str]:
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.append(node.module)
    return names


def _sets_lock(stmt: ast.stmt) -> bool:
    """``os.environ["SELFSUP_LOCK_TEST"] = "1"`` at module level."""
    return (isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Subscript)
            and ast.unparse(stmt.targets[0].value) == "os.environ"
            and isinstance(stmt.targets[0].slice, ast.Constant) and stmt.targets[0].slice.value == LOCK_ENV
            and isinstance(stmt.value, ast.Constant) and stmt.value.value not in ("", "0"))


@pytest.mark.parametrize("path", SCRIPTS, ids=lambda p: p.name)
def test_every_script_that_reads_data_locks_the_test_split_first(path):
    tree = ast.parse(path.read_text())
    if not any(n.startswith(READS_DATA) for n in _imported_modules(tree)):
        return  # reads no dataset (e.g. times kernels on random tensors)
    for stmt in tree.body:
        if _sets_lock(stmt):
            return
        first_import = _imported_modules(stmt)
        assert not any(n.startswith(("selfsup", "tests")) for n in first_import), (
            f"{path.name}: imports {first_import[0]} before setting os.environ[{LOCK_ENV!r}]")
    pytest.fail(f"{path.name} reads labelled data but never sets os.environ[{LOCK_ENV!r}] at module level")


def test_the_report_picks_each_methods_best_run_on_validation_not_test():
    runs = [{"method": "simclr", "name": "a", "knn_top1": 90.0, "val": {"knn_top1": 70.0}},
            {"method": "simclr", "name": "b", "knn_top1": 80.0, "val": {"knn_top1": 75.0}},
            {"method": "rotation", "name": "c", "knn_top1": 99.0, "val": {}},
            {"method": "rotation", "name": "d", "knn_top1": 10.0, "val": {}}]
    assert [r["name"] for r in best_run_per_method(runs, "knn_top1")] == ["b", "c"]


def _margins_script():
    """scripts/learning_margins.py as a module (call with LOCK_ENV monkeypatched: the script sets it on import)."""
    spec = importlib.util.spec_from_file_location("learning_margins", ROOT / "scripts" / "learning_margins.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # sets the lock, as the script does
    return module


def test_every_ci_learning_margin_is_below_every_gain_measured_over_three_seeds(monkeypatch):
    monkeypatch.setenv(LOCK_ENV, "1")
    m = _margins_script()
    for case, (_, margin, _, suite) in m.cases().items():
        if suite != "CI":
            continue
        records = [r for p in m.RESULTS.glob(f"{case}-*-seed*.json") if (r := json.loads(p.read_text()))["case"] == case
                   and m.current(r)]
        groups = m._by_machine(records)
        assert any(len({r["seed"] for r in rs}) >= 3 for rs in groups.values()), (
            f"{case}: no machine measured the current recipe at 3 seeds (python3 scripts/learning_margins.py {case})")
        gains = [r["gain"] for r in records]
        assert None not in gains, f"{case}: a measured run failed ({[r.get('error') for r in records]})"
        assert margin < min(gains), f"{case}: margin {margin} is not below the measured gains {sorted(gains)}"


def test_the_learning_margins_tables_in_docs_are_generated_from_the_result_files(monkeypatch):
    monkeypatch.setenv(LOCK_ENV, "1")
    m = _margins_script()
    stale = "docs/methods.md is stale: python3 scripts/learning_margins.py --table --write"
    assert m.table() in m.DOC.read_text(), stale


def test_every_test_that_docs_hardening_cites_exists():
    """docs/hardening.md is the list of fault-injection guarantees: each row names the test that keeps it."""
    import re

    root = Path(__file__).resolve().parents[1]
    text = (root / "docs" / "hardening.md").read_text()
    cited = re.findall(r"`(tests/[\w/]+\.py)((?:::\w+)?)`", text)
    cited += [(f, n) for f, n in re.findall(r"`(tests/[\w/]+\.py)::\w+`, `::(\w+)`", text)]
    assert len(cited) > 20
    for file, name in cited:
        source = (root / file).read_text()
        name = name.lstrip(":")
        assert not name or re.search(rf"^def {name}\(", source, re.M), f"docs/hardening.md cites {file}::{name}"
