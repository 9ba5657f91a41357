"""Figures are written from the dicts `selfsup eval` produces."""
import json

import numpy as np
from PIL import Image

from selfsup.report import plots


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
