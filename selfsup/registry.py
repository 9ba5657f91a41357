"""One registry type for everything chosen by name (backbones, methods, datasets, evaluation protocols).

Each package fills its registry explicitly in its ``__init__`` (no decorators
that fire as an import side effect). ``build`` checks keyword arguments against
the constructor's signature *before* constructing, so a misspelled key or a
value outside a ``Literal`` fails with the key's name and what is allowed.
"""
from __future__ import annotations

import functools
import inspect
import typing
from typing import Any, Callable


class InputError(ValueError):
    """Bad input from the user (a file, a folder, a dataset, a value); the message names it.

    The CLI reports it as one line and exit status 2; any other exception is a bug and keeps its traceback.
    """


class ConfigError(InputError):
    """A configuration key or value that cannot be used; the message names it."""


class RunStopped(RuntimeError):
    """Training stopped for a reason outside the code (a NaN loss, a signal, a full disk).

    The message names the checkpoint that is good and how to go on; the CLI prints it as one line
    and exits with ``exit_status``.
    """

    def __init__(self, message: str, exit_status: int = 1):
        super().__init__(message)
        self.exit_status = exit_status


class Preempted(RunStopped):
    """A signal stopped the run at a step boundary after writing its checkpoint: resume it (selfsup.train.stop)."""


class Registry:
    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, Callable[..., Any]] = {}

    def register(self, name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        if name in self._entries:
            raise ValueError(f"{self.kind} {name!r} is registered twice")
        self._entries[name] = fn
        return fn

    def names(self) -> list[str]:
        return sorted(self._entries)

    def names_in_order(self) -> list[str]:
        """Names in the order they were registered (protocols run in this order)."""
        return list(self._entries)

    def get(self, name: str) -> Callable[..., Any]:
        if name not in self._entries:
            raise ConfigError(f"unknown {self.kind} {name!r}; choose from: {', '.join(self.names())}")
        return self._entries[name]

    def build(self, name: str, /, **kwargs: Any) -> Any:
        fn = self.get(name)
        check_kwargs(fn, kwargs, f"{self.kind} {name!r}")
        return fn(**kwargs)


def check_kwargs(fn: Callable[..., Any], kwargs: dict[str, Any], what: str) -> None:
    """Raise ConfigError for keys ``fn`` does not take and for values of the wrong kind.

    ``fn`` is a function, a class (its ``__init__``'s signature) or a ``functools.partial`` of either,
    whose bound arguments are fixed: a preset such as ``resnet50_v1_nolastrelu``.
    """
    fixed = set(fn.keywords) if isinstance(fn, functools.partial) else set()
    target = fn.func if isinstance(fn, functools.partial) else fn
    params = inspect.signature(fn).parameters
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        return
    allowed = [n for n, p in params.items() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and n not in fixed]
    try:
        hints = typing.get_type_hints(target.__init__ if inspect.isclass(target) else target)
    except Exception:  # unresolvable forward references: skip value checks
        hints = {}
    for key, value in kwargs.items():
        if key not in allowed:
            raise ConfigError(f"{what} has no option {key!r}; options are: {', '.join(allowed)}")
        if key in hints and not _value_fits(value, hints[key]):
            raise ConfigError(f"{what}: option {key!r}={value!r} is not allowed; expected {_describe(hints[key])}")


def _value_fits(value: Any, hint: Any) -> bool:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if hint is Any or isinstance(hint, typing.TypeVar):
        return True
    if origin is typing.Literal:
        return value in args
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", typing.Union)):
        return any(_value_fits(value, a) for a in args)
    if hint is type(None):
        return value is None
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if origin in (tuple, list, typing.Sequence):
        return isinstance(value, (tuple, list))
    if isinstance(hint, type):
        return isinstance(value, hint)
    return True


def _describe(hint: Any) -> str:
    if typing.get_origin(hint) is typing.Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(hint))
    return getattr(hint, "__name__", None) or str(hint).replace("typing.", "")
