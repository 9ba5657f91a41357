"""``selfsup eval RUN``: the evaluation protocols, by name, on a run folder's backbone (or its random init).

Every protocol is a function of one ``RunEval`` (the backbone, the data, the
settings) returning the entries it adds to ``eval.json``; ``PROTOCOLS`` maps
names to them and is what the CLI, the grid runner and ``--help`` read.
Numbers are those of the final checkpoint on the split scored: ``val`` (held out
of the official training split, for every choice) or ``test`` (final numbers
only); the probes fit the run's training split, which never holds the rows
scored. Whatever a protocol chooses (an L2 weight, a learning rate) it chooses
on a held-out part of that training split.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from selfsup.backbones.adapters import rgb_input
from selfsup.backbones.base import Backbone
from selfsup.config import RunConfig
from selfsup.data import ImageDataset, load_dataset
from selfsup.eval.clustering import cluster_scores
from selfsup.eval.features import FeatureCache, file_digest, pooled_features
from selfsup.eval.frozen import knn_scores_of, linear_scores_of
from selfsup.eval.invariance import invariance
from selfsup.eval.layers import layer_probes
from selfsup.eval.supervised import balanced_subset, finetune, sgd_probe
from selfsup.hardware import resolve_device
from selfsup.precision import resolved
from selfsup.registry import InputError, Registry
from selfsup.runs.folder import last_pretext_acc, load_backbone, read_run_config, weights_file
from selfsup.train.build import load_train_data, make_backbone, method_from_config


@dataclass
class RunEval:
    """What every protocol reads: a run's backbone (trained, or at random init) and the data it is scored on."""

    cfg: RunConfig
    run_dir: Path
    backbone: Backbone  # wrapped to read normalised RGB (rgb_input)
    init: Backbone  # the same architecture at the run's random init: few-shot's baseline
    random_init: bool
    train: ImageDataset
    test: ImageDataset  # the split scored: "val" or "test" (test_split)
    size: int
    device: torch.device
    precision: str  # "fp32" or "bf16", decided for this device
    suffix: str  # of every file written: "", "_random_init", "_on_<dataset>", "_val", ...
    train_split: str = "train"
    test_split: str = "test"
    pool_to: int = 9216
    progress: bool = True
    cache_tag: str = ""
    cache: FeatureCache = field(init=False)

    def __post_init__(self):
        self.cache = FeatureCache(self.run_dir / "features")

    @property
    def seed(self) -> int:
        return self.cfg.train.seed

    @property
    def weights(self) -> str:
        return "random_init" if self.random_init else "trained"

    def features(self, layers: tuple[str, ...], pool: int | None) -> tuple[dict, dict]:
        """Train and test features of ``layers``, read from the cache or extracted once into it."""
        extract = pooled_features(self.backbone, pool, device=self.device, precision=self.precision, size=self.size,
                                  batch_size=self.cfg.eval.batch_size, channels_last=self.cfg.train.channels_last)
        train, test = (self.cache.get_or_extract(self.cache_tag, split, layers, pool,
                                                 lambda missing, ds=ds: extract(ds, missing))
                       for split, ds in ((self.train_split, self.train), (self.test_split, self.test)))
        return train, test

    def pre_logits(self) -> tuple[torch.Tensor, torch.Tensor]:
        train, test = self.features(("pre_logits",), None)
        return train["pre_logits"], test["pre_logits"]

    @cached_property
    def tiling(self) -> dict | None:
        """How the run's method cut tiles in training (``Method.eval_tiling``), for the "tiles" invariance."""
        return method_from_config(self.cfg, load_train_data(self.cfg)).eval_tiling()


def knn(run: RunEval) -> dict:
    train_x, test_x = run.pre_logits()
    e = run.cfg.eval
    return knn_scores_of(train_x, run.train.labels, test_x, run.test.labels, k=e.knn_k, temperature=e.knn_temperature,
                         precision=run.precision)


def linear(run: RunEval) -> dict:
    train_x, test_x = run.pre_logits()
    return linear_scores_of(train_x, run.train.labels, test_x, run.test.labels, seed=run.seed)


def clustering(run: RunEval) -> dict:
    test_x = run.pre_logits()[1]
    c = run.test.num_classes
    return {"clustering": {f"k={k}": cluster_scores(test_x, run.test.labels, k, seed=run.seed) for k in (c, 2 * c)}}


def sgd(run: RunEval) -> dict:
    r = sgd_probe(run.backbone, run.train, run.test, run.size, device=run.device, precision=run.precision,
                  seed=run.seed, progress=run.progress)
    return {"sgd_probe": {"top1": r.top1, "top5": r.top5, "lr": r.lr,
                          "val_top1": {str(k): v for k, v in r.val_top1.items()}}}


def layers(run: RunEval) -> dict:
    train_f, test_f = run.features(tuple(run.backbone.feature_names), run.pool_to)
    return {"layers": layer_probes(train_f, run.train.labels, test_f, run.test.labels, seed=run.seed),
            "layers_pool_to": run.pool_to, "layers_train_images": len(run.train)}


