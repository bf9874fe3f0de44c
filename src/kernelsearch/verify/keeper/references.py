"""Reference answers kept between the jobs of one answer keeper, so that a search pays for its reference once."""
from __future__ import annotations

import os
from collections import OrderedDict
from dataclasses import dataclass

from ..harness.memory import Footprint, GiB

# Copying an answer back from host memory runs at about 8 GB/s (pageable, H100 host): for a reference that is
# cheaper to recompute than that (an elementwise op over 6 GiB takes ~10 ms), recomputing wins.
HOST_COPY_BYTES_PER_S = 8e9


def default_capacity() -> int:
    """KS_REFERENCE_CACHE_GB, else a quarter of the host memory available now, at most 16 GiB."""
    if os.environ.get("KS_REFERENCE_CACHE_GB"):
        return int(float(os.environ["KS_REFERENCE_CACHE_GB"]) * GiB)
    try:
        with open("/proc/meminfo") as f:
            available = next(int(line.split()[1]) * 1024 for line in f if line.startswith("MemAvailable:"))
    except (OSError, StopIteration, ValueError):
        available = 8 * GiB
    return min(16 * GiB, available // 4)


@dataclass
class ReferenceBehaviour:
    """What a problem's reference was seen to do, for the jobs that take its answers from the cache instead of
    running it: its footprint (for the memory plan; None where no plan is made) and what it does to its inputs,
    which the candidate may then do too."""
    footprint: Footprint | None
    aliases: bool
    mutates: bool
    broadcasts: bool
    seconds: float = 0.0  # its slowest call so far: the candidate's first call's time limit follows from it


class ReferenceCache:
    """Answers by (problem text, dtype, device, seed, kind), in host memory, least recently used first out.

    Entries are the worker's own copies: a job compares against them and never frees or poisons them; an
    evicted entry is overwritten with 0xFF before it is dropped, like every other freed answer."""

    def __init__(self, capacity_bytes: int | None = None):
        self.capacity = default_capacity() if capacity_bytes is None else capacity_bytes
        self.entries: OrderedDict[tuple, list] = OrderedDict()
        self.behaviour: dict[tuple, ReferenceBehaviour] = {}  # (problem text, dtype, device) -> what it does
        self.used = 0
        self.hits = self.misses = 0

    def get(self, key: tuple) -> list | None:
        entry = self.entries.get(key)
        if entry is None:
            self.misses += 1
            return None
        self.entries.move_to_end(key)
        self.hits += 1
        return entry

    def worth_keeping(self, nbytes: int, compute_s: float, on_gpu: bool) -> bool:
        if nbytes > self.capacity:
            return False
        return not on_gpu or compute_s > nbytes / HOST_COPY_BYTES_PER_S

    def put(self, key: tuple, answers: list) -> None:
        """Keep host copies of `answers` (tensors anywhere), evicting the oldest entries to make room."""
        nbytes = sum(a.numel() * a.element_size() for a in answers)
        while self.entries and self.used + nbytes > self.capacity:
            _, old = self.entries.popitem(last=False)
            self.used -= sum(a.numel() * a.element_size() for a in old)
            for a in old:
                a.untyped_storage().fill_(255)
        copies = [a.detach().to("cpu", copy=True) for a in answers]
        self.entries[key] = copies
        self.used += nbytes

    def stats(self) -> dict:
        return {"entries": len(self.entries), "bytes": self.used, "capacity": self.capacity, "hits": self.hits,
                "misses": self.misses}
