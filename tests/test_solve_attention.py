"""`kernelsearch solve SPEC`: an attention spec's generated kernel is the first verified attempt the model must beat."""
from __future__ import annotations

import json
import sqlite3
import textwrap
from dataclasses import replace
from pathlib import Path

import pytest

from .conftest import ON_GPU, PROBLEMS
from .openai_server import NO_CODE, ScriptedServer, fenced
from .test_solve import attempts, solve
from kernelsearch.attention import workflow
from kernelsearch.attention.generate import generate
from kernelsearch.attention.spec import is_spec, load_spec
from kernelsearch.problem import load_problem
from kernelsearch.search.display import Display
from kernelsearch.search.lanes import Search
from kernelsearch.search.solve_config import SolveConfig
from kernelsearch.store import RunStore

SHAPE = 'dict(batch=1, heads=2, q_len=40, kv_len=40, head_dim=16, dtype="fp32")'  # ~4 s to verify in the interpreter
MODS = '''
def score_mod(score, b, h, q_idx, kv_idx):
    return score + (q_idx - kv_idx) * 0.1


def mask_mod(b, h, q_idx, kv_idx):
    return q_idx >= kv_idx
'''
RETURN = "        return attention(q, k, v, sm_scale=self.sm_scale, **captures)"
EXAMPLES = Path(__file__).parents[1] / "examples" / "attention"


def write_spec(tmp_path: Path, mods: str = MODS, shapes: str = SHAPE) -> Path:
    path = tmp_path / "relbias.py"
    path.write_text('"""Causal attention with a relative-position bias."""\nimport torch\n' + textwrap.dedent(mods)
                    + f"\nSHAPES = [{shapes}]\nTEST_SHAPES = [{shapes}]\n")
    return path


def wrong(kernel: str) -> str:
    """The generated kernel with its output doubled: it compiles and runs, and every element is wrong."""
    assert RETURN in kernel
    return kernel.replace(RETURN, RETURN.replace("return attention(", "return 2 * attention("))


def test_solve_starts_from_the_generated_kernel_as_the_best_so_far(tmp_path, capsys):
    spec, run = write_spec(tmp_path), tmp_path / "run"
    kernel = generate(load_spec(spec)).source
    other = kernel + "\n\nUNUSED = 1  # the same kernel in another source: verified, correct, not faster\n"
    script = [{"content": fenced(wrong(kernel))}, {"content": fenced(other)}]
    with ScriptedServer(script) as server:
        status = solve(str(spec), "--base-url", server.url, "--lanes", "1", "--budget", "5m", "--max-attempts", "2",
                       "--out", str(run))
    assert status == 0
    rows = attempts(run)
    seed = rows[0]
    assert (seed["strategy"], seed["lane"], seed["step"], seed["status"]) == ("generated", 0, 0, "correct")
    assert seed["code"] == kernel and seed["answer"] is None and seed["completion_tokens"] == 0
    assert seed["finished_s"] <= rows[1]["started_s"]  # verified before the model was asked for anything
    out = capsys.readouterr().out
    best_line = "new best: attempt 1" if ON_GPU else "first correct kernel: attempt 1"
    assert best_line in out and out.index(best_line) < out.index("lane 0 attempt 1 (")

    # the model's first prompt shows the generated kernel as the one to build on
    first = server.requests[0]["messages"][0]["content"]
    assert kernel.strip() in first
    assert ("The best verified kernel so far" if ON_GPU else "The kernel this attempt builds on") in first
    assert rows[1]["base_id"] == 1 and rows[1]["prompt"] == first

    # the model's answers are handled as usual: a wrong one is fixed next, a correct one does not displace the seed
    # (untimed on the CPU, the first correct kernel stays; on a GPU the same kernel ties)
    assert [r["status"] for r in rows[1:]] == ["incorrect", "correct"]
    assert rows[2]["strategy"] == "fix_wrong" and rows[2]["base_id"] == 2
    summary = json.loads((run / "summary.json").read_text())
    assert summary["best"]["attempt"] == 1 and summary["best"]["strategy"] == "generated"
    assert summary["attempts"] == 3  # the cap counted the model's two; the seed is recorded beside them
    assert (run / "best.py").read_text().splitlines()[1:] == kernel.rstrip().splitlines()

    # the problem it searched is in the run directory, and the settings a resume needs
    assert "class Model(" in (run / "problem.py").read_text()
    config = json.loads((run / "config.json").read_text())
    assert config["search"]["dtype"] == "fp32" and config["variant_names"] == sorted(workflow.SIZE_CONSTANTS)