def fewshot(run: RunEval) -> dict:
    out = {}
    for fraction in (0.01, 0.1):
        labelled = run.train.subset(balanced_subset(run.train.labels, fraction, run.seed))
        encoders = {run.weights: run.backbone, **({} if run.random_init else {"random_init": run.init})}
        rows = {name: finetune(b, labelled, run.test, run.size, device=run.device, precision=run.precision,
                               seed=run.seed, progress=run.progress) for name, b in encoders.items()}
        out[f"{fraction:.0%}"] = {"labelled_images": len(labelled), **rows}
    return {"fewshot": out}


def invariances(run: RunEval) -> dict:
    inv = invariance(run.backbone, run.test, run.size, device=run.device, precision=run.precision, seed=run.seed,
                     batch_size=run.cfg.eval.batch_size, tiling=run.tiling)
    np.savez_compressed(run.run_dir / f"invariance{run.suffix}.npz",
                        **{f"{k}_{m}": v[m] for k, v in inv.items() for m in ("l2", "cosine", "relative")})
    keys = ("l2_mean", "l2_median", "cosine_mean", "l2_between_mean", "relative_mean")
    return {"invariance": {k: {m: v[m] for m in keys} for k, v in inv.items()}}


@dataclass(frozen=True)
class Protocol:
    run: Callable[[RunEval], dict]
    key: str  # the eval.json entry it writes: a run whose file has it is evaluated with it
    summary: str  # one line for --help and the docs
    default: bool = False  # run when no protocol is named


PROTOCOLS = Registry("protocol")
PROTOCOLS.register("knn", Protocol(knn, "knn_top1", "weighted kNN top-1 on frozen pre-logits", default=True))
PROTOCOLS.register("linear", Protocol(linear, "linear_top1", "L-BFGS linear probe on frozen pre-logits", default=True))
PROTOCOLS.register("clustering", Protocol(clustering, "clustering", "k-means NMI/ARI/purity of the test features",
                                          default=True))
PROTOCOLS.register("sgd", Protocol(sgd, "sgd_probe", "SGD linear probe on augmented images, lr chosen on held-out"))
PROTOCOLS.register("layers", Protocol(layers, "layers", "a linear probe per layer, each pooled to ~pool_to dims"))
PROTOCOLS.register("fewshot", Protocol(fewshot, "fewshot", "fine-tuning on 1% and 10% of the labels"))
PROTOCOLS.register("invariance", Protocol(invariances, "invariance", "how far rotations, tiles, colour and crops move "
                                                                     "the representation"))


def default_protocols(cfg: RunConfig) -> tuple[str, ...]:
    """The protocols run when none is named: the defaults, without the linear probe if ``eval.linear: false``."""
    return tuple(n for n in PROTOCOLS.names_in_order()
                 if PROTOCOLS.get(n).default and (n != "linear" or cfg.eval.linear))


def protocols_help() -> str:
    return "; ".join(f"{n}: {PROTOCOLS.get(n).summary}" for n in PROTOCOLS.names_in_order())


def eval_file(run_dir: Path, random_init: bool = False, dataset: str | None = None, split: str = "test") -> Path:
    """``eval.json``, ``eval_random_init.json``, ``eval_on_<dataset>.json``, ``eval_val.json``, ...: where the
    results of one setting go (``_val`` for the validation split, none for the test split)."""
    return Path(run_dir) / f"eval{_suffix(random_init, dataset, split)}.json"


def missing_protocols(run_dir: Path, protocols: tuple[str, ...], random_init: bool = False,
                      split: str = "test") -> tuple[str, ...]:
    """``protocols`` whose entry the run's results file lacks."""
    path = eval_file(run_dir, random_init, split=split)
    results = json.loads(path.read_text()) if path.exists() else {}
    return tuple(p for p in protocols if PROTOCOLS.get(p).key not in results)


