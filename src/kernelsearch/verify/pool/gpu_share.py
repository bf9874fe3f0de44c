"""Several workers on one GPU: a job runs beside the others within a share of the device's memory where its
problem's footprint allows, else alone; its timing always runs alone (another job's kernels would be in the
measurement). A worker spends much of a job off the GPU (importing, Triton's compiler, the keeper's answers,
Python between calls), so a second worker keeps the GPU busy meanwhile."""
from __future__ import annotations

import threading
import time

from ..harness.memory import Footprint, answers_fit_on_device

# solve's and bench's default (--workers-per-gpu): one, until two have been timed against one on a GPU (the share set
# of benchmarks/gpu_sweep.sh 2); verify starts one (one candidate)
WORKERS_PER_GPU = 1


class GpuShare:
    """The jobs of one GPU's workers: any number beside each other, or one alone. A job waiting to be alone keeps
    new jobs from starting beside the others (timing is never starved)."""

    def __init__(self, workers: int, device_bytes: int = 0):
        self.workers = workers
        self.device_bytes = device_bytes  # the GPU's memory, once a worker has said it
        self.footprints: dict[str, Footprint] = {}  # problem -> its footprint, from earlier verdicts
        self.condition = threading.Condition()
        self.beside = 0  # jobs running beside others
        self.alone = False
        self.waiting_alone = 0

    def share_bytes(self) -> int:
        """The device memory a job beside others may plan with (its worker's and its keeper's together)."""
        return self.device_bytes // self.workers

    def budget_for(self, problem: str) -> int:
        """A job's memory budget beside others, or 0: it runs alone (its footprint is not known yet, or it needs
        more than a share: one trial, and its answers on the device)."""
        footprint = self.footprints.get(problem)
        if self.workers < 2 or footprint is None or not self.device_bytes:
            return 0
        return self.share_bytes() if answers_fit_on_device(footprint, self.share_bytes()) else 0

    def learn(self, problem: str, footprint: dict | None) -> None:
        if footprint:
            self.footprints[problem] = Footprint(**footprint)

    def enter(self, alone: bool, timeout_s: float) -> bool:
        """Wait (at most timeout_s) to run alone or beside others; False if the time passed first."""
        deadline = time.monotonic() + timeout_s
        with self.condition:
            self.waiting_alone += alone
            try:
                ready = self.condition.wait_for(
                    lambda: not self.alone and (self.beside == 0 if alone else self.waiting_alone == 0),
                    max(0.0, deadline - time.monotonic()))
                if ready:
                    if alone:
                        self.alone = True
                    else:
                        self.beside += 1
                return ready
            finally:
                self.waiting_alone -= alone

    def leave(self, alone: bool) -> None:
        with self.condition:
            if alone:
                self.alone = False
            else:
                self.beside -= 1
            self.condition.notify_all()

