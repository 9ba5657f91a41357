"""ruff, with the configuration in pyproject.toml, finds nothing in the package, the tests or the scripts."""
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_ruff_finds_nothing():
    ruff = shutil.which("ruff")
    if ruff is None:
        pytest.skip("ruff is not installed (it comes with the [test] extra)")
    run = subprocess.run([ruff, "check", "selfsup", "tests", "scripts"], cwd=ROOT, capture_output=True, text=True)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-1000:]



def test_no_source_file_is_ignored_by_git():
    """A .gitignore pattern matching a package folder (``runs/`` matched ``selfsup/runs/``) drops files from CI."""
    git = shutil.which("git")
    if git is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    sources = [str(p.relative_to(ROOT)) for d in ("selfsup", "tests", "scripts") for p in (ROOT / d).rglob("*.py")]
    sources += [str(p.relative_to(ROOT)) for p in (ROOT / "selfsup").rglob("*.yaml")]
    run = subprocess.run([git, "check-ignore", "--no-index", *sources], cwd=ROOT, capture_output=True, text=True)
    assert run.stdout.strip() == "", "ignored by .gitignore:\n" + run.stdout
