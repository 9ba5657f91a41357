"""``selfsup report RUNS_DIR``: one folder with index.html, report.md and the PNGs they show.

The page is static (no script, no server, no external URL): it opens from disk
and can be zipped or attached as it is. Each section is built from the run
folders alone; a section whose data no run has is replaced by a one-line note
saying what would produce it.
"""
from __future__ import annotations

import html
import sys
import time
import warnings
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from selfsup.registry import InputError
from selfsup.runs.report import plots, tables
from selfsup.runs.report.collect import find_runs, read_failures, read_run

METRIC_LABELS = {"linear_top1": "linear probe top-1 (%)", "knn_top1": "kNN top-1 (%)"}
FIGURE_PREFIX = "fig-"


@dataclass
class Section:
    title: str
    anchor: str
    # ("p", text) | ("note", text) | ("table", id, headers, rows) | ("img", file, caption)
    blocks: list[tuple] = field(default_factory=list)

    def note(self, text: str) -> None:
        self.blocks.append(("note", text))


@dataclass
class Context:
    runs: list[dict]
    out: Path
    metric: str | None
    embed_points: int
    max_embed_runs: int
    retrieval_train: int
    device: str
    failures: list[dict]

    def label(self, run: dict) -> str:
        seeds = {r["seed"] for r in self.runs}
        return f"{run['method']} / {tables.backbone_key(run)}" + (f" s{run['seed']}" if len(seeds) > 1 else "")

    def figure(self, name: str) -> Path:
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
        return self.out / f"{FIGURE_PREFIX}{safe}.png"


def results_section(ctx: Context) -> Section:
    s = Section("Results", "results")
    headers, rows = tables.results_rows(ctx.runs)
    s.blocks.append(("p", f"{len(ctx.runs)} runs. Accuracies are on the test split (percent); pretext acc is the "
                          "pretext task's own accuracy over its last logged batches; NMI of k-means with k = number "
                          "of classes. "
                          "(random init): the same architecture untrained, where evaluated."))
    s.blocks.append(("table", "results", headers, rows))
    if ctx.failures:
        s.blocks.append(("p", f"{len(ctx.failures)} grid cell(s) failed (traceback in the cell's error.txt) or run "
                              "folder(s) could not be read:"))
        s.blocks.append(("table", "failed", ["cell", "error"], [[f["cell"], f["error"][:300]] for f in ctx.failures]))
    return s


def rankings_section(ctx: Context) -> Section:
    s = Section("Rankings", "rankings")
    if ctx.metric is None:
        s.note("skipped: no run has kNN or linear-probe results (run selfsup eval, or a grid with protocols).")
        return s
    s.blocks.append(("p", f"Ranked by {METRIC_LABELS.get(ctx.metric, ctx.metric)}, averaged over seeds."))
    by_backbone = tables.mean_scores(ctx.runs, ctx.metric, "backbone")
    by_method = tables.mean_scores(ctx.runs, ctx.metric, "method")
    headers, rows = tables.ranking_rows(by_backbone, "methods")
    s.blocks.append(("table", "ranking-methods", ["backbone", headers[1]], rows))
    headers, rows = tables.ranking_rows(by_method, "backbones")
    s.blocks.append(("table", "ranking-backbones", ["method", headers[1]], rows))
    matrices = {}
    for scores, what in ((by_backbone, "method rankings under each backbone"),
                         (by_method, "backbone rankings of each method")):
        if len(scores) < 2:
            continue
        for kind in ("kendall", "spearman"):
            labels, m = tables.rank_correlations(scores, kind)
            if np.isfinite(m[~np.eye(len(labels), dtype=bool)]).any():
                matrices[f"{'Kendall tau' if kind == 'kendall' else 'Spearman rho'}: {what}"] = (labels, m)
    if matrices:
        path = plots.rank_correlation_heatmaps(matrices, ctx.figure("rank-correlation"))
        s.blocks.append(("img", path.name, "Rank correlations between rankings (1: same order; blank: fewer than "
                                           "2 shared entries)."))
    else:
        s.note("rank correlations skipped: they need two backbones sharing at least two methods (or two methods "
               "sharing two backbones).")
    return s


