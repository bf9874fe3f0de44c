"""Which verifier actor takes which job: a problem's candidates go back to an actor that already verified it,
and no actor is left idle for long while work waits. Plain Python, no Ray: the pool calls it under its lock."""
from __future__ import annotations

import hashlib
import time
from concurrent.futures import Future
from dataclasses import dataclass, field

from ..verify.verdict import VerifyRequest

# A problem's first job on an actor runs its reference (and, timed, compiles its torch.compile baseline: up to
# ~20 s at KernelBench's sizes, benchmarks/RESULTS.md 2026-11-25); its later jobs take both from the worker's
# cache. A timed job takes 3.98 s at the median, so a job whose actors are all busy waits for one of them for up
# to 10 s (about two timed jobs) before an idle actor takes it and pays for the reference itself.
STEAL_AFTER_S = 10.0
RETRIES = 1  # a job whose actor was lost runs once more elsewhere; lost twice, it is reported


def problem_key(request: VerifyRequest) -> str:
    """What a worker's reference cache is keyed on, as far as placement cares: the problem at its shapes and
    dtype."""
    text = "\0".join([request.problem_source, request.variant_source or "", request.dtype])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass
class Job:
    request: VerifyRequest
    future: Future
    key: str
    submitted: float = field(default_factory=time.monotonic)
    lost_on: list[str] = field(default_factory=list)  # the actors that died under it
    started: bool = False  # its future was set running (a retried job's already is)


class Placement:
    """The waiting jobs and which actors hold which problems. Actors are named by their slot number."""

    def __init__(self, steal_after_s: float = STEAL_AFTER_S):
        self.steal_after_s = steal_after_s
        self.pending: list[Job] = []  # oldest first; a retried job goes to the front
        self.holders: dict[str, set[int]] = {}  # problem key -> slots that verified it

    def add(self, job: Job, front: bool = False) -> None:
        self.pending.insert(0, job) if front else self.pending.append(job)

    def drain(self) -> list[Job]:
        jobs, self.pending = self.pending, []
        return jobs

    def remove(self, future: Future) -> Job | None:
        for job in self.pending:
            if job.future is future:
                self.pending.remove(job)
                return job
        return None

    def take(self, slot: int, live: set[int], busy: set[int], now: float | None = None) -> Job | None:
        """The job `slot` should run next, or None: the oldest job that has waited past STEAL_AFTER_S and that
        this slot may take, else the oldest of a problem it holds, else the oldest of a problem no live actor
        holds. A job of a problem held elsewhere is taken only once it is overdue and all its holders are busy
        (an idle holder is about to take it itself)."""
        now = time.monotonic() if now is None else now
        own = unheld = None
        for job in self.pending:
            holders = self.holders.get(job.key, set()) & live
            overdue = now - job.submitted >= self.steal_after_s
            if slot in holders or not holders or holders <= busy:
                if overdue:
                    return self._claim(job, slot)
            if slot in holders and own is None:
                own = job
            elif not holders and unheld is None:
                unheld = job
        chosen = own or unheld
        return self._claim(chosen, slot) if chosen else None

    def next_overdue_in(self, now: float | None = None) -> float | None:
        """Seconds until the oldest waiting job becomes overdue (an idle actor should look again then)."""
        if not self.pending:
            return None
        now = time.monotonic() if now is None else now
        return max(0.0, min(job.submitted for job in self.pending) + self.steal_after_s - now)

    def _claim(self, job: Job, slot: int) -> Job:
        self.pending.remove(job)
        self.holders.setdefault(job.key, set()).add(slot)
        return job
