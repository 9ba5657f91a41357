"""The report's figures are written from the dicts `selfsup eval` produces."""
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
    records = (json.dumps({"step": s, "loss": 1 / s}) + "\n" for s in range(1, 20))
    (tmp_path / "metrics.jsonl").write_text("".join(records))
    assert _is_png(plots.training_curves({"run": tmp_path}, tmp_path / "t.png"))
    assert _is_png(plots.pretext_vs_linear({"rotation": (0.8, 85.0), "jigsaw": (0.6, 83.0)}, tmp_path / "p.png"))


def test_new_report_plots_write_pngs(tmp_path):
    rng = np.random.default_rng(0)
    widths = {"simclr / resnet50_v2": [(1, 60.0), (2, 65.0), (4, 68.0)]}
    assert _is_png(plots.accuracy_vs_width(widths, tmp_path / "w.png"))
    m = np.array([[1.0, 0.5], [0.5, 1.0]])
    assert _is_png(plots.rank_correlation_heatmaps({"kendall": (["a", "b"], m), "spearman": (["a", "b"], m * np.nan)},
                                                   tmp_path / "r.png"))
    images = rng.integers(0, 256, (3, 4, 12, 12, 1), dtype=np.uint8)
    assert _is_png(plots.retrieval_grid(images[:, 0], images, tmp_path / "nn.png", [0, 1, 2], [[0, 1, 2, 0]] * 3,
                                        ["a", "b", "c"]))
    assert _is_png(plots.embedding_map(rng.normal(size=(50, 2)), rng.integers(0, 3, 50), tmp_path / "e.png",
                                       ["a", "b", "c"]))