def width_section(ctx: Context) -> Section:
    s = Section("Accuracy against width", "width")
    if ctx.metric is None:
        s.note("skipped: no evaluated runs.")
        return s
    acc: dict[str, dict[float, list[float]]] = defaultdict(lambda: defaultdict(list))
    for r in ctx.runs:
        if r.get(ctx.metric) is not None:
            acc[f"{r['method']} / {r['backbone']}"][r["width"]].append(r[ctx.metric])
    series = {k: [(w, float(np.mean(v))) for w, v in widths.items()] for k, widths in acc.items() if len(widths) >= 2}
    if not series:
        s.note("skipped: no method was run on one architecture at two or more widths.")
        return s
    path = plots.accuracy_vs_width(series, ctx.figure("width"), ylabel=METRIC_LABELS[ctx.metric])
    s.blocks.append(("img", path.name, "Accuracy against the width multiplier (mean over seeds)."))
    return s


def pretext_section(ctx: Context) -> Section:
    s = Section("Pretext accuracy against downstream accuracy", "pretext")
    points = {ctx.label(r): (r["pretext_acc"], r[ctx.metric]) for r in ctx.runs
              if ctx.metric and r.get("pretext_acc") is not None and r.get(ctx.metric) is not None}
    if not points:
        s.note("skipped: no evaluated run of a pretext-task method (one that logs pretext_acc).")
        return s
    path = plots.pretext_vs_linear(points, ctx.figure("pretext-vs-downstream"), ylabel=METRIC_LABELS[ctx.metric])
    s.blocks.append(("img", path.name, "Does solving the pretext task better give better features?"))
    return s


def layers_section(ctx: Context) -> Section:
    s = Section("Per-layer linear probes", "layers")
    groups: dict[str, dict[str, dict]] = defaultdict(dict)
    for r in ctx.runs:
        if r["eval"].get("layers"):
            groups[r["backbone"]][ctx.label(r)] = r["eval"]
    if not groups:
        s.note("skipped: no run has per-layer probe results (selfsup eval RUN --protocol layers).")
        return s
    for backbone, results in groups.items():
        path = plots.layer_curves(results, ctx.figure(f"layers-{backbone}"))
        pools = sorted({str(r.get("layers_pool_to", "?")) for r in results.values()})
        s.blocks.append(("img", path.name, f"{backbone}: linear-probe top-1 of each layer, each map average-pooled "
                                           f"to about {' / '.join(pools)} dims."))
    return s


def invariance_section(ctx: Context) -> Section:
    s = Section("Invariance", "invariance")
    found: dict[tuple[str, str], dict[str, np.ndarray]] = defaultdict(dict)  # (transform, metric) -> run -> distances
    for r in ctx.runs:
        path = Path(r["dir"]) / "invariance.npz"
        if not path.exists():
            continue
        with np.load(path) as f:
            for key in f.files:
                transform, _, metric = key.rpartition("_")
                if metric in ("l2", "relative"):
                    found[(transform, metric)][ctx.label(r)] = f[key]
    if not found:
        s.note("skipped: no run has invariance distances (selfsup eval RUN --protocol invariance).")
        return s
    for (transform, metric), distances in sorted(found.items()):
        path = plots.invariance_histograms(distances, ctx.figure(f"invariance-{transform}-{metric}"),
                                           transform=transform,
                                           metric="relative" if metric == "relative" else "L2 distance")
        caption = f"L2 distance between the normalized pre-logits of x and {transform}(x)"
        relative = ", divided by the mean L2 distance between two images" if metric == "relative" else ""
        s.blocks.append(("img", path.name, caption + relative + "."))
    return s


def curves_section(ctx: Context) -> Section:
    s = Section("Training curves", "curves")
    by_method: dict[str, dict[str, str]] = defaultdict(dict)
    for r in ctx.runs:
        if (Path(r["dir"]) / "metrics.jsonl").exists():
            by_method[r["method"]][ctx.label(r)] = r["dir"]
    if not by_method:
        s.note("skipped: no run has a metrics.jsonl.")
        return s
    for method, runs in sorted(by_method.items()):
        path = plots.training_curves(runs, ctx.figure(f"loss-{method}"), title=f"{method}: training loss")
        s.blocks.append(("img", path.name, f"{method}: loss against step."))
        if any(r["pretext_acc"] is not None for r in ctx.runs if r["method"] == method):
            path = plots.training_curves(runs, ctx.figure(f"pretext-{method}"), key="pretext_acc",
                                         title=f"{method}: pretext accuracy")
            s.blocks.append(("img", path.name, f"{method}: pretext-task accuracy against step."))
    return s


