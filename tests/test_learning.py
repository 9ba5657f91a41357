"""End to end on real data: train briefly on a Fashion-MNIST subset, the features must beat random init."""
import pytest
import torch

from selfsup.config import load_config
from selfsup.eval.run import evaluate_backbone
from selfsup.train.build import load_backbone, load_train_data, make_backbone
from selfsup.train.loop import train

# (method, overrides, points the trained encoder must gain over random init on kNN)
CASES = {
    "rotation": (["train.steps=150", "train.batch_size=64", "train.lr=0.1"], 2.0),
    "simclr": (["train.steps=150", "train.batch_size=128", "train.lr=0.5"], 1.0),
    # 2 x 28 px + 4 x 14 px crops. SwAV measured kNN 71.00 vs 69.75 (lr 0.5 gave 68.90, 0.2 gave 70.70).
    "swav": (["train.steps=150", "train.batch_size=128", "train.lr=0.1", "method.n_prototypes=30",
              "method.freeze_prototypes_steps=20"], 0.75),
    # DINO needs 300 steps (2x the budget): 71.15 vs 69.75; at 150 steps it stayed below random init (68.90).
    "dino": (["train.steps=300", "train.batch_size=128", "train.lr=0.3", "method.momentum=0.99",
              "method.freeze_last_layer_steps=20"], 0.75),
}


@pytest.mark.parametrize("method", sorted(CASES))
def test_trained_features_beat_random_init_on_knn(method, tmp_path):
    overrides, margin = CASES[method]
    cfg = load_config(method, [f"out_dir={tmp_path}", "name=e2e", "data.subset=10000", "backbone.width=0.25",
                               "train.warmup_steps=10", "train.progress=false", *overrides])
    run = train(cfg)
    train_ds = load_train_data(cfg)
    test_ds = load_train_data(cfg, split="test").subset(range(2000))
    trained, _ = load_backbone(run)
    torch.manual_seed(cfg.train.seed)
    random_init = make_backbone(cfg).eval()
    learned = evaluate_backbone(trained, train_ds, test_ds, 28, linear=False)["knn_top1"]
    baseline = evaluate_backbone(random_init, train_ds, test_ds, 28, linear=False)["knn_top1"]
    assert learned > baseline + margin, f"{method}: kNN {learned:.2f} vs random init {baseline:.2f}"
