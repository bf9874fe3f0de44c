"""`kernelsearch retime`: every correct kernel of a run verified and timed again, the fastest kept. On the CPU the
verifier times nothing, so the CPU tests put a fake timer (named so below) over the real verifier; the GPU test
times for real and must pick the one-launch kernel over the eight-launch one."""
from __future__ import annotations

import shutil
import threading

import pytest

from .conftest import CANDIDATES, DEVICE, ON_GPU, PROBLEMS
from kernelsearch.cli import main
from kernelsearch.llm.client import ModelConfig
from kernelsearch.search.retime import retime, retime_all, targets
from kernelsearch.search.run_dir import RunDir, Settings
from kernelsearch.search.solve_config import SolveConfig
from kernelsearch.search.suite_run import save_bench
from kernelsearch.suites import SuiteProblem
from kernelsearch.verify.verdict import STATUSES, Status, Timing, Verdict, format_verdict

PROBLEM = PROBLEMS / "elementwise_add_relu.py"
FAST, SLOW, WRONG = (CANDIDATES / f"{name}.py" for name in ("add_relu_triton", "add_relu_slow", "add_relu_wrong_tail"))


def make_run(root, candidates, problem=PROBLEM, shrink=None) -> RunDir:
    """A run as a search without a GPU leaves it: every attempt correct, the first one kept as the best."""
    run = RunDir(root / "run")
    run.save_settings(Settings(str(problem), {}, SolveConfig(lanes=1), ModelConfig(model="m"), shrink or {}))
    store = run.open_store()
    for i, path in enumerate(candidates):
        attempt = store.begin(lane=0, step=i + 1, strategy="first", base_id=None, session=0, started_s=float(i),
                              prompt="p")
        store.update(attempt, status="correct", code=path.read_text(), finished_s=i + 0.5)
    store.close()
    run.write_best("kernelsearch: best kernel - attempt 1, cpu, fp32, correct (not timed: no GPU)",
                   candidates[0].read_text())
    run.write_summary({"problem": problem.stem, "solved": True, "best": {"attempt": 1}, "headline": "best: 1"})
    return run


def fake_timer(verify):
    """The real verifier, then a made-up GPU time: 8 launches (add_relu_slow) 0.08 ms, one launch 0.01 ms."""
    requests = []

    def timed(request):
        requests.append(request)
        verdict = verify(request)
        if verdict.ok:
            ms = 0.08 if "range(0, n, 2048)" in request.candidate_source else 0.01
            verdict.timing = {"candidate": {"median_ms": ms}, "eager": {"median_ms": 0.02},
                              "speedup_vs_eager": 0.02 / ms, "speedup_vs_eager_ci": [0.019 / ms, 0.021 / ms]}
        return verdict

    timed.requests = requests
    return timed


@pytest.mark.skipif(ON_GPU, reason="on a GPU the real timer runs: see the GPU test")
def test_retime_keeps_the_fastest_correct_kernel_and_rewrites_the_run(tmp_path, pool):
    run = make_run(tmp_path, [SLOW, FAST, FAST])  # the third is the second again: verified once
    [target] = targets(run)
    verify = fake_timer(pool.verify)
    summary = retime(target, verify, progress=lambda line: None)

    assert summary["best"]["attempt"] == 2 and summary["retime"]["best_before"] == 1
    assert summary["headline"].endswith("2x eager on its cold check; was attempt 1")
    assert run.read_summary() == summary
    assert run.read_best().splitlines()[1:] == FAST.read_text().splitlines()
    assert "attempt 2" in run.read_best().splitlines()[0] and "re-timed at the original sizes" in run.read_best()
    rows = run.open_store().retimes()
    assert [(r["attempt_id"], r["status"], r["candidate_ms"]) for r in rows] == [(1, "correct", 0.08),
                                                                              (2, "correct", 0.01)]
    assert summary["retime"]["attempts"][2] == {"attempt": 3, "status": "same code as attempt 2"}
    # two timings and the winner's cold re-check in a fresh worker, on seeds the search never drew
    assert len(verify.requests) == 3 and verify.requests[2].fresh_worker
    assert len({r.seed for r in verify.requests[1:]} | {SolveConfig().seed}) == 3


