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
    """Timed beats untimed, faster beats slower, and between equals the earlier one stays."""
    return (entry.speedup is not None, entry.speedup or 0.0, -entry.finished_s)


class Archive:
    def __init__(self) -> None:
        self.entries: list[Entry] = []

    def add(self, entry: Entry) -> bool:
        """Add a correct candidate; True when it is the new best."""
        best = self.best()
        self.entries.append(entry)
        return best is None or rank(entry) > rank(best)

    def best(self) -> Entry | None:
        return max(self.entries, key=rank, default=None)

    def ranked(self) -> list[Entry]:
        return sorted(self.entries, key=rank, reverse=True)
