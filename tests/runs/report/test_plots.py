"""Figures are written from the dicts `selfsup eval` produces."""
import json

import numpy as np
from PIL import Image

from selfsup.runs.report import plots


def _is_png(path):
    with Image.open(path) as img:
        return img.format == "PNG" and img.size[0] > 100


def test_every_plot_writes_a_png(tmp_path):
    layers = {"stem": {"top1": 60.0}, "block1": {"top1": 70.0}, "pre_logits": {"top1": 80.0}}
    assert _is_png(plots.layer_curves({"a": {"layers": layers}, "b": {"layers": layers}}, tmp_path / "l.png"))
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "invariance.npz", jigsaw_l2=rng.random(50), jigsaw_cosine=rng.random(50))
    d = plots.read_invariance(tmp_path)
    assert d.shape == (50,)
    assert _is_png(plots.invariance_histograms({"pirl": d, "jigsaw": d + 0.5}, tmp_path / "i.png"))
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps({"step": s, "loss": 1 / s}) + "\n" for s in range(1, 20)))
    assert _is_png(plots.training_curves({"run": tmp_path}, tmp_path / "t.png"))
    assert _is_png(plots.pretext_vs_linear({"rotation": (0.8, 85.0), "jigsaw": (0.6, 83.0)}, tmp_path / "p.png"))


def test_new_report_plots_write_pngs(tmp_path):
    rng = np.random.default_rng(0)
    assert _is_png(plots.accuracy_vs_width({"simclr / resnet50_v2": [(1, 60.0), (2, 65.0), (4, 68.0)]}, tmp_path / "w.png"))
    m = np.array([[1.0, 0.5], [0.5, 1.0]])
    assert _is_png(plots.rank_correlation_heatmaps({"kendall": (["a", "b"], m), "spearman": (["a", "b"], m * np.nan)},
                                                   tmp_path / "r.png"))
    images = rng.integers(0, 256, (3, 4, 12, 12, 1), dtype=np.uint8)
    assert _is_png(plots.retrieval_grid(images[:, 0], images, tmp_path / "nn.png", [0, 1, 2], [[0, 1, 2, 0]] * 3,
                                        ["a", "b", "c"]))
    assert _is_png(plots.embedding_map(rng.normal(size=(50, 2)), rng.integers(0, 3, 50), tmp_path / "e.png", ["a", "b", "c"]))


def test_rank_correlations_match_hand_computed_kendall_and_spearman():
    from selfsup.runs.report.tables import rank_correlations

    scores = {"r18": {"a": 1, "b": 2, "c": 3, "d": 4}, "r50": {"a": 1, "b": 3, "c": 2, "d": 4}, "vgg": {"a": 9}}
    labels, tau = rank_correlations(scores, "kendall")
    assert labels == ["r18", "r50", "vgg"]
    # 6 pairs, one discordant (b, c): (5 - 1) / 6
    assert np.isclose(tau[0, 1], 4 / 6) and tau[0, 0] == 1.0 and np.isnan(tau[0, 2]) and np.isnan(tau[2, 2])
    _, rho = rank_correlations(scores, "spearman")
    assert np.isclose(rho[0, 1], 1 - 6 * 2 / (4 * 15))  # 1 - 6 sum d^2 / (n (n^2 - 1)), d = (0, 1, 1, 0)


def test_rankings_average_seeds_and_order_best_first():
    from selfsup.runs.report.tables import mean_scores, ranking_rows

    runs = [{"method": m, "backbone": "resnet18_v1", "width": 0.25, "knn_top1": acc}
            for m, acc in (("simclr", 80.0), ("simclr", 70.0), ("rotation", 76.0))]
    scores = mean_scores(runs, "knn_top1", "backbone")
    assert scores == {"resnet18_v1 x0.25": {"simclr": 75.0, "rotation": 76.0}}
    assert ranking_rows(scores, "methods")[1] == [["resnet18_v1 x0.25", "rotation (76.0) > simclr (75.0)"]]


def test_results_put_one_random_init_row_before_each_architectures_runs():
    from selfsup.runs.report.tables import results_rows

    def run(method, backbone, knn, random_init=None):
        return {"method": method, "backbone": backbone, "width": 0.25, "seed": 0, "knn_top1": knn, "linear_top1": None,
                "pretext_acc": None, "nmi": None, "steps": 300, "minutes": 1.0, "random_init": random_init}

    baseline = {"knn_top1": 69.5, "linear_top1": 77.2, "nmi": 0.2}
    runs = [run("simclr", "vgg19_bn", 58.9), run("rotation", "resnet18_v1", 75.3, baseline),
            run("simclr", "resnet18_v1", 75.2, baseline)]  # both carry it: one row
    _, rows = results_rows(runs)
    assert [(r[0], r[1], r[4]) for r in rows] == [("(random init)", "resnet18_v1", "69.5"), ("rotation", "resnet18_v1", "75.3"),
                                                  ("simclr", "resnet18_v1", "75.2"), ("simclr", "vgg19_bn", "58.9")]
    assert rows[0][5] == "77.2" and rows[0][8] == "0" and rows[0][9] == "–"


def test_nearest_neighbours_and_queries_cover_classes():
    from selfsup.runs.report.embeddings import nearest_neighbours, pick_queries

    train = np.array([[1.0, 0.0], [0.0, 1.0], [0.7, 0.7], [-1.0, 0.0]])
    assert nearest_neighbours(train, np.array([[1.0, 0.1]]), k=3).tolist() == [[0, 2, 1]]
    labels = np.array([2, 2, 0, 1, 0, 1])
    assert pick_queries(labels, 4).tolist() == [2, 3, 0, 4]
