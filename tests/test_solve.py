"""`kernelsearch solve` end to end: the closed loop against a scripted OpenAI-protocol server and the real verifier."""
from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .conftest import CANDIDATES, DEVICE, ON_GPU, PROBLEMS
from .openai_server import ScriptedServer, fenced
from kernelsearch.cli import main

PROBLEM = str(PROBLEMS / "elementwise_add_relu.py")
SECRET = "sk-test-secret-123"


def code(name: str) -> str:
    return (CANDIDATES / f"{name}.py").read_text()


def solve(*args: str) -> int:
    with pytest.raises(SystemExit) as done:
        main(["solve", *args, "--device", DEVICE])
    return done.value.code


def attempts(run: Path) -> list[dict]:
    db = sqlite3.connect(run / "store.sqlite")
    db.row_factory = sqlite3.Row
    return [dict(r) for r in db.execute("SELECT * FROM attempts ORDER BY id")]


def test_the_loop_records_every_attempt_and_keeps_the_fastest_correct_kernel(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("KS_KEY", SECRET)
    script = [
        {"content": fenced(code("syntax_error")), "reasoning_content": "thinking A"},
        {"content": "<think>thinking B</think>\n" + fenced(code("add_relu_wrong_tail"))},
        {"status": 429},
        {"drop": True},
        {"content": fenced(code("add_relu_slow")), "reasoning": "thinking C"},
        {"content": "thinking D</think>" + fenced(code("add_relu_triton"))},
    ]
    run = tmp_path / "run"
    with ScriptedServer(script, api_key=SECRET) as server:
        status = solve(PROBLEM, "--base-url", server.url, "--api-key-env", "KS_KEY", "--lanes", "1",
                       "--budget", "5m", "--max-attempts", "5", "--out", str(run))
    assert status == 0
    rows = attempts(run)
    assert [r["status"] for r in rows] == ["compile_error", "incorrect", "correct", "correct", "no_code"]
    assert [r["strategy"] for r in rows][:3] == ["first", "fix_compile", "fix_wrong"]
    assert [r["reasoning"] for r in rows] == ["thinking A", "thinking B", "thinking C", "thinking D", ""]
    assert len(server.requests) == 7  # five answers, one 429 and one dropped connection retried
    # each prompt carries what the verifier said about the attempt before it, and the kernel it builds on: the
    # best so far on a GPU; without one nothing is timed, so no kernel is called the best
    assert "expected ':'" in rows[1]["prompt"]
    assert "elements wrong" in rows[2]["prompt"]
    heading = "The best verified kernel so far" if ON_GPU else "The kernel this attempt builds on"
    assert "range(0, n, 2048)" in rows[3]["prompt"] and heading in rows[3]["prompt"]
    assert all(r["finished_s"] >= r["started_s"] for r in rows)

    summary = json.loads((run / "summary.json").read_text())
    # On a GPU the faster kernel wins on measured time; without one nothing is timed and the first correct stays.
    winner = 4 if ON_GPU else 3
    assert summary["best"]["attempt"] == winner
    assert summary["best"]["cold_check"]["status"] == "correct"
    assert summary["statuses"] == {"compile_error": 1, "incorrect": 1, "correct": 2, "no_code": 1}
    assert (run / "best.py").read_text().splitlines()[1:] == rows[winner - 1]["code"].splitlines()
    if ON_GPU:
        assert rows[3]["speedup_eager"] > rows[2]["speedup_eager"]
    for path in run.iterdir():  # the key is read from the environment and never written down
        assert SECRET.encode() not in path.read_bytes(), path
    out = capsys.readouterr().out
    assert "kernel: " in out
    if ON_GPU:
        assert summary["headline"].startswith("best: attempt 4 (lane 0, ") and "new best: attempt 3" in out
    else:  # nothing timed: the kept kernel is the first correct one, and nothing is called the best
        assert summary["headline"].startswith("kept attempt 3 (lane 0, fix_wrong): the first correct kernel")
        assert f"`kernelsearch retime {run}` on a GPU ranks them" in summary["headline"]
        assert "first correct kernel: attempt 3: verified correct" in out
        assert "new best" not in out and "best:" not in out


def test_the_budget_is_honoured(tmp_path):
    run = tmp_path / "run"
    began = time.monotonic()
    with ScriptedServer([], default={"content": "thinking...", "delay": 1.5}) as server:
        status = solve(PROBLEM, "--base-url", server.url, "--lanes", "2", "--budget", "4s", "--out", str(run))
    took = time.monotonic() - began
    assert status == 1  # nothing correct was found
    summary = json.loads((run / "summary.json").read_text())
    assert summary["stop_reason"] == "budget spent" and summary["elapsed_s"] <= 4.5
    assert took < 4 + 20  # + worker start-up; the search itself stops at the budget
    rows = attempts(run)
    assert {r["lane"] for r in rows} == {0, 1}
    assert rows[-1]["status"] == "cancelled"  # the call in flight at the deadline is recorded as cut off


def test_a_killed_run_resumes_where_it_stopped(tmp_path):
    run = tmp_path / "run"
    script = [{"content": fenced(code("add_relu_triton")), "delay": 0.3}]
    with ScriptedServer(script, default={"content": "no idea", "delay": 0.4}) as server:
        proc = subprocess.Popen(
            [sys.executable, "-m", "kernelsearch", "solve", PROBLEM, "--base-url", server.url, "--lanes", "1",
             "--budget", "10m", "--max-attempts", "8", "--out", str(run), "--device", DEVICE],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            time.sleep(0.2)
            with contextlib.suppress(sqlite3.OperationalError):  # the file exists a moment before its tables
                if (run / "store.sqlite").exists() and sum(r["status"] != "pending" for r in attempts(run)) >= 3:
                    break
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        before = attempts(run)
        assert before[0]["status"] == "correct" and not (run / "summary.json").exists()

        status = solve("--resume", str(run))
    assert status == 0
    rows = attempts(run)
    assert rows[:len(before) - 1] == [r for r in before[:-1]]  # finished work is untouched
    assert {r["session"] for r in rows} == {0, 1}
    assert [r["step"] for r in rows] == list(range(1, len(rows) + 1))  # numbering continues
    assert "pending" not in {r["status"] for r in rows}
    assert sum(r["status"] != "cancelled" for r in rows) == 8  # the cap counts both sessions
    summary = json.loads((run / "summary.json").read_text())
    assert summary["sessions"] == 2 and summary["best"]["attempt"] == 1


def test_unreachable_endpoint_is_one_line(tmp_path, capsys):
    status = solve(PROBLEM, "--base-url", "http://127.0.0.1:9/v1", "--budget", "30s", "--out", str(tmp_path / "r"))
    err = capsys.readouterr().err.strip()
    assert status == 2 and err.count("\n") == 0 and "cannot reach http://127.0.0.1:9/v1" in err


def test_missing_key_is_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("DEEPSEEK_API_KEY", raising=False)
    status = solve(PROBLEM, "--endpoint", "deepseek", "--out", str(tmp_path / "r"))
    err = capsys.readouterr().err.strip()
    assert status == 2 and err == ("kernelsearch: error: DEEPSEEK_API_KEY is not set: export it (the key for "
                                   "https://api.deepseek.com) or name another variable with --api-key-env")


@pytest.mark.parametrize("args, message", [
    (["tests/problems/missing.py"], "problem file not found"),
    ([PROBLEM, "--budget", "soon"], "cannot read the duration"),
    (["--resume", "/nonexistent/run"], "holds no run to resume"),
])
def test_bad_input_is_one_line(args, message, capsys, tmp_path):
    status = solve(*args, "--base-url", "http://127.0.0.1:9/v1") if "--resume" not in args else solve(*args)
    err = capsys.readouterr().err.strip()
    assert status == 2 and message in err and "\n" not in err


def test_a_stuck_lane_starts_over_from_the_best_kernel(tmp_path):
    run = tmp_path / "run"
    with ScriptedServer([{"content": fenced(code("add_relu_triton"))}]) as server:  # then only answers without code
        status = solve(PROBLEM, "--base-url", server.url, "--lanes", "1", "--budget", "2m", "--max-attempts", "5",
                       "--out", str(run))
    assert status == 0
    rows = attempts(run)
    # three failures in a row (vectorize, fix_rules, fix_rules), then the next optimization from the best kernel
    # (the next that applies to an elementwise add + relu: tiling for data reuse does not, and fusing or fewer
    # launches not to a kernel that is one launch already)
    assert [r["strategy"] for r in rows] == ["first", "vectorize", "fix_rules", "fix_rules", "algebra"]
    assert [r["base_id"] for r in rows] == [None, 1, 2, 3, 1]  # each fix names the attempt it fixes
    assert "Your previous attempt (a first correct kernel)" in rows[4]["prompt"]


def test_a_problem_that_cannot_run_here_stops_the_search_at_once(tmp_path):
    # (one too large for the interpreter is refused before any model call: test_shrink.py)
    problem, run = tmp_path / "broken_reference.py", tmp_path / "run"
    problem.write_text((PROBLEMS / "elementwise_add_relu.py").read_text().replace(
        "return torch.relu(a + b)", 'raise RuntimeError("this reference cannot run here")'))
    with ScriptedServer([], default={"content": fenced(code("add_relu_triton"))}) as server:
        status = solve(str(problem), "--base-url", server.url, "--lanes", "1", "--budget", "2m", "--out", str(run))
    assert status == 1 and [r["status"] for r in attempts(run)] == ["problem_error"]
    summary = json.loads((run / "summary.json").read_text())
    assert summary["stop_reason"].startswith("the problem cannot be verified here: ")


def test_resume_refuses_other_settings(tmp_path, capsys):
    status = solve("--resume", str(tmp_path), "--lanes", "8")
    err = capsys.readouterr().err.strip()
    assert status == 2 and "only --budget and --device may change (got --lanes)" in err
