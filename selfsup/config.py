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


def _yaml(text: str, where: str = "override"):
    try:
        return yaml.load(text, Loader=_Loader)
    except yaml.YAMLError as err:  # one line: the file, the line and column, what the parser expected
        mark = getattr(err, "problem_mark", None)
        at = f" line {mark.line + 1} column {mark.column + 1}" if mark is not None else ""
        raise ConfigError(f"{where}{at} is not valid YAML: {getattr(err, 'problem', None) or err}") from None


def read_yaml(path: str | Path) -> Any:
    """A YAML file (YAML 1.2 floats); a syntax error is a ConfigError naming the file, line and column."""
    return _yaml(Path(path).read_text(), f"file {str(path)!r}")


def ranged(default: Any, interval: str) -> Any:
    """A numeric field with its allowed interval, e.g. ``"(0, inf)"``; ``from_dict`` refuses values outside it.

    Written as in mathematics: a parenthesis excludes the bound, a bracket includes it. NaN is never inside.
    """
    lo, hi = (float(v) for v in interval[1:-1].split(","))
    return field(default=default, metadata={"interval": (interval, interval[0] == "[", lo, hi, interval[-1] == "]")})


def _inside(value: float, closed_lo: bool, lo: float, hi: float, closed_hi: bool) -> bool:
    above = value >= lo if closed_lo else value > lo
    below = value <= hi if closed_hi else value < hi
    return above and below  # False for NaN: every comparison with it is False


@dataclass
class DataConfig:
    name: str = "fashion_mnist"
    root: str | None = None  # None: the dataset's default location
    split: str = "train"  # the official training split minus the validation rows (selfsup.data.splits)
    eval_split: str = "test"  # where `selfsup eval` scores; "val" for every choice, "test" for final numbers
    val_fraction: float = ranged(0.1, "[0, 1)")  # share of each class of the training split held out as "val"
    val_seed: int = ranged(0, "[0, inf)")
    resolution: int | None = ranged(None, "[1, inf)")  # None: native size
    cache_dir: str | None = None  # decode once into a uint8 memmap here
    subset: int | None = ranged(None, "[1, inf)")  # train on the first N images only (quick runs, tests)
    # data.name=shards only: samples held back and drawn from at random while streaming, and decoding threads
    shuffle_buffer: int = ranged(2000, "[0, inf)")
    workers: int = ranged(0, "[0, inf)")  # 0: decode in the loading thread


@dataclass
class TrainConfig:
    steps: int = ranged(1000, "[1, inf)")
    batch_size: int = ranged(256, "[1, inf)")
    optimizer: Literal["sgd", "adamw", "lars"] = "sgd"
    lr: float = ranged(0.3, "(0, inf)")  # peak learning rate, after warm-up
    min_lr: float = ranged(0.0, "[0, inf)")  # end of the cosine decay
    warmup_steps: int = ranged(0, "[0, inf)")
    weight_decay: float = ranged(1e-4, "[0, inf)")  # not applied to biases and norm parameters
    norm_lr_scale: float = ranged(1.0, "(0, inf)")  # lr factor of biases and norm parameters (Barlow Twins: 0.024)
    momentum: float = ranged(0.9, "[0, 1)")  # SGD / LARS momentum, AdamW beta1
    grad_clip: float | None = ranged(None, "(0, inf)")  # max global gradient norm
    precision: Literal["auto", "fp32", "bf16"] = "auto"  # auto: bf16 where the hardware has it
    channels_last: bool = True
    compile: bool = False  # torch.compile the backbone's forward (docs/speed.md#channels-last-and-torchcompile)
    device: str = "auto"  # auto, cpu, cuda, cuda:1, ...
    seed: int = ranged(0, "[0, inf)")
    ckpt_every: int = ranged(500, "[1, inf)")
    log_every: int = ranged(20, "[1, inf)")
    probe_every: int = ranged(0, "[0, inf)")  # steps between online kNN probes on val (0: none; selfsup.train.probe)
    probe_bank: int = ranged(10000, "[1, inf)")  # labelled training images in the probe's kNN bank
    probe_val: int = ranged(2000, "[1, inf)")  # validation images it scores
    progress: bool = True
    # multi-process (torchrun) only; batch_size above is per process, the global batch is world_size times it
    sync_bn: bool = False  # batch-norm statistics over the global batch (SyncBatchNorm; CUDA only)
    find_unused_parameters: bool = False  # for methods leaving some trainable parameters without gradient in a step


@dataclass
class EvalConfig:
    knn_k: int = ranged(200, "[1, inf)")
    knn_temperature: float = ranged(0.07, "(0, inf)")
    linear: bool = True  # the L-BFGS probe among the default protocols
    batch_size: int = ranged(512, "[1, inf)")  # images per forward when extracting features
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
    fields = {f.name: f for f in dataclasses.fields(cls)}
    names = list(fields)
    kwargs = {}
    for key, value in data.items():
        path = f"{where}{key}"
        if key not in names:
            close = difflib.get_close_matches(str(key), names, n=1)
            hint = f" (did you mean {where + close[0]!r}?)" if close else ""
            raise ConfigError(f"unknown {kind} key {path!r}{hint}; keys here are: {', '.join(names)}")
        kwargs[key] = _field_value(value, hints[key], path, kind, fields[key].metadata.get("interval"))
    missing = [
        f.name
        for f in dataclasses.fields(cls)
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING and f.name not in kwargs
    ]
    if missing:
        raise ConfigError(f"{kind} section {where.rstrip('.') or '<root>'!r} needs {missing[0]!r}")
    return cls(**kwargs)


def _field_value(value: Any, hint: Any, path: str, kind: str, interval: tuple | None = None) -> Any:
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
    if interval is not None and value is not None and not _inside(value, *interval[1:]):
        raise ConfigError(f"{kind} key {path!r}={value!r} must be in {interval[0]}")
    return value


def parse_override(text: str) -> tuple[list[str], Any]:
    """``train.lr=0.1`` -> (["train", "lr"], 0.1); the value is parsed as YAML."""
    if "=" not in text:
        raise ConfigError(f"override {text!r} must look like key=value, e.g. train.steps=100")
    key, raw = text.split("=", 1)
    return key.strip().split("."), _yaml(raw, f"override {text!r}") if raw.strip() else None


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
        data = read_yaml(path) or {}
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
    data = read_yaml(path) or {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {str(path)!r} must hold a mapping at the top level")
    return from_dict(data)
