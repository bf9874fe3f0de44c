"""The run directory of a search (`solve`, or one problem of a bench) or of a suite (`bench`): the one place that
names its files, creates it, reopens it for --resume and reads its settings back.

A search directory holds store.sqlite (every attempt), config.json (the resolved settings), problem.py (the problem
file's text as searched, `--set` and shrink aside: a run moved to another machine resumes and re-times from it),
best.py and summary.json, and for an attention spec seed.json (the generated kernel it starts from); a bench
directory holds bench.json, one search directory per problem under problems/<key>/ (with problem.py, the exact text
searched, and error.txt when it failed), results.csv, summary.json, context.json and report.html; a replay
(`bench --replay`) holds, per problem, replay.json beside copies of problem.py, best.py and the search's
summary.json (as search_summary.json)."""
from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..llm.client import ModelConfig
from ..shrink import as_overrides
from ..store import Attempt, RunStore
from .solve_config import SolveConfig

STORE_NAME, CONFIG_NAME, BEST_NAME, SUMMARY_NAME = "store.sqlite", "config.json", "best.py", "summary.json"
BENCH_NAME, PROBLEMS_DIR, PROBLEM_FILE, ERROR_FILE = "bench.json", "problems", "problem.py", "error.txt"
REPLAY_NAME, RESULTS_NAME, REPORT_NAME, CONTEXT_NAME = "replay.json", "results.csv", "report.html", "context.json"
SEARCH_SUMMARY_NAME = "search_summary.json"  # in a replay: the summary of the search that found the kernel
SEED_NAME = "seed.json"  # `solve SPEC`: the generated kernel the search starts from (seed.py)


class RunDirError(ValueError):
    """A directory that holds no run of the kind asked for, or one that cannot continue (CLI exit 2)."""


@dataclass
class Settings:
    """What a search was started with, so that --resume and retime continue the same run (config.json; API keys
    are read from the environment and never written)."""
    problem: str  # the problem file, resolved
    overrides: dict[str, str]  # --set NAME=VALUE, as given
    search: SolveConfig
    model: ModelConfig
    shrink: dict[str, list] = field(default_factory=dict)  # --shrink auto: NAME -> [original, searched]
    variant_names: list[str] | None = None  # the constants the verifier's second shape may change (None: all)

    def searched_overrides(self) -> dict[str, str]:
        """The --set values the search ran with: the user's, then the shrink's."""
        return {**self.overrides, **as_overrides(self.shrink)}

    def variants(self) -> set[str] | None:
        """variant_names as make_request, solve and fit_interpreter take them."""
        return set(self.variant_names) if self.variant_names is not None else None


