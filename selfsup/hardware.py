"""The machine a run is on: which device, what its CPU offers, how its allocator behaves."""
from __future__ import annotations

import ctypes
import os
import sys
import time
from functools import lru_cache
from pathlib import Path

import torch

from selfsup.registry import InputError


def resolve_device(name: str, key: str = "train.device") -> torch.device:
    """``auto`` is CUDA when there is one, else the CPU; ``key`` names the setting in errors."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(name)
    except RuntimeError:
        raise InputError(f"{key}={name!r} is not a device; use auto, cpu, cuda or cuda:N") from None
    if dev.type not in ("cpu", "cuda", "mps"):
        raise InputError(f"{key}={name!r}: selfsup runs on auto, cpu, cuda, cuda:N or mps")
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise InputError(f"{key}={name!r} but no CUDA device is available")
    return dev


def synchronize(device: torch.device) -> None:
    """Wait for queued GPU work, so a timer measures it; nothing to wait for on the CPU."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@lru_cache(maxsize=1)
def cpu_flags() -> str:
    try:
        return Path("/proc/cpuinfo").read_text()
    except OSError:
        return ""


def cpu_has_fast_bf16() -> bool:
    return any(f in cpu_flags() for f in ("amx_bf16", "avx512_bf16"))


def device_name(device: torch.device) -> str:
    """The GPU's name or the CPU's model name: every speed figure is recorded beside it."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    for line in cpu_flags().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "cpu"


def machine_info(device: torch.device) -> dict:
    """What a result file records about where it was measured: device, CPU bf16 support, threads, versions."""
    import platform

    return {"device": device_name(device), "cpu": device_name(torch.device("cpu")), "fast_bf16": cpu_has_fast_bf16(),
            "threads": torch.get_num_threads(), "torch": torch.__version__, "python": platform.python_version()}


def keep_freed_cpu_memory() -> bool:
    """Tell glibc's malloc to keep freed memory for reuse instead of returning it to the system.

    By default every CPU buffer over 32 MB (a batch's activations) is a fresh mmap whose first writes
    fault in zeroed pages (the cost: docs/speed.md#freed-memory-kept-for-reuse). Off mmap, freed
    buffers come back from the heap, already mapped. Returns whether it applied (glibc only; elsewhere a no-op).
    """
    if sys.platform != "linux":
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        m_trim_threshold, m_mmap_max = -1, -4  # mallopt parameters from glibc's malloc.h
        return bool(libc.mallopt(m_mmap_max, 0)) and bool(libc.mallopt(m_trim_threshold, 2**31 - 1))
    except (OSError, AttributeError):  # musl and other C libraries: leave their allocator alone
        return False


THREADS_ENV = "SELFSUP_THREADS"  # auto (unset) | all | N: docs/hardening.md#a-busy-machine


def _cpu_times() -> tuple[int, int]:
    """(idle, total) jiffies of all cores since boot, from /proc/stat's first line."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return fields[3] + (fields[4] if len(fields) > 4 else 0), sum(fields[:8])


def idle_cores(seconds: float = 0.3) -> float:
    """How many cores were idle over ``seconds`` while this process slept: what other processes leave us."""
    idle0, total0 = _cpu_times()
    time.sleep(seconds)
    idle1, total1 = _cpu_times()
    return (os.cpu_count() or 1) * (idle1 - idle0) / max(1, total1 - total0)


def choose_threads() -> int:
    """One thread per core that other processes leave idle (``SELFSUP_THREADS`` unset or ``auto``);
    ``SELFSUP_THREADS=all`` keeps PyTorch's count, ``SELFSUP_THREADS=N`` sets N. Never raises the count.

    OpenMP threads wait for each other at the end of every parallel loop, so one thread that another
    process keeps off its core stalls them all; fewer threads than busy cores avoids that. Returns the count in use.
    """
    wanted = os.environ.get(THREADS_ENV, "auto")
    if wanted.isdigit() and int(wanted) > 0:
        torch.set_num_threads(int(wanted))
    elif wanted == "auto":
        try:
            free = max(1, int(idle_cores() + 0.5))
        except (OSError, ValueError, IndexError):  # no /proc/stat: leave the thread count alone
            return torch.get_num_threads()
        if free < torch.get_num_threads():
            print(f"selfsup: other processes keep {torch.get_num_threads() - free} core(s) busy: using {free} "
                  f"thread(s) ({THREADS_ENV}=all to use every core anyway)", file=sys.stderr)
            torch.set_num_threads(free)
    elif wanted != "all":
        raise InputError(f"{THREADS_ENV}={wanted!r} must be 'auto', 'all' or a positive number of threads")
    return torch.get_num_threads()