def evaluate_run(run_dir: str | Path, protocols: tuple[str, ...] | None = None, random_init: bool = False,
                 dataset: str | None = None, data_root: str | None = None, train_subset: int | None = None,
                 pool_to: int = 9216, device: str = "auto", progress: bool = True,
                 split: str | None = None) -> dict:
    """Run ``protocols`` (None: ``default_protocols``) on the run's final backbone, or the same architecture at
    random init, and merge their entries into the run's results file (``eval_file``).

    With ``dataset`` (transfer) the data is that dataset's train/test splits at the input size the
    backbone was trained at. Frozen features are cached under ``RUN_DIR/features`` per (weights,
    layer, split), so protocols run later reuse them. ``train_subset`` keeps the first N training
    images (quick looks; reported numbers use the full split). ``split`` is the split scored (None:
    the config's ``data.eval_split``): "val" for choices, "test" for final numbers.
    """
    run_dir = Path(run_dir)
    cfg = read_run_config(run_dir)
    protocols = default_protocols(cfg) if protocols is None else tuple(protocols)
    for name in protocols:
        PROTOCOLS.get(name)  # an unknown name fails here, naming the choices
    split = split or cfg.data.eval_split
    run = _prepare(cfg, run_dir, random_init, dataset, data_root, train_subset, pool_to,
                   resolve_device(device, "--device"), progress, split)
    path = eval_file(run_dir, random_init, dataset, split)
    results = json.loads(path.read_text()) if path.exists() else {}
    results.update(run=str(run_dir), weights=run.weights, dataset=dataset or cfg.data.name,
                   train_split=run.train_split, test_split=run.test_split, train_images=len(run.train),
                   test_images=len(run.test), test_source=run.test.source, precision=run.precision)
    pretext = None if random_init else last_pretext_acc(run_dir)
    if pretext is not None:
        results["pretext_acc"] = pretext
    for name in PROTOCOLS.names_in_order():
        if name not in protocols:
            continue
        t0 = time.perf_counter()
        if progress:
            print(f"[{run.weights}] {name}...", flush=True)
        results.update(PROTOCOLS.get(name).run(run))
        results.setdefault("timing_s", {})[name] = round(time.perf_counter() - t0, 1)
        path.write_text(json.dumps(results, indent=2))  # after each protocol: a killed evaluation keeps its work
    return results


def _suffix(random_init: bool, dataset: str | None, split: str = "test") -> str:
    return ("_random_init" if random_init else "") + (f"_on_{dataset}" if dataset else "") + (
        "_val" if split == "val" else "")


def _check_disjoint(train_split: str, split: str) -> None:
    """Scoring must never read rows the probes fit: "val" is inside "trainval", "train" inside both."""
    inside = {"train": {"train", "trainval"}, "val": {"trainval"}, "trainval": {"train", "trainval"}}
    overlap = set(train_split.split("+")) & (inside.get(split, set()) | {split})
    if overlap:
        raise InputError(f"--split {split}: the probes' training split {train_split!r} (data.split) holds those "
                         f"rows; score 'val' with data.split=train, or 'test'")


def _prepare(cfg: RunConfig, run_dir: Path, random_init: bool, dataset: str | None, data_root: str | None,
             train_subset: int | None, pool_to: int, device: torch.device, progress: bool,
             split: str = "test") -> RunEval:
    """The backbones and the labelled splits of one evaluation, checked."""
    torch.manual_seed(cfg.train.seed)
    init = make_backbone(cfg).eval()  # the random-init baseline (same seed as the run's own init)
    backbone = init if random_init else load_backbone(run_dir)[0]
    size = cfg.augment.get("size") or cfg.data.resolution
    train_split = "train" if dataset else cfg.data.split
    _check_disjoint(train_split, split)
    if dataset is None:
        train, test = (load_train_data(cfg, split=s) for s in (train_split, split))
    else:  # transfer: the other dataset at the input size the backbone was trained at
        size = size or load_train_data(cfg).resolution
        d = cfg.data
        train, test = (load_dataset(dataset, root=data_root, split=s, resolution=size, val_fraction=d.val_fraction,
                                    val_seed=d.val_seed) for s in (train_split, split))
    for ds, role in ((train, "training"), (test, "test")):
        if ds.labels is None:
            raise InputError(f"{ds.name}: the {role} split has no labels, so the evaluation protocols cannot run")
    if train.classes is not None and test.classes is not None and train.classes != test.classes:
        # e.g. 'photos', whose test split is cut from other photos: scores would compare unrelated labels
        raise InputError(f"{test.name}'s classes {test.classes[:5]}... are not {train.name}'s {train.classes[:5]}...: "
                         f"the protocols need one label set; evaluate on another data set (--dataset NAME)")
    if train_subset is not None:
        train = train.subset(range(min(train_subset, len(train))))
    precision = resolved(cfg.eval.precision or cfg.train.precision, device)
    weights = f"random_init-seed{cfg.train.seed}" if random_init else f"trained-{file_digest(weights_file(run_dir))}"
    return RunEval(cfg=cfg, run_dir=run_dir, random_init=random_init, train=train, test=test,
                   size=size or train.resolution, device=device, precision=precision,
                   backbone=rgb_input(backbone, train.mean, train.std),  # L-only encoders read RGB too
                   init=rgb_input(init, train.mean, train.std), suffix=_suffix(random_init, dataset, split),
                   pool_to=pool_to, progress=progress, train_split=train_split, test_split=split,
                   cache_tag=features_tag(weights, precision, dataset or cfg.data.name, len(train)))


def features_tag(weights: str, precision: str, dataset: str, train_images: int | str) -> str:
    """The feature cache's folder for one (weights, precision, dataset, training-set size); "*" globs."""
    return f"{weights}-{precision}-{dataset}-n{train_images}"


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
