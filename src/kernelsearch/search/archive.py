"""Every verified-correct candidate of a run, ranked; lanes take the kernels they build on from here: the best,
and other good ones that differ from it."""
from __future__ import annotations

import hashlib
import io
import tokenize
from dataclasses import dataclass

from ..verify.verdict import Verdict

# A parent must be within this factor of the best's speedup to be built on: a kernel at a third of the best's speed
# is a different design worth exploring, one at a tenth is a dead end. Untimed kernels (no GPU) are all good.
GOOD_FRACTION = 0.3


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
        timed = self.verdict.timed
        return timed.speedup("eager") if timed else None

    @property
    def interval(self) -> tuple[float, float] | None:
        """The speedup's 95 % interval from the verifier's timing (the point itself for older verdicts)."""
        timed = self.verdict.timed
        return tuple(timed.intervals["eager"]) if timed and "eager" in timed.intervals else None

    def summary(self) -> str:
        timed = self.verdict.timed
        if self.speedup is None:
            return f"attempt {self.attempt_id}: verified correct, not timed (no GPU)"
        return f"attempt {self.attempt_id}: {timed.candidate_ms:.4g} ms, {timed.short()}"


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

    def parents(self) -> list[Entry]:
        """The kernels worth building on, the best first: the good ones (see GOOD_FRACTION), each a different
        source, those from other lanes' and strategies' lines before a second one from the same line."""
        ranked = self.ranked()
        if not ranked:
            return []
        best = ranked[0].speedup
        good, seen = [], set()
        for e in ranked:
            key = source_key(e.code)
            if key in seen or (best is not None and (e.speedup or 0.0) < GOOD_FRACTION * best):
                continue
            seen.add(key)
            good.append(e)
        lines: set[tuple[int, str]] = set()
        first, again = [], []
        for e in good:
            (again if (e.lane, e.strategy) in lines else first).append(e)
            lines.add((e.lane, e.strategy))
        return first + again

    def parent_for(self, lane: int) -> Entry | None:
        """Lane 0 builds on the best; lane i on the i-th kernel worth building on (round the list)."""
        parents = self.parents()
        return parents[lane % len(parents)] if parents else None


def source_key(source: str) -> str:
    """The same key for sources that differ only in comments, blank lines and spacing within lines (indentation
    and line breaks are kept as tokens: they are the code's structure)."""
    try:
        tokens = [t.string if t.type not in (tokenize.INDENT, tokenize.NEWLINE) else f"<{t.type}>"
                  for t in tokenize.generate_tokens(io.StringIO(source).readline)
                  if t.type not in (tokenize.COMMENT, tokenize.NL, tokenize.ENDMARKER)]
        text = " ".join(tokens)
    except (tokenize.TokenError, IndentationError, SyntaxError):
        text = " ".join(line.split("#")[0].strip() for line in source.splitlines() if line.split("#")[0].strip())
    return hashlib.sha256(text.encode()).hexdigest()[:16]
