"""Seconds a job spends in each of its steps (the verdict's `step_s`): where a slow verification's time went."""
from __future__ import annotations

import time
from contextlib import contextmanager


class Stopwatch:
    """Accumulates seconds by step name. A step timed inside another counts once, as its own: the outer step's
    figure leaves it out, so the figures add up to the time timed at all."""

    def __init__(self):
        self.spent: dict[str, float] = {}
        self._inner: list[float] = []  # per open step, the seconds its inner steps took

    @contextmanager
    def __call__(self, step: str):
        began = time.perf_counter()
        self._inner.append(0.0)
        try:
            yield
        finally:
            total = time.perf_counter() - began
            self.spent[step] = self.spent.get(step, 0.0) + total - self._inner.pop()
            if self._inner:
                self._inner[-1] += total

    def report(self) -> dict[str, float]:
        """Step -> seconds (ms resolution), the largest first."""
        return {step: round(s, 3) for step, s in sorted(self.spent.items(), key=lambda item: -item[1])}
