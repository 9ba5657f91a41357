"""Stopping at a step boundary on Ctrl-C or on the signal a scheduler sends before it preempts a job.

SLURM (``--signal=USR1@120``, or SIGTERM at preemption and time limits), Kubernetes and cloud spot
machines warn a job with SIGTERM or SIGUSR1 and kill it a little later. The handler only notes the
signal; the loop asks after each step, writes a checkpoint and raises ``Preempted``, whose exit
status tells the job script to requeue; the requeued job continues with ``--resume auto``
(docs/hardening.md#preemption). A second Ctrl-C interrupts at once.
"""
from __future__ import annotations

import signal
import threading

import torch

from selfsup.registry import Preempted
from selfsup.train import distributed

SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGUSR1)
RESUME_STATUS = 75  # EX_TEMPFAIL of sysexits.h: a temporary failure, to be retried


class StopRequests:
    """``with StopRequests() as stop:`` notes SIGINT, SIGTERM and SIGUSR1; ``stop.signal(device)`` says which came.

    Handlers are installed only in the main thread (Python allows no other); elsewhere nothing is noted.
    """

    def __init__(self) -> None:
        self.received = 0
        self._previous: dict[int, object] = {}

    def __enter__(self) -> StopRequests:
        if threading.current_thread() is threading.main_thread():
            self._previous = {s: signal.signal(s, self._note) for s in SIGNALS}
        return self

    def __exit__(self, *exc) -> None:
        for s, handler in self._previous.items():
            signal.signal(s, handler)

    def _note(self, signum: int, frame) -> None:
        if signum == signal.SIGINT and self.received == signal.SIGINT:
            raise KeyboardInterrupt  # the second Ctrl-C: the user does not want to wait for the step
        self.received = signum

    def signal(self, device: torch.device) -> int:
        """The signal any rank received (0: none); every rank gets the same answer at the same step."""
        return distributed.largest(self.received, device)


def preempted(signum: int, step: int, checkpoint: str) -> Preempted:
    """The error for a run stopped by ``signum`` after writing ``checkpoint`` at ``step``."""
    name = signal.Signals(signum).name
    if signum == signal.SIGINT:
        return Preempted(f"interrupted (Ctrl-C) at step {step}; the checkpoint {checkpoint} is good: run the same "
                         "command with --resume to continue", 128 + signal.SIGINT)  # a shell's status for Ctrl-C
    return Preempted(f"{name} received: stopped at step {step} after writing {checkpoint}; run the same command with "
                     f"--resume auto to continue (exit status {RESUME_STATUS}: requeue me)", RESUME_STATUS)
