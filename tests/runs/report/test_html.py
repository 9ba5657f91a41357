"""`selfsup report`: the static page renders in a real headless browser with every figure shown.

The browser is Debian's chromium (scripts/setup.sh installs it). A copy of the
page gets a small self-check script that collects errors (window errors, failed
resource loads, console.error), the natural width of every image and the row
count of every table, and writes them as JSON into the DOM, which
``chromium --dump-dom`` prints. The real page carries no script at all.
"""
import html
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from selfsup.cli import main
from selfsup.runs.grid import GRID_DIR, parse_grid, run_grid
from selfsup.runs.report.html import write_report

ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"  # tests/artifacts, ignored by git

SELF_CHECK = """<script>
window.__errors = [];
window.addEventListener("error", function (e) {
  var t = e.target;
  var loadFailed = t && t !== window && t.getAttribute;
  window.__errors.push(loadFailed ? "failed to load " + t.getAttribute("src") : String(e.message));
}, true);
var realError = console.error;
console.error = function () {
  window.__errors.push(Array.prototype.join.call(arguments, " "));
  realError.apply(console, arguments);
};
window.addEventListener("load", function () {
  var images = Array.prototype.map.call(document.images, function (i) {
    return {src: i.getAttribute("src"), width: i.naturalWidth};
  });
  var rows = {};
  Array.prototype.forEach.call(document.querySelectorAll("table[id]"), function (t) {
    rows[t.id] = t.tBodies[0].rows.length;
  });
  var out = document.createElement("pre");
  out.id = "selfcheck";
  out.textContent = JSON.stringify({errors: window.__errors, images: images, rows: rows,
                                    sections: document.querySelectorAll("section").length});
  document.body.appendChild(out);
});
</script>"""


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    """A real tiny grid (2 methods + 1 cell that fails at run time) and its report."""
    root = tmp_path_factory.mktemp("report")
    data = yaml.safe_load((GRID_DIR / "tiny.yaml").read_text())
    data.update(out_dir=str(root / "grid"), eval={"train_subset": 500},
                methods=["rotation", "simclr",
                         {"config": "rotation", "label": "broken", "overrides": {"data.subset": 10**7}}])
    run_grid(parse_grid(data), print_fn=lambda line: None)
    index = write_report(root / "grid", embed_points=300)
    return index


def _chromium(chromium: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                           f"--user-data-dir={ARTIFACTS / '.chromium-profile'}", *args],
                          capture_output=True, text=True, timeout=60)


def _verdict(chromium: str, page: Path) -> dict:
    out = _chromium(chromium, "--virtual-time-budget=5000", "--dump-dom", page.as_uri())
    found = re.search(r'<pre id="selfcheck">(.*?)</pre>', out.stdout, re.S)
    assert found, f"the self-check wrote no verdict; chromium said: {out.stderr[-2000:]}"
    return json.loads(html.unescape(found.group(1)))


def test_report_writes_markdown_with_the_same_tables_and_notes_for_missing_sections(report):
    md = (report.parent / "report.md").read_text()
    results = md.split("## Results")[1].split("##")[0]
    assert len([line for line in results.splitlines() if line.startswith(("| rotation", "| simclr"))]) == 2
    assert "| broken-resnet18_v1-w0.125-s0 |" in md  # the failed cell, with its error
    assert "_skipped: no run has per-layer probe results" in md and "_skipped: no method was run" in md
    for name in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md):
        assert (report.parent / name).stat().st_size > 1000
    page = report.read_text()
    assert "<script" not in page, "the page must be static"
    assert not re.search(r'(src|href)="(https?:)?//', page), "the page must work offline"


