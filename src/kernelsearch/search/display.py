"""Live progress: a `rich` table of lanes on a terminal, plain log lines otherwise (CI, pipes, files)."""
from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

MAX_SHOWN = 6  # problems drawn at once during a bench; the rest are counted


@dataclass
class LaneView:
    attempts: int = 0
    doing: str = "starting"
    last: str = ""


@dataclass
class ProblemView:
    budget_s: float
    deadline: float  # time.monotonic() when the budget runs out
    lanes: dict[int, LaneView] = field(default_factory=dict)
    statuses: Counter = field(default_factory=Counter)
    best: str = "none yet"
    finished: str = ""


class Display:
    """One display for a solve (one problem) or a bench (many); `live` is decided by whether stdout is a TTY."""

    def __init__(self, live: bool | None = None, console: Console | None = None):
        self.console = console or Console()
        self.live = self.console.is_terminal if live is None else live
        self.problems: dict[str, ProblemView] = {}
        self._live: Live | None = None

    def __enter__(self) -> "Display":
        if self.live:
            self._live = Live(get_renderable=self.render, console=self.console, refresh_per_second=2, transient=False)
            self._live.start()
        return self

    def __exit__(self, *exc) -> None:
        if self._live:
            self._live.stop()

    def log(self, problem: str, text: str) -> None:
        if not self.live:
            print(f"[{time.strftime('%H:%M:%S')}] {problem}: {text}", flush=True)

    def start(self, problem: str, budget_s: float, remaining_s: float, lanes: int) -> None:
        self.problems[problem] = ProblemView(budget_s, time.monotonic() + remaining_s,
                                             {i: LaneView() for i in range(lanes)})
        self.log(problem, f"searching with {lanes} lane(s), {remaining_s:.0f}s of {budget_s:.0f}s budget left")

    def attempt_started(self, problem: str, lane: int, step: int, strategy: str) -> None:
        view = self.problems[problem].lanes[lane]
        view.doing = f"#{step} {strategy}: asking the model"

    def receiving(self, problem: str, lane: int, step: int, characters: int) -> None:
        self.problems[problem].lanes[lane].doing = f"#{step}: the model has written {characters / 1000:.1f}k chars"

    def verifying(self, problem: str, lane: int, step: int) -> None:
        self.problems[problem].lanes[lane].doing = f"#{step}: verifying"

    def attempt_finished(self, problem: str, lane: int, step: int, strategy: str, status: str, detail: str) -> None:
        view = self.problems[problem]
        view.statuses[status] += 1
        lane_view = view.lanes[lane]
        lane_view.attempts += 1
        lane_view.doing, lane_view.last = "", f"#{step} {strategy}: {status}"
        self.log(problem, f"lane {lane} attempt {step} ({strategy}): {status}{f' - {detail}' if detail else ''}")

    def new_best(self, problem: str, summary: str, label: str = "new best") -> None:
        self.problems[problem].best = summary
        self.log(problem, f"{label}: {summary}")

    def finish(self, problem: str, text: str) -> None:
        self.problems[problem].finished = text
        for lane in self.problems[problem].lanes.values():
            lane.doing = ""
        self.log(problem, text)

    def render(self):
        shown = self.problems.items()
        header = []
        if len(self.problems) > 1:  # a bench: the running problems, at most MAX_SHOWN of them
            running = [(n, v) for n, v in self.problems.items() if not v.finished]
            solved = sum(1 for v in self.problems.values() if v.finished and v.best != "none yet")
            header.append(Text(f"{len(self.problems) - len(running)} finished ({solved} with a correct kernel), "
                               f"{len(running)} running" + (f"; showing {MAX_SHOWN}" if len(running) > MAX_SHOWN
                                                           else "")))
            shown = running[:MAX_SHOWN]
        tables = []
        for name, view in shown:
            left = max(0.0, view.deadline - time.monotonic()) if not view.finished else 0.0
            counts = ", ".join(f"{k} {v}" for k, v in view.statuses.most_common()) or "no attempts yet"
            title = f"{name} - {view.finished or f'{left:.0f}s left'} - best: {view.best}"
            table = Table(title=title, title_justify="left", expand=False)
            for column in ("lane", "attempts", "now", "last"):
                table.add_column(column)
            for lane, lane_view in view.lanes.items():
                table.add_row(str(lane), str(lane_view.attempts), lane_view.doing, lane_view.last)
            table.caption = counts
            tables.append(table)
        return Group(*header, *tables)
