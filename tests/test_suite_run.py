"""`kernelsearch bench` end to end on a suite of our own in KernelBench's layout, against the scripted server."""
from __future__ import annotations

import csv
import json
import shutil
import sqlite3

import pytest

from .conftest import CANDIDATES, DEVICE, PROBLEMS
from .openai_server import ScriptedServer, fenced
from kernelsearch.cli import main
from kernelsearch.search.run_dir import RunDir
from kernelsearch.suites import load_suite, parse_selection, write_kernelbench_rows

SUITE = {1: "elementwise_add_relu", 2: "row_sum", 3: "softmax"}


def kernelbench_checkout(root):
    level = root / "KernelBench" / "level1"
    level.mkdir(parents=True)
    for number, name in SUITE.items():
        shutil.copyfile(PROBLEMS / f"{name}.py", level / f"{number}_{name}.py")
    return root


def answer(candidate: str, match: str) -> dict:
    return {"content": fenced((CANDIDATES / f"{candidate}.py").read_text()), "match": match}


def bench(*args: str) -> int:
    with pytest.raises(SystemExit) as done:
        main(["bench", *args, "--device", DEVICE] if "--replay" not in args else ["bench", *args])
    return done.value.code


def test_bench_runs_a_suite_end_to_end_and_resumes(tmp_path, capsys):
    checkout = kernelbench_checkout(tmp_path / "kb")
    run = RunDir(tmp_path / "run")
    script = [answer("out_of_bounds", "torch.relu(a + b)"),  # kills its worker; the other problems go on
              answer("add_relu_triton", "torch.relu(a + b)"),
              answer("row_sum_triton", "torch.sum(x, dim=self.dim")]
    with ScriptedServer(script) as server:  # softmax only ever gets answers without code
        status = bench("kernelbench", "--kernelbench-dir", str(checkout), "--level", "1", "--base-url", server.url,
                       "--lanes", "1", "--budget", "2m", "--max-attempts", "2", "--concurrent", "3",
                       "--out", str(run))
        assert status == 0
        calls = len(server.requests)
        rows = {r["problem"]: r for r in csv.DictReader(open(run.results))}
        assert set(rows) == {"L1-001_elementwise_add_relu", "L1-002_row_sum", "L1-003_softmax"}
        assert [rows[k]["solved"] for k in sorted(rows)] == ["1", "1", "0"]
        db = sqlite3.connect(run.problem("L1-001_elementwise_add_relu").store)
        assert [s for (s,) in db.execute("SELECT status FROM attempts ORDER BY id")] == ["runtime_error", "correct"]
        summary = run.read_summary()
        assert summary["problems"] == 3 and summary["correct"] == 2
        assert summary["attempts"] == 6  # the attempt cap (2) applies per problem
        curve = summary["solve_curve"]
        assert curve[0][1] == 0 and curve[-1][1] == pytest.approx(2 / 3)
        assert run.report.exists()

        # resume: every problem is finished, so nothing is asked again
        assert bench("--resume", str(run)) == 0
        assert len(server.requests) == calls
    assert "skipped (finished)" in capsys.readouterr().out

    # replay: the best kernels verified again with new seeds, no model at all (the endpoint is gone by now)
    replayed = RunDir(tmp_path / "replay")
    assert bench("--replay", str(run), "--out", str(replayed), "--device", DEVICE) == 0
    verdicts = {p.parent.name: json.loads(p.read_text())["status"]
                for p in (d.replay for d in replayed.problem_dirs())}
    assert verdicts == {"L1-001_elementwise_add_relu": "correct", "L1-002_row_sum": "correct",
                        "L1-003_softmax": "no_kernel"}
    replay_summary = replayed.read_summary()
    assert replay_summary["correct"] == 2 and replay_summary["context"]["replay of"] == str(run)


def test_problem_selection_and_plain_directories(tmp_path):
    assert parse_selection("1-3,7") == {1, 2, 3, 7}
    checkout = kernelbench_checkout(tmp_path / "kb")
    chosen = load_suite("kernelbench", kernelbench_dir=str(checkout), selection="2-3", work_dir=tmp_path)
    assert [p.key for p in chosen] == ["L1-002_row_sum", "L1-003_softmax"]
    plain = load_suite(str(PROBLEMS), selection="1", work_dir=tmp_path)
    assert len(plain) == 1 and plain[0].path.parent == PROBLEMS


def test_hugging_face_rows_are_written_in_kernelbench_layout(tmp_path):
    rows = [{"problem_id": 19, "name": "19_ReLU.py", "code": "# relu", "level": 1},
            {"problem_id": 3, "name": "Batched matmul", "code": "# bmm", "level": 1}]
    out = write_kernelbench_rows(rows, tmp_path / "level1")
    assert sorted(p.name for p in out.iterdir()) == ["19_ReLU.py", "3_Batched_matmul.py"]
    assert [p.key for p in load_suite(str(out), work_dir=tmp_path)] == ["003_Batched_matmul", "019_ReLU"]


def test_attention_examples_are_a_suite(tmp_path):
    problems = load_suite("attention", work_dir=tmp_path, device="cpu")
    assert {p.key for p in problems} >= {"causal", "relative_position", "neighborhood_2d"}
    assert all(p.path.read_text().count("class Model(") == 1 and p.variant_names for p in problems)


def test_bench_with_an_unreachable_endpoint_is_one_line(tmp_path, capsys):
    checkout = kernelbench_checkout(tmp_path / "kb")
    status = bench("kernelbench", "--kernelbench-dir", str(checkout), "--base-url", "http://127.0.0.1:9/v1",
                   "--out", str(tmp_path / "run"))
    err = capsys.readouterr().err.strip()
    assert status == 2 and "cannot reach http://127.0.0.1:9/v1" in err and "\n" not in err


def test_attention_suite_end_to_end_with_the_generated_kernel_as_the_answer(tmp_path):
    from kernelsearch.attention.generate import generate
    from kernelsearch.attention.spec import load_spec
    from kernelsearch.suites import EXAMPLES

    kernel = generate(load_spec(EXAMPLES / "causal.py")).source  # the offline generator plays the model
    run = tmp_path / "run"
    with ScriptedServer([{"content": fenced(kernel)}]) as server:
        status = bench("attention", "--problems", "2", "--base-url", server.url, "--lanes", "1",
                       "--max-attempts", "1", "--budget", "5m", "--out", str(run))
    assert status == 0
    summary = RunDir(run).problem("causal").read_summary()
    assert summary["best"]["cold_check"]["status"] == "correct"
    assert "kv_len" in summary["best"]["cold_check"]["checks"]["second_shape"]["changes"]