@pytest.mark.browser
def test_report_loads_in_headless_chromium_with_every_image_shown(report, chromium):
    ARTIFACTS.mkdir(exist_ok=True)
    check = report.with_name("selfcheck.html")
    check.write_text(report.read_text().replace("<head>", "<head>\n" + SELF_CHECK, 1))
    verdict = _verdict(chromium, check)
    assert verdict["errors"] == []
    assert len(verdict["images"]) >= 7, verdict["images"]  # pretext plot, 3 training curves, 2 retrieval grids, 2 maps
    assert all(img["width"] > 0 for img in verdict["images"]), verdict["images"]
    # 2 runs + their architecture's random init
    assert verdict["rows"]["results"] == 3 and verdict["rows"]["failed"] == 1
    assert verdict["rows"]["ranking-methods"] == 1 and verdict["rows"]["ranking-backbones"] == 2

    # The check can fail: a page with a missing image and a console error is caught.
    broken = report.with_name("broken.html")
    faults = '<img src="missing.png"><script>console.error("boom")</script>'
    broken.write_text(check.read_text().replace("</body>", faults + "</body>"))
    bad = _verdict(chromium, broken)
    assert "boom" in bad["errors"] and any("missing.png" in e for e in bad["errors"])
    assert [i["width"] for i in bad["images"] if i["src"] == "missing.png"] == [0]

    shot = ARTIFACTS / "report_screenshot.png"
    _chromium(chromium, "--window-size=1200,4000", f"--screenshot={shot}", report.as_uri())
    assert shot.stat().st_size > 10_000
    print(f"report screenshot: {shot}")


def test_report_of_runs_without_results_skips_sections_instead_of_crashing(report, tmp_path, capsys):
    run = tmp_path / "runs" / "unfinished"
    run.mkdir(parents=True)
    shutil.copy(report.parent.parent / "simclr-resnet18_v1-w0.125-s0" / "config.yaml", run)
    assert main(["report", str(tmp_path / "runs")]) == 0
    md = (tmp_path / "runs" / "report" / "report.md").read_text()
    assert "| simclr | resnet18_v1 | 0.125 | 0 | – |" in md
    assert "skipped: no run has kNN or linear-probe results" in md and "skipped: no finished run" in md
    assert main(["report", str(tmp_path / "empty")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_a_broken_run_folder_is_listed_not_fatal_to_the_report(report, tmp_path):
    runs = tmp_path / "runs"
    good = report.parent.parent / "simclr-resnet18_v1-w0.125-s0"
    shutil.copytree(good, runs / "good", ignore=shutil.ignore_patterns("report", "features"))
    (runs / "bad-yaml").mkdir(parents=True)
    (runs / "bad-yaml" / "config.yaml").write_text("train: [unclosed\n")
    shutil.copytree(good, runs / "torn", ignore=shutil.ignore_patterns("report", "features"))
    with open(runs / "torn" / "metrics.jsonl", "a") as f:
        f.write('{"step": 99, "lo')
    with pytest.warns(UserWarning, match="torn last line"):
        assert main(["report", str(runs), "--embed-points", "100", "--max-embed-runs", "0"]) == 0
    md = (runs / "report" / "report.md").read_text()
    assert "bad-yaml | broken run folder: " in md
    assert md.count("| simclr | resnet18_v1 |") >= 2  # the good and the torn run are both reported


def test_report_md_escapes_html_in_run_names(report, tmp_path):
    runs = tmp_path / "runs"
    shutil.copytree(report.parent.parent / "simclr-resnet18_v1-w0.125-s0", runs / "good",
                    ignore=shutil.ignore_patterns("report", "features"))
    hostile = runs / "<img src=x onerror=alert(1)>"  # listed by name, as a broken run folder
    hostile.mkdir()
    (hostile / "config.yaml").write_text("[")
    assert main(["report", str(runs), "--embed-points", "100", "--max-embed-runs", "0"]) == 0
    md = (runs / "report" / "report.md").read_text()
    page = (runs / "report" / "index.html").read_text()
    assert "&lt;img src=x onerror=alert(1)&gt;" in md and "&lt;img src=x" in page
    assert "<img src=x" not in md and "<img src=x" not in page
