"""Run configuration: typed dataclasses, YAML files and ``key=value`` overrides.

Plain data: only the run-level knobs live here. The ``backbone``, ``method`` and
``augment`` sections are keyword arguments for constructors whose signatures hold
the defaults; ``selfsup.train.build.check_config`` checks them against those
signatures, so a misspelled key or a value outside the allowed set fails before any
data is read.
"""
from __future__ import annotations

import dataclasses
import difflib
import re
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from selfsup.registry import ConfigError, _describe, _value_fits

CONFIG_DIR = Path(__file__).parent / "configs"
RUN_CONFIG = "config.yaml"  # a run folder's copy of its config


class _Loader(yaml.SafeLoader):
    """YAML 1.2 floats: PyYAML alone reads ``1e-3`` (no dot) as the string '1e-3'."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:\d[\d_]*\.[\d_]*(?:[eE][-+]?\d+)?|\d[\d_]*[eE][-+]?\d+|\.\d[\d_]*(?:[eE][-+]?\d+)?"
               r"|\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"),
    list("-+0123456789."),
)


def _yaml(text: str):
    return yaml.load(text, Loader=_Loader)


@dataclass
class DataConfig:
    name: str = "fashion_mnist"
    root: str | None = None  # None: the dataset's default location
    split: str = "train"  # the official training split minus the validation rows (selfsup.data.splits)
    eval_split: str = "test"  # where `selfsup eval` scores; "val" for every choice, "test" for final numbers
    val_fraction: float = 0.1  # share of each class of the training split held out as "val"
    val_seed: int = 0
    resolution: int | None = None  # None: native size
    cache_dir: str | None = None  # decode once into a uint8 memmap here
    subset: int | None = None  # train on the first N images only (quick runs, tests)
    shuffle_buffer: int = 2000  # data.name=shards only: samples held back and drawn from at random while streaming
    workers: int = 0  # data.name=shards only: threads decoding the images (0: in the loading thread)


@dataclass
class TrainConfig:
    steps: int = 1000
    batch_size: int = 256
    optimizer: Literal["sgd", "adamw", "lars"] = "sgd"
    lr: float = 0.3  # peak learning rate, after warm-up
    min_lr: float = 0.0  # end of the cosine decay
    warmup_steps: int = 0
    weight_decay: float = 1e-4  # not applied to biases and norm parameters
    momentum: float = 0.9  # SGD / LARS momentum, AdamW beta1
    grad_clip: float | None = None  # max global gradient norm
    precision: Literal["auto", "fp32", "bf16"] = "auto"  # auto: bf16 where the hardware has it
    channels_last: bool = True
    compile: bool = False  # torch.compile the backbone's forward (docs/speed.md#channels-last-and-torchcompile)
    device: str = "auto"  # auto, cpu, cuda, cuda:1, ...
    seed: int = 0
    ckpt_every: int = 500
    log_every: int = 20
    probe_every: int = 0  # steps between online kNN probes on the validation split (0: none; selfsup.train.probe)
    probe_bank: int = 10000  # labelled training images in the probe's kNN bank
    probe_val: int = 2000  # validation images it scores
    progress: bool = True
    # multi-process (torchrun) only; batch_size above is per process, the global batch is world_size times it
    sync_bn: bool = False  # batch-norm statistics over the global batch (SyncBatchNorm; CUDA only)
    find_unused_parameters: bool = False  # for methods leaving some trainable parameters without gradient in a step


@dataclass
class EvalConfig:
    knn_k: int = 200
    knn_temperature: float = 0.07
    linear: bool = True  # the L-BFGS probe among the default protocols
    batch_size: int = 512  # images per forward when extracting features
    precision: Literal["auto", "fp32", "bf16"] | None = None  # None: train.precision


@dataclass
class RunConfig:
    name: str = "run"
    out_dir: str = "runs"
    data: DataConfig = field(default_factory=DataConfig)
    backbone: dict[str, Any] = field(default_factory=lambda: {"name": "resnet18_v1"})
    method: dict[str, Any] = field(default_factory=lambda: {"name": "simclr"})
    augment: dict[str, Any] = field(default_factory=dict)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @property
    def run_dir(self) -> Path:
        return Path(self.out_dir) / self.name


def from_dict(data: dict[str, Any], cls: type = RunConfig, where: str = "", kind: str = "config") -> Any:
    """Build the dataclass ``cls`` from a nested dict; unknown keys and wrong values are errors naming them.

    Fields may be dataclasses, ``dict[str, ...]`` (kept as given), ``list[...]`` of dataclasses or
    of scalars, or scalars checked against their type hint. ``kind`` names the file in messages.
    """
    if not isinstance(data, dict):
        raise ConfigError(f"{kind} section {where.rstrip('.') or '<root>'!r} must be a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    kwargs = {}
    for key, value in data.items():
        path = f"{where}{key}"
        if key not in names:
            close = difflib.get_close_matches(str(key), names, n=1)
            hint = f" (did you mean {where + close[0]!r}?)" if close else ""
            raise ConfigError(f"unknown {kind} key {path!r}{hint}; keys here are: {', '.join(names)}")
        kwargs[key] = _field_value(value, hints[key], path, kind)
    missing = [
        f.name
        for f in dataclasses.fields(cls)
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING and f.name not in kwargs
    ]
    if missing:
        raise ConfigError(f"{kind} section {where.rstrip('.') or '<root>'!r} needs {missing[0]!r}")
    return cls(**kwargs)


def _field_value(value: Any, hint: Any, path: str, kind: str) -> Any:
    if dataclasses.is_dataclass(hint):
        return from_dict(value or {}, hint, f"{path}.", kind)
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{kind} key {path!r} must be a mapping, got {value!r}")
        return dict(value)
    if origin is list:
        if not isinstance(value, list) or not value:
            raise ConfigError(f"{kind} key {path!r} must be a non-empty list, got {value!r}")
        return [_field_value(v, args[0], f"{path}[{i}]", kind) for i, v in enumerate(value)]
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not _value_fits(value, hint):
        raise ConfigError(f"{kind} key {path!r}={value!r} is not allowed; expected {_describe(hint)}")
    return value


def parse_override(text: str) -> tuple[list[str], Any]:
    """``train.lr=0.1`` -> (["train", "lr"], 0.1); the value is parsed as YAML."""
    if "=" not in text:
        raise ConfigError(f"override {text!r} must look like key=value, e.g. train.steps=100")
    key, raw = text.split("=", 1)
    return key.strip().split("."), _yaml(raw) if raw.strip() else None


def resolve_config_path(name_or_path: str | Path, folder: Path = CONFIG_DIR, what: str = "config") -> Path:
    """A YAML path, or the name of a bundled file in ``folder`` (``simclr`` -> selfsup/configs/simclr.yaml).

    ``what`` names the kind of file in errors ("config", "grid").
    """
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml"):
        if not path.exists():
            raise ConfigError(f"{what} file {str(path)!r} does not exist")
        return path
    bundled = folder / f"{name_or_path}.yaml"
    if not bundled.exists():
        names = sorted(p.stem for p in folder.glob("*.yaml"))
        raise ConfigError(
            f"no {what} file {str(name_or_path)!r} and no bundled {what} of that name; bundled: {', '.join(names)}"
        )
    return bundled


def load_config(name_or_path: str | None = None, overrides: list[str] = ()) -> RunConfig:
    """Read a YAML config (or the defaults) and apply ``key=value`` overrides; keys and run-level values are checked."""
    data: dict[str, Any] = {}
    if name_or_path is not None:
        path = resolve_config_path(name_or_path)
        data = _yaml(path.read_text()) or {}
        if not isinstance(data, dict):
            raise ConfigError(f"config file {str(path)!r} must hold a mapping at the top level")
    for text in overrides:
        keys, value = parse_override(text)
        node = data
        for k in keys[:-1]:
            node = node.setdefault(k, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {text!r}: {k!r} is not a section")
        node[keys[-1]] = value
    return from_dict(data)


def save_config(cfg: RunConfig, run_dir: str | Path) -> Path:
    path = Path(run_dir) / RUN_CONFIG
    path.write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))
    return path


def read_config(path: str | Path) -> RunConfig:
    """A config file written by ``save_config`` (or by hand), typed and checked like ``load_config``'s."""
    path = Path(path)
    data = _yaml(path.read_text()) or {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {str(path)!r} must hold a mapping at the top level")
    return from_dict(data)
