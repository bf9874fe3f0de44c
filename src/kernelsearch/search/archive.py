"""Every verified-correct candidate of a run, ranked; lanes read the best one from here."""
from __future__ import annotations

from dataclasses import dataclass

from ..verify.verdict import Verdict


@dataclass
class Entry:
    attempt_id: int
    lane: int
    strategy: str
    code: str
    verdict: Verdict
    finished_s: float  # budget seconds spent when it was verified

    @property
    def speedup(self) -> float | None:
        """Speedup over eager PyTorch, measured on the GPU; None without a GPU (the interpreter's speed means
        nothing)."""
        timing = self.verdict.timing or {}
        return timing.get("speedup_vs_eager")

    @property
    def interval(self) -> tuple[float, float] | None:
        """The speedup's 95 % interval from the verifier's timing (the point itself for older verdicts)."""
        timing = self.verdict.timing or {}
        if self.speedup is None:
            return None
        low, high = timing.get("speedup_vs_eager_ci") or (self.speedup, self.speedup)
        return low, high

    def summary(self) -> str:
        timing = self.verdict.timing or {}
        if self.speedup is None:
            return f"attempt {self.attempt_id}: verified correct, not timed (no GPU)"
        parts = [f"attempt {self.attempt_id}: {timing['candidate']['median_ms']:.4g} ms",
                 f"{self.speedup:.3g}x eager PyTorch"]
        if "speedup_vs_compile" in timing:
            parts.append(f"{timing['speedup_vs_compile']:.3g}x torch.compile")
        return ", ".join(parts)


def rank(entry: Entry) -> tuple:
    """For ordering: timed before untimed, faster before slower, earlier before later."""
    return (entry.speedup is not None, entry.speedup or 0.0, -entry.finished_s)


def beats(new: Entry, old: Entry) -> bool:
    """Timed beats untimed; between timed ones, only a speedup whose interval lies wholly above the other's:
    differences inside the timing noise are ties, and in a tie the earlier kernel stays."""
    if new.speedup is None or old.speedup is None:
        return new.speedup is not None and old.speedup is None
    return new.interval[0] > old.interval[1]


class Archive:
    def __init__(self) -> None:
        self.entries: list[Entry] = []
        self.best_entry: Entry | None = None

    def add(self, entry: Entry) -> bool:
        """Add a correct candidate; True when it is the new best."""
        self.entries.append(entry)
        if self.best_entry is None or beats(entry, self.best_entry):
            self.best_entry = entry
            return True
        return False

    def best(self) -> Entry | None:
        return self.best_entry

    def ranked(self) -> list[Entry]:
        """The best first, then the others from fastest to slowest."""
        others = sorted((e for e in self.entries if e is not self.best_entry), key=rank, reverse=True)
        return ([self.best_entry] if self.best_entry else []) + others
