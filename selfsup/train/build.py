"""From a config to live objects: the checked config, the dataset, its loader, the method.

This is where the config's free-form sections (``backbone``, ``method``,
``augment``) meet the registries whose constructors they feed.
"""
from __future__ import annotations

import inspect
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import torch

from selfsup.augment import ViewAugment
from selfsup.backbones import BACKBONES, build_backbone
from selfsup.backbones.base import Backbone
from selfsup.config import RunConfig, load_config
from selfsup.data import BatchLoader, ImageDataset, load_dataset
from selfsup.data.shards import ShardDataset, ShardLoader, open_shards
from selfsup.methods import DATASET_SIZE_ARG, METHODS, Method, build_method
from selfsup.registry import ConfigError, InputError, check_kwargs

SHARDS = "shards"  # data.name of a folder of tar shards (selfsup.data.shards), streamed rather than loaded


def load_train_data(cfg: RunConfig, split: str | None = None) -> ImageDataset | ShardDataset:
    """The training set (or ``split`` of it); with ``data.name: shards`` only shards.json is read here."""
    d = cfg.data
    if d.name == SHARDS:
        return _train_shards(cfg, split)
    ds = load_dataset(d.name, root=d.root, split=split or d.split, resolution=d.resolution, cache_dir=d.cache_dir,
                      val_fraction=d.val_fraction, val_seed=d.val_seed)
    if d.subset is not None and split is None:
        if not 0 < d.subset <= len(ds):
            raise InputError(f"config key 'data.subset'={d.subset} must be in [1, {len(ds)}] for {d.name}/{d.split}")
        ds = ds.subset(range(d.subset))
    return ds


def _train_shards(cfg: RunConfig, split: str | None) -> ShardDataset:
    d = cfg.data
    if d.root is None:
        raise ConfigError(
            f"data.name={SHARDS!r} needs data.root=DIR, a folder written by `selfsup prepare DATASET --shards DIR`"
        )
    if split is not None:
        raise InputError(
            f"data.name={SHARDS!r}: {d.root} is streamed for training, with no {split!r} split in memory, and "
            "evaluation needs an in-memory dataset: evaluate on the dataset the shards came from, "
            "e.g. `selfsup eval RUN --dataset NAME`"
        )
    for key, value in (("subset", d.subset), ("cache_dir", d.cache_dir)):
        if value is not None:
            raise ConfigError(f"config key 'data.{key}'={value!r} does not apply to data.name={SHARDS!r}; remove it")
    ds = open_shards(d.root)
    if d.resolution is not None and d.resolution != ds.resolution:
        raise ConfigError(
            f"config key 'data.resolution'={d.resolution}, but the shards in {d.root} are {ds.resolution} px; "
            "shards are not resized on the fly: write them at that resolution (selfsup prepare --resolution)"
        )
    return ds


def make_loader(cfg: RunConfig, dataset: ImageDataset | ShardDataset, device: torch.device,
                rank: int = 0, world_size: int = 1) -> BatchLoader | ShardLoader:
    """The training batches: shuffled epochs, whole batches only, resumable from ``state_dict()``."""
    t = cfg.train
    if isinstance(dataset, ShardDataset):
        return ShardLoader(dataset, t.batch_size, device=device, seed=t.seed, shuffle_buffer=cfg.data.shuffle_buffer,
                           rank=rank, world_size=world_size, workers=cfg.data.workers)
    return BatchLoader(dataset, t.batch_size, device=device, shuffle=True, drop_last=True, seed=t.seed,
                       rank=rank, world_size=world_size)


