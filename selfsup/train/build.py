"""From a config to live objects: the dataset, the method, a trained backbone."""
from __future__ import annotations

import ctypes
import inspect
import sys
from pathlib import Path

import torch
import yaml

from selfsup.augment import ViewAugment
from selfsup.backbones import build_backbone
from selfsup.backbones.base import Backbone
from selfsup.config import DATASET_SIZE_ARG, RunConfig, from_dict
from selfsup.data import BatchLoader, ImageDataset, load_dataset
from selfsup.data.shards import ShardDataset, ShardLoader, open_shards
from selfsup.methods import METHODS, Method, build_method
from selfsup.registry import ConfigError


SHARDS = "shards"  # data.name of a folder of tar shards (selfsup.data.shards), streamed rather than loaded


def load_train_data(cfg: RunConfig, split: str | None = None) -> ImageDataset | ShardDataset:
    """The training set (or ``split`` of it); with ``data.name: shards`` only shards.json is read here."""
    d = cfg.data
    if d.name == SHARDS:
        return _train_shards(cfg, split)
    ds = load_dataset(d.name, root=d.root, split=split or d.split, resolution=d.resolution, cache_dir=d.cache_dir)
    if d.subset is not None and split is None:
        if not 0 < d.subset <= len(ds):
            raise ValueError(f"config key 'data.subset'={d.subset} must be in [1, {len(ds)}] for {d.name}/{d.split}")
        ds = ds.subset(range(d.subset))
    return ds


def _train_shards(cfg: RunConfig, split: str | None) -> ShardDataset:
    d = cfg.data
    if d.root is None:
        raise ConfigError(f"data.name={SHARDS!r} needs data.root=DIR, a folder written by `selfsup prepare DATASET --shards DIR`")
    if split is not None:
        raise ValueError(
            f"data.name={SHARDS!r}: {d.root} is streamed for training, with no {split!r} split in memory, and evaluation "
            "needs an in-memory dataset: evaluate on the dataset the shards came from, e.g. `selfsup eval RUN --dataset NAME`"
        )
    for key, value in (("subset", d.subset), ("cache_dir", d.cache_dir)):
        if value is not None:
            raise ConfigError(f"config key 'data.{key}'={value!r} does not apply to data.name={SHARDS!r}; remove it")
    ds = open_shards(d.root)
    if d.resolution is not None and d.resolution != ds.resolution:
        raise ConfigError(f"config key 'data.resolution'={d.resolution}, but the shards in {d.root} are {ds.resolution} px; "
                          "shards are not resized on the fly: write them at that resolution (selfsup prepare --resolution)")
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


def placed_method(cfg: RunConfig, dataset: ImageDataset, device: torch.device, channels_last: bool) -> Method:
    """``cfg``'s method built from its seed, on ``device``, channels-last if asked."""
    torch.manual_seed(cfg.train.seed)
    method = make_method(cfg, dataset).to(device)
    return method.to(memory_format=torch.channels_last) if channels_last else method


def ready_method(cfg: RunConfig, dataset: ImageDataset, device: torch.device, channels_last: bool) -> Method:
    """``placed_method`` ready for steps timed outside the loop (``selfsup speed``, grid budgets): its
    epoch-0 state set (DeepCluster's pseudo-labels), in training mode."""
    method = placed_method(cfg, dataset, device, channels_last)
    method.on_epoch_start(0, dataset, device)  # not timed by the callers
    return method.train()


def make_backbone(cfg: RunConfig) -> Backbone:
    kwargs = dict(cfg.backbone)
    return build_backbone(kwargs.pop("name"), **kwargs)


