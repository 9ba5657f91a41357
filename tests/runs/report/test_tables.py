"""The report's tables: rank correlations by hand, rankings averaged over seeds, one random-init row per backbone."""
import numpy as np

from selfsup.runs.report.tables import mean_scores, rank_correlations, ranking_rows, results_rows


def test_rank_correlations_match_hand_computed_kendall_and_spearman():
    scores = {"r18": {"a": 1, "b": 2, "c": 3, "d": 4}, "r50": {"a": 1, "b": 3, "c": 2, "d": 4}, "vgg": {"a": 9}}
    labels, tau = rank_correlations(scores, "kendall")
    assert labels == ["r18", "r50", "vgg"]
    # 6 pairs, one discordant (b, c): (5 - 1) / 6
    assert np.isclose(tau[0, 1], 4 / 6) and tau[0, 0] == 1.0 and np.isnan(tau[0, 2]) and np.isnan(tau[2, 2])
    _, rho = rank_correlations(scores, "spearman")
    assert np.isclose(rho[0, 1], 1 - 6 * 2 / (4 * 15))  # 1 - 6 sum d^2 / (n (n^2 - 1)), d = (0, 1, 1, 0)


def test_rankings_average_seeds_and_order_best_first():
    runs = [{"method": m, "backbone": "resnet18_v1", "width": 0.25, "knn_top1": acc}
            for m, acc in (("simclr", 80.0), ("simclr", 70.0), ("rotation", 76.0))]
    scores = mean_scores(runs, "knn_top1", "backbone")
    assert scores == {"resnet18_v1 x0.25": {"simclr": 75.0, "rotation": 76.0}}
    assert ranking_rows(scores, "methods")[1] == [["resnet18_v1 x0.25", "rotation (76.0) > simclr (75.0)"]]


def test_results_put_one_random_init_row_before_each_architectures_runs():
    def run(method, backbone, knn, random_init=None):
        return {"method": method, "backbone": backbone, "width": 0.25, "seed": 0, "knn_top1": knn, "linear_top1": None,
                "pretext_acc": None, "nmi": None, "steps": 300, "minutes": 1.0, "random_init": random_init}

    baseline = {"knn_top1": 69.5, "linear_top1": 77.2, "nmi": 0.2}
    runs = [run("simclr", "vgg19_bn", 58.9), run("rotation", "resnet18_v1", 75.3, baseline),
            run("simclr", "resnet18_v1", 75.2, baseline)]  # both carry it: one row
    _, rows = results_rows(runs)
    assert [(r[0], r[1], r[4]) for r in rows] == [("(random init)", "resnet18_v1", "69.5"),
                                                  ("rotation", "resnet18_v1", "75.3"),
                                                  ("simclr", "resnet18_v1", "75.2"), ("simclr", "vgg19_bn", "58.9")]
    assert rows[0][5] == "77.2" and rows[0][8] == "0" and rows[0][9] == "–"
