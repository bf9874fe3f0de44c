"""What a lane asks next: the strategy, the verified kernel it builds on, and the prompt that says both, with what
the problem is and where the time of the kernels it shows goes."""
from __future__ import annotations

import ast
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from ..llm.prompt import Previous, Strategy, build_prompt, size_note, strategies
from ..problem import Problem
from ..store import RunStore
from ..verify import WorkerPool
from ..verify.verdict import Status
from .archive import Archive, Entry
from .feedback import performance
from .problem_profile import ProblemProfile
from .seed import holds_seed
from .solve_config import SolveConfig
from .strategies import choose, outcome

# Other lanes' designs a prompt lists: the latest few. Two relay runs (KernelBench L2 22, L1 42) had one lane
# answer a design the other had built a step before, unseen; 8 lines cost ~250 tokens.
MAX_TRIED_SHOWN = 8
MAX_DESIGN_CHARS = 100
# Attempts with no design of their own to list (a duplicate's is its original's line).
NOT_TRIED = {Status.CANCELLED, Status.LLM_ERROR, Status.NO_CODE, Status.DUPLICATE}


@dataclass
class Lane:
    """One lane's course, which its next attempt is planned from (lanes.Search keeps it up to date)."""
    index: int
    step: int = 0
    previous: Previous | None = None
    failures: int = 0  # failed attempts in a row
    tried: Counter = field(default_factory=Counter)  # optimization strategy -> times this lane tried it
    latest: Entry | None = None  # its last verified-correct kernel


class SteeredSearch(Protocol):
    """What steering reads of a search: lanes.Search is one. Named here rather than imported, since lanes.py
    calls this module."""
    problem: Problem
    config: SolveConfig
    pool: WorkerPool
    store: RunStore
    archive: Archive
    profile: ProblemProfile | None
    lanes: list[Lane]
    taken: dict[int, set[str]]  # step -> the strategies lanes took at it


@dataclass
class Plan:
    strategy: Strategy
    parent: Entry | None  # the verified kernel this attempt is asked to improve
    base_id: int | None  # the attempt whose code it improves or fixes (None for a fresh start)
    prompt: str
    restarts: bool = False  # the lane was stuck: it starts over, its failures in a row counted from zero
    takes_strategy: bool = False  # other lanes at this step pass its strategy over (a fix takes none)


def plan_attempt(search: SteeredSearch, lane: Lane, step: int) -> Plan:
    """The lane's next attempt; what it changes of the lane and the search (Plan.restarts, .takes_strategy) is
    the caller's to apply."""
    cfg, archive, profile = search.config, search.archive, search.profile
    previous, parent = lane.previous, None
    restarts = lane.failures >= cfg.restart_after
    if restarts:  # stuck: start over from a kernel of the archive (or from scratch)
        parent = parent_for(search, lane)
        previous = as_previous(parent) if parent else None
    elif outcome(previous) == Status.CORRECT or (previous is None and holds_seed(archive)):
        parent = parent_for(search, lane)  # in a seeded search a lane with nothing of its own builds on the seed
    shown_parent = performance(parent.verdict, cfg.dtype) if parent else None
    strategy = choose(as_previous(parent) if parent else previous, lane.index, sum(lane.tried.values()),
                      cfg.language, tags=profile.tags() if profile and profile.how != "unknown" else None,
                      bound=shown_parent.bound if shown_parent else None, taken=search.taken.get(step, frozenset()),
                      tried=lane.tried, lanes=len(search.lanes))
    fixing = outcome(previous) not in ("start", Status.CORRECT) and parent is None
    base_id = parent.attempt_id if parent else previous.attempt_id if fixing and previous else None

    best = archive.best()
    shown = parent or best
    same = parent is not None and previous is not None and previous.attempt_id == parent.attempt_id
    of_previous = performance(previous.verdict, cfg.dtype) if previous else None
    seen = outcome(previous)
    heading, untimed_note = shown_heading(parent, best, lane.index)
    prompt = build_prompt(
        search.problem.source, language=cfg.language, dtype=cfg.dtype, tolerance=cfg.resolved_tolerance(),
        device=search.pool.info.get("device_name", search.pool.device), strict=cfg.strict, strategy=strategy,
        best=(shown.code, shown.summary()) if shown else None, previous=previous,
        problem_notes=problem_notes(search), parent_heading=heading,
        parent_notes=shown_parent.text() if shown_parent and not same else untimed_note,
        previous_notes=of_previous.text() if of_previous else "", cpu=search.pool.device == "cpu",
        fusion_rule=profile.fusion_rule() if profile else "", pass_rule=profile.pass_rule() if profile else "",
        tried_elsewhere=tried_elsewhere(search, lane) if not fixing or seen == Status.DUPLICATE else (),
        products=profile is None or profile.how == "unknown" or "contraction" in profile.tags())
    # fixes answer their own lane's code: two lanes may both fix at one step
    return Plan(strategy, parent, base_id, prompt, restarts=restarts, takes_strategy=not fixing)