def test_resume_does_not_seed_again_and_every_lane_builds_on_the_seed(tmp_path):
    spec, run = write_spec(tmp_path), tmp_path / "run"
    kernel = generate(load_spec(spec)).source
    with ScriptedServer([], default={"content": "thinking...", "delay": 3}) as server:  # the budget ends first
        solve(str(spec), "--base-url", server.url, "--lanes", "2", "--budget", "1s", "--max-attempts", "2",
              "--out", str(run))
        before = attempts(run)
        assert before[0]["strategy"] == "generated" and before[0]["status"] == "correct"
        assert all(r["status"] == "cancelled" for r in before[1:])  # at most the call the deadline cut off

        server.default, asked = NO_CODE, len(server.requests)
        status = solve("--resume", str(run), "--budget", "5m")
    assert status == 0
    rows = attempts(run)
    assert [r["strategy"] for r in rows].count("generated") == 1 and rows[:len(before)] == before
    resumed = [r for r in rows if r["session"] == 1]
    assert {r["lane"] for r in resumed} == {0, 1} and {r["status"] for r in resumed} == {"no_code"}
    # lane 1 has no attempt of its own: it starts from the seed too, with another optimization than lane 0's
    assert [r["base_id"] for r in resumed] == [1, 1] and resumed[0]["strategy"] != resumed[1]["strategy"]
    assert all(kernel.strip() in r["messages"][0]["content"] for r in server.requests[asked:])
    assert json.loads((run / "summary.json").read_text())["best"]["attempt"] == 1


@pytest.mark.parametrize("chosen, searched", [(None, "fp16"), ("--dtype", "fp32"), ("[search]", "fp32")])
def test_the_search_runs_at_the_specs_dtype_unless_one_is_chosen(chosen, searched, tmp_path):
    spec, run = write_spec(tmp_path, shapes=SHAPE.replace("fp32", "fp16")), tmp_path / "run"
    (tmp_path / "ks.toml").write_text('[search]\ndtype = "fp32"\n')
    flags = {None: [], "--dtype": ["--dtype", "fp32"], "[search]": ["--config", str(tmp_path / "ks.toml")]}[chosen]
    with ScriptedServer([], default=NO_CODE) as server:
        solve(str(spec), "--base-url", server.url, "--budget", "1s", "--max-attempts", "1", "--out", str(run), *flags)
    assert json.loads((run / "config.json").read_text())["search"]["dtype"] == searched
    assert json.loads(attempts(run)[0]["verdict"])["dtype"] == searched  # the seed was verified at it too


@pytest.mark.parametrize("left", ["cancelled", "nothing"])
def test_a_run_stopped_before_its_seed_was_verified_plants_it_on_resume(left, tmp_path, capsys):
    spec, run = write_spec(tmp_path), tmp_path / "run"
    with ScriptedServer([], default=NO_CODE) as server:
        solve(str(spec), "--base-url", server.url, "--budget", "1s", "--max-attempts", "1", "--out", str(run))
        # as a stop during the seed's verification, or before it, leaves the store: the lanes had not started
        db = sqlite3.connect(run / "store.sqlite")
        db.execute("DELETE FROM attempts WHERE strategy != 'generated'")
        if left == "cancelled":
            db.execute("UPDATE attempts SET status = 'cancelled', verdict = NULL")
        else:
            db.execute("DELETE FROM attempts")
        db.commit()
        db.close()
        (run / "summary.json").unlink()
        status = solve("--resume", str(run), "--budget", "5m")
    assert status == 0
    seeds = [r for r in attempts(run) if r["strategy"] == "generated"]
    assert [(r["status"], r["session"]) for r in seeds] == [("cancelled", 0)] * (left == "cancelled") + [("correct", 1)]
    assert json.loads((run / "summary.json").read_text())["best"]["attempt"] == seeds[-1]["id"]


def test_a_damaged_seed_file_stops_a_resume_in_one_line(tmp_path, capsys):
    spec, run = write_spec(tmp_path), tmp_path / "run"
    with ScriptedServer([], default=NO_CODE) as server:
        solve(str(spec), "--base-url", server.url, "--budget", "1s", "--max-attempts", "1", "--out", str(run))
        sqlite3.connect(run / "store.sqlite").execute("DELETE FROM attempts").connection.commit()
        (run / "seed.json").write_text("{not json")
        capsys.readouterr()
        status = solve("--resume", str(run), "--budget", "5m")
    err = capsys.readouterr().err
    assert status == 2 and "seed.json is damaged" in err and len(err.strip().splitlines()) == 1