@pytest.mark.skipif(ON_GPU, reason="on a GPU the real timer runs: see the GPU test")
def test_a_stopped_retime_goes_on_where_it_stopped_on_the_same_device_only(tmp_path, pool):
    run = make_run(tmp_path, [SLOW, FAST])
    [target] = targets(run)
    retime(target, fake_timer(pool.verify), progress=lambda line: None)
    device = run.open_store().retimes()[0]["device"]
    again, lines = fake_timer(pool.verify), []
    summary = retime(target, again, progress=lines.append, reuse_on=device)
    assert len(again.requests) == 1 and again.requests[0].fresh_worker  # the cold re-check alone
    assert summary["best"]["attempt"] == 2 and sum("re-timed before" in line for line in lines) == 2
    assert summary["retime"]["best_before"] == 1 and summary["headline"].endswith("was attempt 1")  # the search's
    elsewhere = fake_timer(pool.verify)
    retime(target, elsewhere, progress=lambda line: None, reuse_on="another GPU")
    assert len(elsewhere.requests) == 3
    searched = fake_timer(pool.verify)  # the same device at other sizes: timed again
    retime(target, searched, sizes="searched", progress=lambda line: None, reuse_on=device)
    assert len(searched.requests) == 3


@pytest.mark.skipif(ON_GPU, reason="on a GPU the real timer runs")
def test_a_kernel_wrong_at_the_original_sizes_is_not_kept(tmp_path, pool):
    run = make_run(tmp_path, [WRONG])  # "correct" where it was searched; its tail is wrong at batch 16 x 1000
    [target] = targets(run)
    summary = retime(target, fake_timer(pool.verify), progress=lambda line: None)
    assert summary["solved"] is False and summary["best"] is None and not run.best.exists()
    assert summary["retime"]["attempts"][0]["status"] == "incorrect"
    assert run.attempts()[0].code == WRONG.read_text()  # its code stays in the store


def test_original_sizes_are_the_problem_files_own(tmp_path):
    run = make_run(tmp_path, [FAST], problem=PROBLEMS / "huge_relu.py", shrink={"dim": [393216, 6144]})
    [original] = targets(run)
    [searched] = targets(run, "searched")
    assert original.problem.constants["dim"] == 393216 and not original.problem.overrides
    assert searched.problem.constants["dim"] == 6144


def test_a_bench_is_retimed_problem_by_problem_with_its_settings(tmp_path):
    bench = RunDir(tmp_path / "bench")
    problem = SuiteProblem("L1-001_add_relu", "add_relu", PROBLEM, number=1, level=1, dtype="fp16",
                           variant_names=["dim"])
    save_bench(bench.path, [problem], {"name": "dir"}, SolveConfig(trials=3), ModelConfig(model="m"))
    shutil.copytree(make_run(tmp_path, [FAST]).path, bench.problem(problem.key).path)
    shutil.copyfile(PROBLEM, bench.problem(problem.key).problem_file)
    [target] = targets(bench)
    assert (target.name, target.options["dtype"], target.options["trials"]) == ("L1-001_add_relu", "fp16", 3)
    assert target.variant_names == {"dim"}


def test_a_folder_of_solve_runs_is_retimed_as_a_bench_each_with_its_own_settings(tmp_path):
    # benchmarks/real_model_sample.sh lays its solve runs out as a bench's problems, with no bench.json
    folder = RunDir(tmp_path / "sample")
    for key, trials in (("l1_a", 3), ("l1_b", 7)):
        run = RunDir(folder.problem(key).path)
        run.save_settings(Settings(str(PROBLEM), {}, SolveConfig(trials=trials, dtype="fp16", seed=5),
                                   ModelConfig(model="m"), {}, ["dim"]))
        run.open_store().close()
    found = targets(folder)
    assert [(t.name, t.options["trials"], t.options["dtype"], t.seed) for t in found] == [
        ("l1_a", 3, "fp16", 5), ("l1_b", 7, "fp16", 5)]
    assert found[0].variant_names == {"dim"} and found[0].run.path == folder.problem("l1_a").path


def test_retime_takes_the_workers_per_gpu_of_solve_and_bench(tmp_path, monkeypatch, capsys):
    from kernelsearch import run_dir_commands
    run = make_run(tmp_path, [FAST])
    opened = []

    def no_pool(config, ray):  # what retime asks of the pool, then no GPU work
        opened.append(config)
        raise RuntimeError("stopped here by the test")

    monkeypatch.setattr(run_dir_commands, "resolve_device", lambda device: "cuda")
    monkeypatch.setattr(run_dir_commands, "open_pool", no_pool)
    with pytest.raises(SystemExit) as stopped:
        main(["retime", str(run.path), "--workers-per-gpu", "2", "--again"])
    assert stopped.value.code == 2 and opened[0].workers_per_gpu == 2
    with pytest.raises(SystemExit) as refused:
        main(["retime", str(run.path), "--workers-per-gpu", "0"])
    assert refused.value.code == 2 and "--workers-per-gpu" in capsys.readouterr().err