def tried_elsewhere(search: SteeredSearch, lane: Lane) -> list[str]:
    """One line for each design the other lanes have answered (the latest MAX_TRIED_SHOWN): its attempt, lane,
    strategy and outcome, and what it is (the first line of its first docstring, else its kernels' names), so
    that this lane can choose another."""
    lines = []
    for a in search.store.kernels():
        if a["lane"] == lane.index or not a["code"] or a["status"] in NOT_TRIED:
            continue
        status = "being verified" if a["status"] == Status.PENDING else a["status"]
        title = strategies()[a["strategy"]].title if a["strategy"] in strategies() else a["strategy"]
        lines.append(f"attempt {a['id']} (lane {a['lane']}, {title}): {status}; {design_line(a['code'])}")
    return lines[-MAX_TRIED_SHOWN:]


def design_line(code: str) -> str:
    """What a kernel is, in one line: the first line of its first docstring (the module's, a kernel's or the
    model's), else the names of the functions it defines."""
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return "(does not parse)"
    nodes = [tree, *(n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.ClassDef)))]
    doc = next((ast.get_docstring(n) for n in nodes if ast.get_docstring(n)), "")
    if doc:
        line = doc.strip().splitlines()[0]
    else:
        names = [n.name for n in nodes[1:] if isinstance(n, ast.FunctionDef) and n.name != "forward"
                 and not n.name.startswith("__")]
        line = f"defines {', '.join(names)}" if names else "no docstring"
    return line if len(line) <= MAX_DESIGN_CHARS else line[:MAX_DESIGN_CHARS - 3] + "..."


def shown_heading(parent: Entry | None, best: Entry | None, lane: int) -> tuple[str, str]:
    """The heading of the verified kernel a prompt shows, and a note for it. Timed, the best is the best and a
    parent may be another good kernel; untimed (no GPU), no kernel ranks above another, so none is called the
    best: the parent is the one this attempt builds on (parent_for: the lane's own latest where it has one), and
    an attempt that answers a failure is shown the first kernel that passed, for reference."""
    shown = parent or best
    if shown is None:
        return "", ""
    if best.speedup is None:
        untimed = "Nothing is timed on this machine, so no verified kernel is ranked above another"
        if parent is None:
            return (f"A kernel verified earlier in this run ({shown.summary()})",
                    f"{untimed}: it is shown for reference; this attempt answers your previous one, below.")
        whose = ("this lane's latest correct kernel" if parent.lane == lane
                 else f"a correct kernel of lane {parent.lane}")
        return f"The kernel this attempt builds on ({shown.summary()})", f"{untimed}: this one is {whose}."
    if parent and parent is not best:
        return f"The verified kernel to build on ({parent.summary()}; the best so far is {best.summary()})", ""
    return f"The best verified kernel so far ({shown.summary()})", ""


def parent_for(search: SteeredSearch, lane: Lane) -> Entry | None:
    """The verified kernel a lane builds on. Timed (on a GPU): lane 0 the best, the others other good ones that
    differ from it (Archive.parents). Untimed (no GPU: every correct kernel ties), each lane goes on along its own
    line, so that lanes do not all converge on the first kernel that passed."""
    best = search.archive.best()
    if best is None:
        return None
    if best.speedup is None and lane.latest is not None:
        return lane.latest
    return search.archive.parent_for(lane.index)


def as_previous(entry: Entry) -> Previous:
    return Previous(entry.strategy, entry.code, entry.verdict, attempt_id=entry.attempt_id)


def problem_notes(search: SteeredSearch) -> str:
    """What the problem is (its profile) and, when --set or a shrink changed it, that the original sizes are the
    target: said once, here, not in every verdict."""
    parts = [search.profile.describe() if search.profile else "", size_note(search.problem.overrides)]
    return "\n\n".join(p for p in parts if p)


def original_source(search: SteeredSearch) -> str:
    """The problem at its own sizes (before --set or a shrink): what the kernel is for, and what is profiled."""
    path = Path(search.problem.path)
    if search.problem.overrides and path.is_file():
        return path.read_text(encoding="utf-8")
    return search.problem.source
