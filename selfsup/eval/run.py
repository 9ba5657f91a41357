"""Evaluate a run folder (or a baseline) with the standard protocols and write JSON beside it.

Numbers reported are always those of the final checkpoint on the test split;
the probe's L2 weight is chosen on a held-out part of the training split.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch

from selfsup.backbones.base import Backbone
from selfsup.data import ImageDataset
from selfsup.eval.knn import knn_accuracy
from selfsup.eval.layers import pooled_features
from selfsup.eval.linear import evaluate as evaluate_probe
from selfsup.eval.linear import fit_linear_probe
from selfsup.eval.clustering import cluster_scores
from selfsup.eval.monitors import embedding_std, rankme
from selfsup.methods.colorization import rgb_input


def score_features(train_x: torch.Tensor, train_y: np.ndarray, test_x: torch.Tensor, test_y: np.ndarray,
                   knn_k: int = 200, knn_temperature: float = 0.07, linear: bool = True, seed: int = 0) -> dict:
    """kNN and linear-probe top-1 (percent) plus label-free monitors of one feature matrix."""
    t0 = time.perf_counter()
    out = {"dims": int(train_x.shape[1]),
           "knn_top1": knn_accuracy(train_x, train_y, test_x, test_y, k=knn_k, temperature=knn_temperature),
           "emb_std": embedding_std(test_x), "rankme": rankme(test_x)}
    if linear:
        probe = fit_linear_probe(train_x, train_y, seed=seed)
        scores = evaluate_probe(probe, test_x, test_y)
        out.update(linear_top1=scores["top1"], linear_top5=scores["top5"], linear_l2=probe.l2)
    out["seconds"] = time.perf_counter() - t0
    return out


def backbone_features(backbone: Backbone, dataset: ImageDataset, size: int, device: torch.device | str = "cpu",
                      batch_size: int = 512, precision: str = "bf16") -> torch.Tensor:
    """Pre-logits (N, D) of ``dataset`` through the evaluation transform."""
    return pooled_features(backbone, None, device, precision, size, batch_size)(dataset, ("pre_logits",))["pre_logits"]


def evaluate_backbone(backbone: Backbone, train: ImageDataset, test: ImageDataset, size: int, **kw) -> dict:
    """Frozen pre-logits of ``backbone`` scored on ``test``, probes fit on ``train``."""
    device = kw.pop("device", "cpu")
    precision = kw.pop("precision", "bf16")
    feats = [backbone_features(backbone, ds, size, device=device, precision=precision) for ds in (train, test)]
    return score_features(feats[0], train.labels, feats[1], test.labels, **kw)


def pixel_features(dataset: ImageDataset, mean, std) -> torch.Tensor:
    """Raw pixels (N, H*W*C), standardized per channel: the baseline every representation must beat."""
    x = torch.from_numpy(np.array(dataset.images)).float().div_(255)  # (N, H, W, C); a copy: the cache is read-only
    return ((x - torch.tensor(mean)) / torch.tensor(std)).flatten(1)


def evaluate_pixels(train: ImageDataset, test: ImageDataset, **kw) -> dict:
    """Raw pixels scored like a representation (statistics from the training split only)."""
    stats = (train.mean, train.std)
    return score_features(pixel_features(train, *stats), train.labels, pixel_features(test, *stats), test.labels, **kw)


PROTOCOLS = ("knn", "linear", "clustering", "sgd", "layers", "fewshot", "invariance")


def evaluate_run(run_dir: str | Path, protocols: tuple[str, ...] | None = None, random_init: bool = False,
                 dataset: str | None = None, data_root: str | None = None, train_subset: int | None = None,
                 pool_to: int = 9216, device: str = "cpu", progress: bool = True) -> dict:
    """Run ``protocols`` on the run's final backbone (or the same architecture at random init).

    None runs kNN, clustering and (unless the config sets ``eval.linear: false``)
    the L-BFGS linear probe.

    Results go to ``eval.json`` (``eval_random_init.json``) beside the run, merged
    with what earlier calls wrote there; with ``dataset`` (transfer) the data is
    that dataset's train/test splits and the file is ``eval[_random_init]_on_<dataset>.json``.
    Frozen features are cached under ``RUN_DIR/features`` per (weights, layer, split),
    so protocols run later reuse them. ``train_subset`` keeps the first N training
    images (for quick looks; reported numbers should use the full split).
    """
    from selfsup.data import load_dataset
    from selfsup.eval.features import FeatureCache, file_digest
    from selfsup.eval.invariance import invariance
    from selfsup.eval.layers import layer_probes
    from selfsup.eval.supervised import balanced_subset, finetune, sgd_probe
    from selfsup.train.build import load_backbone, load_train_data, make_backbone, read_run_config

    run_dir = Path(run_dir)
    cfg = read_run_config(run_dir)
    if protocols is None:
        protocols = ("knn", "clustering") + (("linear",) if cfg.eval.linear else ())
    unknown = sorted(set(protocols) - set(PROTOCOLS))
    if unknown:
        raise ValueError(f"unknown protocol(s) {unknown}; choose from {list(PROTOCOLS)}")
    torch.manual_seed(cfg.train.seed)
    init = make_backbone(cfg).eval()  # the random-init baseline (same seed as the run's own init)
    backbone = init if random_init else load_backbone(run_dir)[0]
    weights = "random_init" if random_init else "trained"
    size = cfg.augment.get("size") or cfg.data.resolution
    if dataset is None:
        train, test = (load_train_data(cfg, split=s) for s in (cfg.data.split, cfg.data.eval_split))
    else:  # transfer: the other dataset at the input size the backbone was trained at
        size = size or load_train_data(cfg).resolution
        train, test = (load_dataset(dataset, root=data_root, split=s, resolution=size) for s in ("train", "test"))
    for ds, role in ((train, "training"), (test, "test")):
        if ds.labels is None:
            raise ValueError(f"{ds.name}: the {role} split has no labels, so the evaluation protocols cannot run")
    if train.classes is not None and test.classes is not None and train.classes != test.classes:
        # e.g. 'photos', whose test split is cut from other photos: scores would compare unrelated labels
        raise ValueError(f"{test.name}'s classes {test.classes[:5]}... are not {train.name}'s {train.classes[:5]}...: "
                         f"the protocols need one label set; evaluate on another data set (--dataset NAME)")
    if train_subset is not None:
        train = train.subset(range(min(train_subset, len(train))))
    size = size or train.resolution
    backbone, init = (rgb_input(b, train.mean, train.std) for b in (backbone, init))  # L-only encoders read RGB too
    e, seed = cfg.eval, cfg.train.seed
    suffix = ("_random_init" if random_init else "") + (f"_on_{dataset}" if dataset else "")
    path = run_dir / f"eval{suffix}.json"
    results = json.loads(path.read_text()) if path.exists() else {}
    results.update(run=str(run_dir), weights=weights, dataset=dataset or cfg.data.name,
                   train_split="train" if dataset else cfg.data.split, test_split="test" if dataset else cfg.data.eval_split,
                   train_images=len(train), test_images=len(test))
    pretext = _last_pretext_acc(run_dir)
    if pretext is not None and not random_init:
        results["pretext_acc"] = pretext

    cache = FeatureCache(run_dir / "features")
    weights_file = run_dir / "backbone.safetensors"
    weights_file = weights_file if weights_file.exists() else run_dir / "last.pt"
    tag = f"random_init-seed{seed}" if random_init else f"trained-{file_digest(weights_file)}"
    tag += f"-{dataset or cfg.data.name}-n{len(train)}"

    def cached(layers: tuple[str, ...], pool: int | None) -> list[dict[str, torch.Tensor]]:
        """Train and test features of ``layers``, read from the cache or extracted once into it."""
        extract = pooled_features(backbone, pool, device=device, size=size)
        return [cache.get_or_extract(tag, split, layers, pool, lambda missing, ds=ds: extract(ds, missing))
                for split, ds in (("train", train), ("test", test))]

    def step(name: str, fn):
        if name in protocols:
            t0 = time.perf_counter()
            if progress:
                print(f"[{weights}] {name}...", flush=True)
            fn()
            results.setdefault("timing_s", {})[name] = round(time.perf_counter() - t0, 1)
            path.write_text(json.dumps(results, indent=2))

    def knn_linear():
        tr, te = (f["pre_logits"] for f in cached(("pre_logits",), None))
        results.update(score_features(tr, train.labels, te, test.labels, knn_k=e.knn_k, knn_temperature=e.knn_temperature,
                                      linear="linear" in protocols, seed=seed))

    def clustering():
        te = cached(("pre_logits",), None)[1]["pre_logits"]
        c = test.num_classes
        results["clustering"] = {f"k={k}": cluster_scores(te, test.labels, k, seed=seed) for k in (c, 2 * c)}

    def sgd():
        r = sgd_probe(backbone, train, test, size, device=device, seed=seed, progress=progress)
        results["sgd_probe"] = {"top1": r.top1, "top5": r.top5, "lr": r.lr,
                                "val_top1": {str(k): v for k, v in r.val_top1.items()}}

    def layers():
        train_f, test_f = cached(tuple(backbone.feature_names), pool_to)
        results["layers"] = layer_probes(train_f, train.labels, test_f, test.labels, seed=seed)
        results["layers_pool_to"], results["layers_train_images"] = pool_to, len(train)

    def fewshot():
        out = {}
        for fraction in (0.01, 0.1):
            labelled = train.subset(balanced_subset(train.labels, fraction, seed))
            rows = {weights: finetune(backbone, labelled, test, size, device=device, seed=seed, progress=progress)}
            if not random_init:
                rows["random_init"] = finetune(init, labelled, test, size, device=device, seed=seed, progress=progress)
            out[f"{fraction:.0%}"] = {"labelled_images": len(labelled), **rows}
        results["fewshot"] = out

    def invariances():
        tiling = {k: cfg.method[k] for k in ("image_size", "gap", "jitter") if k in cfg.method}  # a tiling method's own
        inv = invariance(backbone, test, size, device=device, seed=seed, tiling=tiling)
        np.savez_compressed(run_dir / f"invariance{suffix}.npz",
                            **{f"{k}_{m}": v[m] for k, v in inv.items() for m in ("l2", "cosine", "relative")})
        results["invariance"] = {k: {m: v[m] for m in ("l2_mean", "l2_median", "cosine_mean", "l2_between_mean", "relative_mean")}
                                 for k, v in inv.items()}

    if "knn" in protocols or "linear" in protocols:
        step("knn" if "knn" in protocols else "linear", knn_linear)
    step("clustering", clustering)
    step("sgd", sgd)
    step("layers", layers)
    step("fewshot", fewshot)
    step("invariance", invariances)
    return results


def _last_pretext_acc(run_dir: Path) -> float | None:
    """The pretext task's own accuracy at the end of training (logged by pretext methods), else None.

    Recorded beside the linear accuracy so the two can be compared across methods.
    """
    log = run_dir / "metrics.jsonl"
    if not log.exists():
        return None
    values = [r["pretext_acc"] for r in map(json.loads, log.read_text().splitlines()) if "pretext_acc" in r]
    return float(np.mean(values[-5:])) if values else None  # the last few logged batches: one batch is noisy


def format_results(results: dict, prefix: str = "") -> str:
    """One ``key: value`` line per number, nested protocols as dotted keys."""
    lines = []
    for k, v in results.items():
        if k in ("run", "seconds", "timing_s"):
            continue
        if isinstance(v, dict):
            lines.append(format_results(v, f"{prefix}{k}."))
        elif isinstance(v, (int, float)) and not isinstance(v, bool):
            lines.append(f"{prefix}{k}: {v:.4g}" if isinstance(v, float) else f"{prefix}{k}: {v}")
    return "\n".join(line for line in lines if line)