def test_a_generated_kernel_that_fails_is_one_line_and_the_model_starts_from_nothing(tmp_path, capsys, monkeypatch):
    spec, run = write_spec(tmp_path), tmp_path / "run"
    kernel = generate(load_spec(spec)).source
    def broken(s):
        made = generate(s)
        return replace(made, source=wrong(made.source))

    monkeypatch.setattr(workflow, "generate", broken)
    with ScriptedServer([{"content": fenced(kernel)}]) as server:
        status = solve(str(spec), "--base-url", server.url, "--lanes", "1", "--budget", "5m", "--max-attempts", "1",
                       "--out", str(run))
    assert status == 0
    lines = [line for line in capsys.readouterr().err.splitlines() if "generated kernel" in line]
    assert len(lines) == 1 and lines[0].startswith("kernelsearch: the generated kernel failed verification "
                                                   "(incorrect") and lines[0].endswith("the model starts from nothing")
    rows = attempts(run)
    assert [(r["strategy"], r["status"]) for r in rows[:1]] == [("generated", "incorrect")]
    assert rows[1]["strategy"].startswith("first") and rows[1]["base_id"] is None  # a start, not a fix of the seed
    assert rows[1]["status"] == "correct" and "builds on" not in server.requests[0]["messages"][0]["content"]
    assert json.loads((run / "summary.json").read_text())["best"]["attempt"] == 2

    # resumed with only the failed seed on record, lane 0 starts from nothing as well
    store = RunStore(run / "store.sqlite")
    store.db.execute("DELETE FROM attempts WHERE id > 1")
    search = Search(load_problem(run / "problem.py"), SolveConfig(lanes=1), None, None, store, Display(live=False))
    assert search.lanes[0].previous is None and search.lanes[0].failures == 0 and search.archive.best() is None
    store.close()


def test_a_spec_the_generator_cannot_translate_is_searched_from_nothing(tmp_path, capsys):
    erf = "\ndef score_mod(score, b, h, q_idx, kv_idx):\n    return score + torch.erf(score)\n"
    spec, run = write_spec(tmp_path, erf), tmp_path / "run"
    with ScriptedServer([]) as server:  # one answer without code: nothing to verify
        status = solve(str(spec), "--base-url", server.url, "--lanes", "1", "--budget", "2m", "--max-attempts", "1",
                       "--out", str(run))
    assert status == 1
    err = [line for line in capsys.readouterr().err.splitlines() if "generated kernel" in line]
    assert len(err) == 1 and "erf" in err[0] and err[0].endswith("the model starts from nothing")
    assert [(r["strategy"], r["status"]) for r in attempts(run)] == [("first", "no_code")]
    assert "erf" in (run / "problem.py").read_text() and len(server.requests) == 1


@pytest.mark.parametrize("body, extra, message", [
    ("x = 1\n", [], "is neither a KernelBench problem (it defines no Model) nor an attention spec"),
    (f"{MODS}\nSHAPES = []\nTEST_SHAPES = []\n", [], "is empty: a search needs a shape to search at"),
    (f"{MODS}\nSHAPES = [dict(batch=1)]\nTEST_SHAPES = SHAPES\n", [], "bad entry in SHAPES"),
    (f"{MODS}\nSHAPES = [{SHAPE}]\nTEST_SHAPES = SHAPES\n", ["--set", "seq=8"], "--set seq: no such top-level"),
])
def test_a_bad_spec_is_one_line_and_leaves_no_directory(body, extra, message, tmp_path, capsys):
    spec, run = tmp_path / "spec.py", tmp_path / "run"
    spec.write_text("import torch\n" + body)
    status = solve(str(spec), *extra, "--base-url", "http://127.0.0.1:9/v1", "--out", str(run))
    err = capsys.readouterr().err.strip()
    assert status == 2 and message in err and "\n" not in err and not run.exists()


def test_specs_and_problems_are_told_apart_by_what_they_define(tmp_path):
    assert all(is_spec(p) for p in EXAMPLES.glob("*.py"))  # mask_mod only, score_mod only, both
    assert not is_spec(PROBLEMS / "elementwise_add_relu.py")
    problem = tmp_path / "problem.py"  # a problem made from a spec holds the spec's mods and a Model
    problem.write_text(workflow.spec_problem(load_spec(EXAMPLES / "causal.py"), "cpu").source)
    assert not is_spec(problem) and not is_spec(tmp_path / "missing.py")
