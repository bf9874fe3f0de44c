"""The run directory (search/run_dir.py) and bad input around it: a damaged store is one line for `report` and
`--resume`, an unreachable endpoint leaves no directory behind, and a killed run keeps the budget it spent."""
from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .conftest import DEVICE, PROBLEMS
from .openai_server import ScriptedServer
from kernelsearch.cli import main
from kernelsearch.llm.client import ModelConfig
from kernelsearch.search.run_dir import RunDir, RunDirError, Settings
from kernelsearch.search.solve_config import SolveConfig
from kernelsearch.search.suite_run import save_bench
from kernelsearch.store import ELAPSED, RunStore, StoreError
from kernelsearch.suites import SuiteProblem

PROBLEM = PROBLEMS / "elementwise_add_relu.py"


def run_cli(*args: str) -> int:
    with pytest.raises(SystemExit) as done:
        main(list(args))
    return done.value.code


def settings(**search) -> Settings:
    return Settings(str(PROBLEM), {"dim": "64"}, SolveConfig(**search), ModelConfig(model="m"))


def store_with_attempts(path: Path, n: int = 40) -> None:
    store = RunStore(path)
    for i in range(n):  # a few hundred kB, so that a truncated copy loses pages, not only its tail
        attempt = store.begin(lane=0, step=i + 1, strategy="first", base_id=None, session=0, started_s=float(i),
                              prompt="p" * 8000)
        store.update(attempt, status="no_code", finished_s=i + 0.5)
    store.close()


# ---- settings and files ------------------------------------------------------------------------------------------
def test_settings_round_trip_with_the_shrink_applied_after_the_users_set(tmp_path):
    run = RunDir(tmp_path / "run")
    saved = settings(lanes=2, shrink="auto")
    saved.shrink = {"batch_size": [16, 4]}
    run.save_settings(saved)
    loaded = run.load_settings()
    assert loaded.search == saved.search and loaded.model.model == "m"
    assert loaded.problem == str(run.problem_file) and loaded.shrink == {"batch_size": [16, 4]}
    assert run.read_config()["problem"] == str(PROBLEM.resolve())  # the file the user gave, for people
    assert loaded.searched_overrides() == {"dim": "64", "batch_size": "4"}
    assert run.shrink() == {"batch_size": [16, 4]}


def test_a_run_moved_to_another_machine_keeps_the_problem_it_searched(tmp_path):
    original = tmp_path / "elsewhere" / "problem.py"
    original.parent.mkdir()
    original.write_text(PROBLEM.read_text())
    run = RunDir(tmp_path / "run")
    run.save_settings(Settings(str(original), {}, SolveConfig(), ModelConfig(model="m")))
    original.write_text("this file changed after the search\n")
    original.unlink()  # as on a GPU machine that has the run directory and not the user's files
    loaded = run.load_settings()
    assert Path(loaded.problem).read_text() == PROBLEM.read_text()


def test_a_new_run_refuses_a_directory_that_holds_one(tmp_path):
    run = RunDir(tmp_path)
    run.new_search()  # empty: fine
    RunStore(run.store).close()
    with pytest.raises(RunDirError, match="already holds a run: continue it with --resume"):
        run.new_search()


def test_files_of_a_bench_and_its_problems(tmp_path):
    bench = RunDir(tmp_path)
    problem = bench.problem("L1-019_ReLU")
    assert problem.store == tmp_path / "problems" / "L1-019_ReLU" / "store.sqlite"
    assert bench.problem_dirs() == [] and not bench.holds_bench()
    problem.path.mkdir(parents=True)
    assert bench.problem_dirs() == [problem] and bench.holds_bench() and not bench.holds_search()


def test_a_damaged_config_is_one_line(tmp_path):
    RunDir(tmp_path).config.write_text("{not json")
    with pytest.raises(RunDirError, match="config.json is damaged"):
        RunDir(tmp_path).load_settings()


def test_run_status_of_a_damaged_run_is_one_argument_error(tmp_path):
    from kernelsearch.agents.arguments import ArgumentError
    from kernelsearch.agents.run_status import run_status

    run = RunDir(tmp_path)
    store_with_attempts(run.store, n=1)
    run.config.write_text("{not json")
    with pytest.raises(ArgumentError, match="config.json is damaged"):
        run_status(run.path)


# ---- a damaged store ---------------------------------------------------------------------------------------------
def garbage(path: Path) -> None:
    path.write_bytes(b"\x00\xffnot a database at all" * 400)


def truncated(path: Path) -> None:
    store_with_attempts(path)
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 3])


def other_schema(path: Path) -> None:
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE attempts (id INTEGER PRIMARY KEY, score REAL)")
        db.execute("INSERT INTO attempts (score) VALUES (1.0)")


DAMAGES = {"garbage": garbage, "truncated": truncated, "other_schema": other_schema}


@pytest.mark.parametrize("damage", DAMAGES)
def test_a_damaged_store_raises_store_error(tmp_path, damage):
    path = tmp_path / "store.sqlite"
    DAMAGES[damage](path)
    with pytest.raises(StoreError, match="is damaged or not a kernelsearch store"):
        RunStore(path)


def solve_run(root: Path) -> Path:
    run = RunDir(root / "solve")
    run.save_settings(settings())
    return run.store