@pytest.mark.skipif(ON_GPU, reason="on a GPU the real timer runs")
def test_targets_are_retimed_at_once_over_the_pools_workers_and_answered_in_order(tmp_path, pool):
    runs = [make_run(tmp_path / name, candidates) for name, candidates in (("a", [SLOW, FAST]), ("b", [FAST]))]
    timer = fake_timer(pool.verify)
    threads = []

    class TwoWorkers:  # the pool's interface as retime_all reads it: two workers (GPUs, or a cluster's actors)
        workers = [None, None]
        info: dict = {}  # no device said yet: nothing re-timed before is kept

        @staticmethod
        def verify(request):
            threads.append(threading.current_thread().name)
            return timer(request)

    summaries = retime_all([t for run in runs for t in targets(run)], TwoWorkers, progress=lambda line: None)
    assert [s["best"]["attempt"] for s in summaries] == [2, 1]  # run a's, then run b's
    assert summaries == [run.read_summary() for run in runs]
    assert len(threads) == 5 and len(set(threads[:2])) == 2  # b's first job came before a's first verdict


@pytest.mark.skipif(ON_GPU, reason="this machine has a GPU")
@pytest.mark.parametrize("device", ["auto", "cpu"])
def test_retime_without_a_gpu_is_one_line(tmp_path, capsys, device):
    run = make_run(tmp_path, [SLOW, FAST])
    with pytest.raises(SystemExit) as done:
        main(["retime", str(run), "--device", device])
    err = capsys.readouterr().err.strip()
    assert done.value.code == 2 and "\n" not in err and "re-timing needs a GPU" in err
    assert run.read_summary()["best"]["attempt"] == 1  # untouched


@pytest.mark.parametrize("setup, message", [
    (lambda root: root / "nothing", "is not a kernelsearch run"),
    (lambda root: make_run(root, [FAST]).path, "is damaged or not a kernelsearch store"),
])
def test_retime_of_no_run_or_a_damaged_one_is_one_line(tmp_path, capsys, setup, message):
    path = setup(tmp_path)
    if RunDir(path).store.exists():
        RunDir(path).store.write_bytes(b"garbage" * 300)
    with pytest.raises(SystemExit) as done:
        main(["retime", str(path), "--device", DEVICE])
    err = capsys.readouterr().err.strip()
    assert done.value.code == 2 and "\n" not in err and message in err


@pytest.mark.skipif(not ON_GPU, reason="needs a GPU (KS_TEST_DEVICE=cuda)")
def test_retime_on_the_gpu_picks_the_one_launch_kernel(tmp_path, capsys):
    run = make_run(tmp_path, [SLOW, FAST])  # the eight-launch kernel came first, so a CPU search kept it
    with pytest.raises(SystemExit) as done:
        main(["retime", str(run), "--device", "cuda"])
    assert done.value.code == 0
    rows = {r["attempt_id"]: r for r in run.open_store().retimes()}
    assert rows[2]["candidate_ms"] < rows[1]["candidate_ms"] and rows[2]["speedup_eager"] > rows[1]["speedup_eager"]
    summary = run.read_summary()
    assert summary["best"]["attempt"] == 2 and summary["best"]["cold_check"]["status"] == "correct"
    assert run.read_best().splitlines()[1:] == FAST.read_text().splitlines()


# ---- the timing and status types the run directory's files are written with --------------------------------------
TIMING = {"candidate": {"median_ms": 0.05, "reps": 20}, "method": "interleaved",
          "eager": {"median_ms": 0.1}, "speedup_vs_eager": 2.0, "speedup_vs_eager_ci": [1.9, 2.1],
          "compile": "unavailable: no inductor here"}


def test_timing_reads_the_verdicts_dict_once_and_says_it_one_way():
    timed = Timing.of(TIMING)
    assert (timed.speedup("eager"), timed.speedup("compile"), timed.ms("eager")) == (2.0, None, 0.1)
    assert timed.intervals == {"eager": (1.9, 2.1)} and timed.short() == "2x eager"
    assert timed.describe() == "0.05 ms median; eager 0.1 ms (2x); compile unavailable: no inductor here"
    verdict = Verdict("correct", "ok", timing=TIMING)
    assert "  timing: " + timed.describe() in format_verdict(verdict).splitlines()
    assert Timing.of(None) is None and Verdict("incorrect", "no").timed is None


def test_one_status_enum_for_verdicts_and_attempts():
    assert Status.NO_CODE == "no_code" and Status.CORRECT in STATUSES and Status.PENDING not in STATUSES
    assert Verdict(Status.CORRECT, "").ok and Verdict("correct", "").ok