@dataclass(frozen=True)
class RunDir:
    path: Path

    def __post_init__(self):
        object.__setattr__(self, "path", Path(self.path))

    def __str__(self) -> str:
        return str(self.path)

    # ---- its files ---------------------------------------------------------------------------------------------
    @property
    def store(self) -> Path:
        return self.path / STORE_NAME

    @property
    def config(self) -> Path:
        return self.path / CONFIG_NAME

    @property
    def best(self) -> Path:
        return self.path / BEST_NAME

    @property
    def summary(self) -> Path:
        return self.path / SUMMARY_NAME

    @property
    def bench(self) -> Path:
        return self.path / BENCH_NAME

    @property
    def problems(self) -> Path:
        return self.path / PROBLEMS_DIR

    @property
    def problem_file(self) -> Path:
        return self.path / PROBLEM_FILE

    @property
    def error(self) -> Path:
        return self.path / ERROR_FILE

    @property
    def replay(self) -> Path:
        return self.path / REPLAY_NAME

    @property
    def search_summary(self) -> Path:
        return self.path / SEARCH_SUMMARY_NAME

    @property
    def seed(self) -> Path:
        return self.path / SEED_NAME

    @property
    def results(self) -> Path:
        return self.path / RESULTS_NAME

    @property
    def report(self) -> Path:
        return self.path / REPORT_NAME

    @property
    def context(self) -> Path:
        return self.path / CONTEXT_NAME

    def problem(self, key: str) -> RunDir:
        """One problem's search directory inside a bench."""
        return RunDir(self.problems / key)

    def problem_dirs(self) -> list[RunDir]:
        return [RunDir(p) for p in sorted(self.problems.iterdir()) if p.is_dir()] if self.problems.is_dir() else []

    # ---- what it holds -----------------------------------------------------------------------------------------
    def holds_search(self) -> bool:
        return self.store.is_file()

    def holds_bench(self) -> bool:
        return self.bench.is_file() or self.problems.is_dir()

    def open_store(self) -> RunStore:
        """The attempts' store (created when there is none); store.StoreError when it is damaged."""
        return RunStore(self.store)

    def attempts(self) -> list[Attempt]:
        store = self.open_store()
        try:
            return store.attempts()
        finally:
            store.close()

    def check_readable(self) -> None:
        """Read every store, config.json and summary.json under this run (its own, each problem's), so that a
        damaged one stops a --resume or retime before any work, in one line: store.StoreError or RunDirError
        names it."""
        for d in [self, *self.problem_dirs()]:
            if d.holds_search():
                d.open_store().close()
            d.read_config()
            d.read_summary()

    # ---- settings ------------------------------------------------------------------------------------------------
    def new_search(self) -> None:
        """Refuse a directory that already holds a search (a new run must not mix with an old one)."""
        if self.holds_search() or self.config.is_file():
            raise RunDirError(f"{self.path} already holds a run: continue it with --resume {self.path}")

    def save_settings(self, settings: Settings) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        data = {"problem": str(Path(settings.problem).resolve()), "overrides": settings.overrides,
                "search": asdict(settings.search), "model": asdict(settings.model.resolved())}
        if settings.shrink:
            data["shrink"] = {name: list(pair) for name, pair in settings.shrink.items()}
        if settings.variant_names is not None:  # a problem made from an attention spec names its sizes
            data["variant_names"] = settings.variant_names
        if not self.problem_file.is_file():  # the exact text searched: resume and retime work where the file is not
            self.problem_file.write_text(Path(settings.problem).read_text())
        self._write_json(self.config, data)

    def load_settings(self) -> Settings:
        if not self.config.is_file():
            raise RunDirError(f"{self.path} holds no run to resume (no {CONFIG_NAME})")
        data = self._read_json(self.config)
        # config.json names the file the user gave; problem.py beside it is the text searched (runs before it: none)
        problem = str(self.problem_file) if self.problem_file.is_file() else data.get("problem")
        try:
            return Settings(problem, data.get("overrides", {}), SolveConfig(**data["search"]),
                            ModelConfig(**data["model"]), data.get("shrink", {}), data.get("variant_names"))
        except (KeyError, TypeError) as e:
            raise RunDirError(f"{self.config} is not a kernelsearch configuration ({type(e).__name__}: {e})") from None

    def read_config(self) -> dict:
        """config.json as it is ({} when there is none); RunDirError when it is damaged."""
        return self._read_json(self.config) if self.config.is_file() else {}

    def shrink(self) -> dict[str, list]:
        """NAME -> [original, searched] for each size --shrink auto changed in this search ({} when none)."""
        return self.read_config().get("shrink", {})

    def record_shrink(self, changes: dict) -> None:
        """For a bench's problem: the shrink goes to its own config.json (the bench's settings are in bench.json)."""
        data = self.read_config()
        data["shrink"] = {name: list(pair) for name, pair in changes.items()}
        self.path.mkdir(parents=True, exist_ok=True)
        self._write_json(self.config, data)

    def read_bench(self) -> dict:
        """bench.json as written (suite_run.load_bench makes its problems SuiteProblems); RunDirError when damaged."""
        return self._read_json(self.bench)

    # ---- outputs -------------------------------------------------------------------------------------------------
    def read_summary(self) -> dict | None:
        return self._read_json(self.summary) if self.summary.is_file() else None

    def write_summary(self, summary: dict) -> None:
        self._write_json(self.summary, summary)

    def read_best(self) -> str | None:
        return self.best.read_text() if self.best.is_file() else None

    def write_best(self, header: str, code: str) -> None:
        """best.py: a one-line comment saying where the kernel came from, then the kernel."""
        self.best.write_text(f"# {header}\n{code.rstrip()}\n")

    def discard_unused(self) -> bool:
        """Remove this directory when no attempt was recorded in it (a run that stopped before its first model
        call, say at an unreachable endpoint), so that it does not invite a --resume. True when removed."""
        for d in [self, *self.problem_dirs()]:
            if not d.holds_search():
                continue
            try:
                if d.attempts():
                    return False
            except Exception:
                return False  # a store we cannot read is not ours to delete
        if self.path.is_dir():
            shutil.rmtree(self.path)
            return True
        return False

    @staticmethod
    def _read_json(path: Path) -> dict:
        try:
            return json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise RunDirError(f"{path} is damaged ({e})") from None

    @staticmethod
    def _write_json(path: Path, data: dict) -> None:
        path.write_text(json.dumps(data, indent=2) + "\n")


def best_header(problem_name: str, attempt_id: int, verdict, how: str = "") -> str:
    """best.py's first line: which attempt, where it was verified and how fast (Verdict.timed says it)."""
    timed = verdict.timed
    speed = f", {timed.short()}" if timed else ", correct (not timed: no GPU)"
    return (f"kernelsearch: best kernel for {problem_name} - attempt {attempt_id}, {verdict.device}, {verdict.dtype}"
            f"{speed}{f' ({how})' if how else ''}")