def bench_run(root: Path) -> Path:
    run = RunDir(root / "bench")
    problem = SuiteProblem("L1-001_add_relu", "add_relu", PROBLEM, number=1, level=1)
    save_bench(run.path, [problem], {"name": "dir"}, SolveConfig(), ModelConfig(model="m"))
    run.problem(problem.key).path.mkdir(parents=True)
    return run.problem(problem.key).store


COMMANDS = {  # what makes the run, and the command that reads it
    "report": (solve_run, lambda store: ["report", str(store.parent)]),
    "report_bench": (bench_run, lambda store: ["report", str(store.parents[2])]),
    "solve_resume": (solve_run, lambda store: ["solve", "--resume", str(store.parent), "--device", DEVICE]),
    "bench_resume": (bench_run, lambda store: ["bench", "--resume", str(store.parents[2]), "--device", DEVICE]),
}


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("damage", DAMAGES)
def test_a_damaged_store_is_one_line_and_exit_2(tmp_path, capsys, command, damage):
    make, argv = COMMANDS[command]
    store = make(tmp_path)
    DAMAGES[damage](store)
    status = run_cli(*argv(store))
    err = capsys.readouterr().err.strip()
    assert status == 2 and "\n" not in err, err
    assert err.startswith("kernelsearch: error: ") and f"{store} is damaged or not a kernelsearch store" in err


@pytest.mark.parametrize("command", ["report_bench", "bench_resume"])
def test_a_damaged_summary_is_one_line_and_exit_2(tmp_path, capsys, command):
    make, argv = COMMANDS[command]
    store = make(tmp_path)
    RunDir(store.parent).summary.write_text('{"solved": tr')  # a bench killed while writing it
    status = run_cli(*argv(store))
    err = capsys.readouterr().err.strip()
    assert status == 2 and "\n" not in err and f"{RunDir(store.parent).summary} is damaged" in err, err


# ---- an unreachable endpoint --------------------------------------------------------------------------------------
@pytest.mark.parametrize("command", ["solve", "bench"])
def test_an_unreachable_endpoint_leaves_no_run_directory(tmp_path, capsys, command):
    out = tmp_path / "run"
    target = [str(PROBLEM)] if command == "solve" else [str(PROBLEMS)]
    status = run_cli(command, *target, "--base-url", "http://127.0.0.1:9/v1", "--budget", "30s", "--out", str(out),
                     "--device", DEVICE)
    captured = capsys.readouterr()
    assert status == 2 and "cannot reach http://127.0.0.1:9/v1" in captured.err
    assert not out.exists()  # nothing there to --resume
    assert "--resume" not in captured.out + captured.err


def test_an_unreachable_endpoint_keeps_a_directory_the_user_made(tmp_path, capsys):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    status = run_cli("solve", str(PROBLEM), "--base-url", "http://127.0.0.1:9/v1", "--out", str(out),
                     "--device", DEVICE)
    assert status == 2 and (out / "notes.txt").read_text() == "keep me"


# ---- the budget a killed run spent --------------------------------------------------------------------------------
def test_every_finished_attempt_records_the_budget_spent(tmp_path):
    store = RunDir(tmp_path).open_store()
    first = store.begin(lane=0, step=1, strategy="first", base_id=None, session=0, started_s=1.0, prompt="p")
    assert store.meta(ELAPSED) == 1.0
    store.update(first, status="no_code", finished_s=7.5)  # no verdict, no set_meta by the search
    assert store.meta(ELAPSED) == 7.5
    second = store.begin(lane=1, step=1, strategy="first", base_id=None, session=0, started_s=3.0, prompt="p")
    store.update(second, status="llm_error", finished_s=5.0)
    assert store.meta(ELAPSED) == 7.5  # never goes back
    store.close()


def test_a_killed_run_of_answers_without_code_resumes_with_their_budget_spent(tmp_path):
    run = tmp_path / "run"
    with ScriptedServer([], default={"content": "no kernel today", "delay": 0.4}) as server:
        proc = subprocess.Popen(
            [sys.executable, "-m", "kernelsearch", "solve", str(PROBLEM), "--base-url", server.url, "--lanes", "1",
             "--budget", "10m", "--out", str(run), "--device", DEVICE],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + 120
        finished = []
        while time.monotonic() < deadline and len(finished) < 4:
            time.sleep(0.2)
            if RunDir(run).store.exists():
                finished = [a for a in RunDir(run).attempts() if a.finished_s is not None]
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        assert len(finished) >= 4 and {a.status for a in finished} == {"no_code"}
        store = RunStore(RunDir(run).store)
        spent = store.meta(ELAPSED)
        store.close()
        assert spent >= max(a.finished_s for a in finished) > 1.2  # four answers of 0.4 s each at least

        more = 4.0  # seconds: room for the resumed session to start its worker and ask at least once, under load
        assert run_cli("solve", "--resume", str(run), "--budget", f"{spent + more:.3f}s", "--device", DEVICE) == 1
    resumed = [a for a in RunDir(run).attempts() if a.session == 1]
    assert resumed and resumed[0].started_s >= spent  # the second session starts where the first one stopped
    summary = RunDir(run).read_summary()
    assert summary["elapsed_s"] <= spent + more + 1.0 and summary["stop_reason"] == "budget spent"