def method_from_config(cfg: RunConfig, dataset: ImageDataset | ShardDataset,
                       device: torch.device | str = "cpu") -> Method:
    """``cfg``'s method, built from its seed (the backbone first, so its init is ``make_backbone``'s), on
    ``device``, channels-last when ``train.channels_last``, in training mode.

    Its augmentation's views are sized to the data unless ``augment.size`` says otherwise. A method
    whose constructor takes ``num_samples`` (memory bank, pseudo-labels) gets the training set's size;
    the config cannot set it. A method with an ``on_epoch_start`` hook (DeepCluster clusters every
    image) cannot train on streamed shards.
    """
    cls = METHODS.get(cfg.method["name"])
    if (
        isinstance(dataset, ShardDataset)
        and getattr(cls, "on_epoch_start", Method.on_epoch_start) is not Method.on_epoch_start
    ):
        raise ConfigError(
            f"method {cfg.method['name']!r} needs the whole training set at the start of each epoch (on_epoch_start), "
            f"which streamed shards (data.name={SHARDS!r}) cannot give; train it from an in-memory or memory-mapped "
            "dataset (e.g. data.name=fashion_mnist data.cache_dir=DIR)"
        )
    aug = {"size": dataset.resolution, "mean": tuple(dataset.mean), "std": tuple(dataset.std), **cfg.augment}
    kwargs = dict(cfg.method)
    name = kwargs.pop("name")
    if DATASET_SIZE_ARG in inspect.signature(cls).parameters:
        kwargs[DATASET_SIZE_ARG] = len(dataset)
    torch.manual_seed(cfg.train.seed)
    backbone = make_backbone(cfg)
    with _rejected_as_config_error("augment (config key augment.*)"):
        augment = ViewAugment(**aug)
    with _rejected_as_config_error(f"method {name!r} (config key method.*)"):
        method = build_method(name, backbone=backbone, augment=augment, **kwargs).to(device)
    if cfg.train.channels_last:
        method = method.to(memory_format=torch.channels_last)
    return method.train()


def make_backbone(cfg: RunConfig) -> Backbone:
    """The backbone section built (at torch's current seed)."""
    kwargs = dict(cfg.backbone)
    name = kwargs.pop("name")
    with _rejected_as_config_error(f"backbone {name!r} (config key backbone.*)"):
        return build_backbone(name, **kwargs)


@contextmanager
def _rejected_as_config_error(what: str) -> Iterator[None]:
    """A ValueError from a constructor fed by the config is a bad config value: say so, naming the section."""
    try:
        yield
    except ConfigError:
        raise
    except ValueError as err:
        raise ConfigError(f"{what}: {err}") from err


def check_config(cfg: RunConfig) -> RunConfig:
    """Check the constructor sections against the registries and the run-level values, before anything is built."""
    for section, registry in (("backbone", BACKBONES), ("method", METHODS)):
        kwargs = dict(getattr(cfg, section))
        if "name" not in kwargs:
            raise ConfigError(f"config section {section!r} needs a 'name'; choose from: {', '.join(registry.names())}")
        name = kwargs.pop("name")
        fn = registry.get(name)
        if section == "method" and DATASET_SIZE_ARG in kwargs:
            raise ConfigError(f"config key 'method.{DATASET_SIZE_ARG}' is set from the training set's size; remove it")
        check_kwargs(fn, kwargs, f"{section} {name!r} (config key {section}.*)")
    check_kwargs(ViewAugment, cfg.augment, "augment (config key augment.*)")
    if Path(cfg.name).name != cfg.name or cfg.name in ("", ".", ".."):  # "../x" or "/abs" would leave out_dir
        raise ConfigError(f"config key 'name'={cfg.name!r} must be a plain folder name inside out_dir={cfg.out_dir!r}")
    t = cfg.train  # each value's own range is checked as the config is read (selfsup.config.ranged)
    if t.min_lr > t.lr:
        raise ConfigError(f"config key 'train.min_lr'={t.min_lr} must not exceed train.lr={t.lr}")
    if t.warmup_steps >= t.steps:
        raise ConfigError(
            f"config key 'train.warmup_steps'={t.warmup_steps} must be smaller than train.steps={t.steps}"
        )
    with torch.device("meta"):  # no memory, no init cost: a bad width or depth fails before any data is read
        make_backbone(cfg)
    return cfg


def load_checked_config(name_or_path: str | None = None, overrides: list[str] = ()) -> RunConfig:
    """``load_config`` then ``check_config``: what every command reads a config with."""
    return check_config(load_config(name_or_path, overrides))