def best_run_per_method(runs: list[dict], metric: str | None) -> list[dict]:
    """Each method's run with the highest validation ``metric`` (``read_run``'s "val"), never a test score; the
    first run of a method where none of its runs was scored on val (or ``metric`` is None)."""
    best: dict[str, dict] = {}
    for r in runs:
        score = (r.get("val") or {}).get(metric) if metric else None
        current = best.get(r["method"])
        if current is None or (score is not None and ((current.get("val") or {}).get(metric) or -1) < score):
            best[r["method"]] = r
    return list(best.values())


def embedding_sections(ctx: Context) -> list[Section]:
    """Nearest-neighbour retrieval grids and t-SNE maps of a few runs: the best run of each method on the
    validation split (eval_val.json), never on the test split; the first run where none was scored on val."""
    from selfsup.runs.report.embeddings import nearest_neighbours, pick_queries, run_features, tsne_2d

    retrieval = Section("Nearest-neighbour retrieval", "retrieval")
    maps = Section("Embedding maps (t-SNE)", "tsne")
    finished = [r for r in ctx.runs if (Path(r["dir"]) / "backbone.safetensors").exists()]
    chosen = best_run_per_method(finished, ctx.metric)[: ctx.max_embed_runs]
    if not chosen:
        for s in (retrieval, maps):
            s.note("skipped: no finished run (backbone.safetensors) to extract features from.")
        return [retrieval, maps]
    for s in (retrieval, maps):
        by = f" by validation {METRIC_LABELS[ctx.metric]}" if ctx.metric else ""
        s.blocks.append(("p", "The best run of each method" + by
                              + f" (at most {ctx.max_embed_runs})."))
    datasets: dict = {}
    for r in chosen:
        label = ctx.label(r)
        try:
            train_f, train, test_f, test = run_features(r["dir"], ctx.retrieval_train, ctx.embed_points, ctx.device,
                                                        datasets)
        except (OSError, ValueError) as err:  # e.g. the dataset's folder is missing here
            for s in (retrieval, maps):
                s.note(f"{label}: skipped, its data could not be read ({type(err).__name__}: {err}).")
            continue
        queries = pick_queries(test.labels, 8)
        nn_idx = nearest_neighbours(train_f, test_f[queries], k=8)  # (Q, k)
        images = np.stack([np.asarray(train.images[i]) for i in nn_idx.ravel()])
        images = images.reshape(*nn_idx.shape, *train.images.shape[1:])
        path = plots.retrieval_grid(np.asarray(test.images[queries]), images, ctx.figure(f"retrieval-{r['name']}"),
                                    query_labels=None if test.labels is None else test.labels[queries],
                                    neighbour_labels=None if train.labels is None else train.labels[nn_idx],
                                    class_names=train.classes, title=label)
        retrieval.blocks.append(("img", path.name, f"{label}: test queries (left) and their 8 nearest of "
                                                   f"{len(train_f)} training images by cosine similarity "
                                                   "(green: same class)."))
        points = tsne_2d(test_f, seed=0)
        path = plots.embedding_map(points, test.labels, ctx.figure(f"tsne-{r['name']}"), class_names=test.classes,
                                   title=label)
        maps.blocks.append(("img", path.name, f"{label}: t-SNE of the pre-logits of {len(test_f)} test images, "
                                              "coloured by class."))
    return [retrieval, maps]


SECTIONS = (results_section, rankings_section, width_section, pretext_section, layers_section, invariance_section,
            curves_section, embedding_sections)


def build_sections(ctx: Context) -> list[Section]:
    out = []
    for build in SECTIONS:
        try:
            made = build(ctx)
        except Exception as err:  # noqa: BLE001 -- one broken figure must not lose the rest of the report
            warnings.warn(f"report section {build.__name__} failed: {type(err).__name__}: {err}", stacklevel=2)
            made = Section(build.__name__.replace("_section", "").replace("_", " ").capitalize(), build.__name__)
            made.note(f"skipped: it could not be built ({type(err).__name__}: {err}).")
        out += made if isinstance(made, list) else [made]
    return out