def make_method(cfg: RunConfig, dataset: ImageDataset | ShardDataset) -> Method:
    """The method with its backbone and its augmentation (views sized to the data unless set).

    A method whose constructor takes ``num_samples`` (memory bank, pseudo-labels)
    gets the training set's size; the config cannot set it. A method with an
    ``on_epoch_start`` hook (DeepCluster clusters every image) cannot train on streamed shards.
    """
    cls = METHODS.get(cfg.method["name"])
    if isinstance(dataset, ShardDataset) and getattr(cls, "on_epoch_start", Method.on_epoch_start) is not Method.on_epoch_start:
        raise ConfigError(
            f"method {cfg.method['name']!r} needs the whole training set at the start of each epoch (on_epoch_start), "
            f"which streamed shards (data.name={SHARDS!r}) cannot give; train it from an in-memory or memory-mapped "
            "dataset (e.g. data.name=fashion_mnist data.cache_dir=DIR)"
        )
    aug = {"size": dataset.resolution, "mean": tuple(dataset.mean), "std": tuple(dataset.std), **cfg.augment}
    kwargs = dict(cfg.method)
    name = kwargs.pop("name")
    if DATASET_SIZE_ARG in kwargs:
        raise ConfigError(f"config key 'method.{DATASET_SIZE_ARG}' is set from the training set's size; remove it")
    if DATASET_SIZE_ARG in inspect.signature(METHODS.get(name)).parameters:
        kwargs[DATASET_SIZE_ARG] = len(dataset)
    return build_method(name, backbone=make_backbone(cfg), augment=ViewAugment(**aug), **kwargs)


def read_run_config(run_dir: Path) -> RunConfig:
    path = Path(run_dir) / "config.yaml"
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: {run_dir} is not a selfsup run folder")
    return from_dict(yaml.safe_load(path.read_text()))


def load_backbone(run_dir: Path) -> tuple[Backbone, RunConfig]:
    """The run's trained backbone (from its safetensors export, else its last checkpoint)."""
    from safetensors.torch import load_file

    from selfsup.train.checkpoint import load

    run_dir = Path(run_dir)
    cfg = read_run_config(run_dir)
    backbone = make_backbone(cfg)
    exported = run_dir / "backbone.safetensors"
    if exported.exists():
        backbone.load_state_dict(load_file(str(exported)))
    elif (run_dir / "last.pt").exists():
        state = load(run_dir / "last.pt")["method"]
        backbone.load_state_dict({k[len("backbone."):]: v for k, v in state.items() if k.startswith("backbone.")})
    else:
        raise FileNotFoundError(f"{run_dir} has neither backbone.safetensors nor last.pt: was it trained?")
    return backbone.eval(), cfg


def save_run_config(cfg: RunConfig, run_dir: Path) -> None:
    (Path(run_dir) / "config.yaml").write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """bf16 where the hardware runs it fast (CUDA with bf16, CPUs with AMX or AVX-512 BF16), else fp32."""
    if precision == "fp32":
        return None
    if precision == "bf16":
        return torch.bfloat16
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else None
    return torch.bfloat16 if cpu_has_fast_bf16() else None


def cpu_has_fast_bf16() -> bool:
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return any(f in flags for f in ("amx_bf16", "avx512_bf16"))


def keep_freed_cpu_memory() -> bool:
    """Tell glibc's malloc to keep freed memory for reuse instead of returning it to the system.

    By default every CPU buffer over 32 MB (a batch's activations) is a fresh mmap, and its first
    writes fault in zeroed pages: that took 15-25% of a bf16 ResNet-18 step at 32 px and 36% of an
    fp32 one on 2-core AMX CPUs. Off mmap, freed buffers come back from the heap, already mapped.
    Returns whether it applied (glibc only; elsewhere a no-op).
    """
    if sys.platform != "linux":
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        m_trim_threshold, m_mmap_max = -1, -4  # mallopt parameters from glibc's malloc.h
        return bool(libc.mallopt(m_mmap_max, 0)) and bool(libc.mallopt(m_trim_threshold, 2**31 - 1))
    except (OSError, AttributeError):  # musl and other C libraries: leave their allocator alone
        return False


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"config key 'train.device'={name!r} but no CUDA device is available")
    return dev