def write_report(runs_dir: str | Path, out_dir: str | Path | None = None, metric: str = "auto",
                 embed_points: int = 3000, max_embed_runs: int = 6, retrieval_train: int = 10_000,
                 device: str = "cpu") -> Path:
    """Write OUT/index.html and OUT/report.md (OUT defaults to RUNS_DIR/report) and return the index's path."""
    runs_dir = Path(runs_dir)
    if not runs_dir.is_dir():
        raise FileNotFoundError(f"runs folder {runs_dir} does not exist")
    out = Path(out_dir) if out_dir else runs_dir / "report"
    runs = [read_run(p) for p in find_runs(runs_dir, exclude=out)]
    if not runs:
        raise FileNotFoundError(f"no run folders (folders with a config.yaml) under {runs_dir}")
    broken = [{"cell": r["dir"], "error": f"broken run folder: {r['broken']}"} for r in runs if r["broken"]]
    runs = [r for r in runs if not r["broken"]]
    if not runs:
        raise InputError(f"every run folder under {runs_dir} is broken, e.g. {broken[0]['cell']}: {broken[0]['error']}")
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob(f"{FIGURE_PREFIX}*.png"):  # figures of an earlier report of other runs
        old.unlink()
    ctx = Context(runs, out, tables.choose_metric(runs, metric), embed_points, max_embed_runs, retrieval_train, device,
                  read_failures(runs_dir) + broken)
    t0 = time.perf_counter()
    sections = build_sections(ctx)
    title = f"selfsup report: {runs_dir.resolve().name}"
    (out / "index.html").write_text(render_html(title, sections, runs_dir))
    (out / "report.md").write_text(render_markdown(title, sections, runs_dir))
    print(f"report: {len(runs)} runs, {len(sections)} sections in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    return out / "index.html"


CSS = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; padding: 0 1em; color: #222; }
table { border-collapse: collapse; margin: 0.8em 0; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: left; }
th { background: #f2f2f2; }
tbody tr:nth-child(even) { background: #fafafa; }
figure { margin: 1em 0; }
figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { font-size: 0.85em; color: #555; }
.note { color: #777; font-style: italic; }
nav a { margin-right: 1em; }
"""


def render_html(title: str, sections: list[Section], runs_dir: Path) -> str:
    e = html.escape
    parts = [f"<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>{e(title)}</title>",
             f"<style>{CSS}</style>\n</head>\n<body>", f"<h1>{e(title)}</h1>",
             f"<p>Runs under <code>{e(str(runs_dir.resolve()))}</code>, "
             f"generated {e(time.strftime('%Y-%m-%d %H:%M'))}.</p>",
             "<nav>" + "".join(f'<a href="#{e(s.anchor)}">{e(s.title)}</a>' for s in sections) + "</nav>"]
    for s in sections:
        parts.append(f'<section id="{e(s.anchor)}">\n<h2>{e(s.title)}</h2>')
        for block in s.blocks:
            kind = block[0]
            if kind == "p":
                parts.append(f"<p>{e(block[1])}</p>")
            elif kind == "note":
                parts.append(f'<p class="note">{e(block[1])}</p>')
            elif kind == "table":
                parts.append(tables.html_table(block[2], block[3], block[1]))
            elif kind == "img":
                parts.append(f'<figure><img src="{e(block[1])}" alt="{e(block[2])}">'
                             f'<figcaption>{e(block[2])}</figcaption></figure>')
        parts.append("</section>")
    parts.append("</body>\n</html>\n")
    return "\n".join(parts)


def render_markdown(title: str, sections: list[Section], runs_dir: Path) -> str:
    parts = [f"# {title}", f"Runs under `{runs_dir.resolve()}`, generated {time.strftime('%Y-%m-%d %H:%M')}."]
    for s in sections:
        parts.append(f"## {s.title}")
        for block in s.blocks:
            kind = block[0]
            if kind == "p":  # names in the text are user text: escaped as in the HTML page
                parts.append(html.escape(block[1], quote=False))
            elif kind == "note":
                parts.append(f"_{html.escape(block[1], quote=False)}_")
            elif kind == "table":
                parts.append(tables.markdown_table(block[2], block[3]))
            elif kind == "img":
                parts.append(f"![{html.escape(block[2], quote=False)}]({block[1]})")
    return "\n\n".join(parts) + "\n"
