"""End to end on the CPU: the worker pool runs candidates under the Triton interpreter."""
import json
import subprocess
import sys

import pytest

from ..conftest import CANDIDATES, DEVICE, ON_GPU, PROBLEMS

HONEST = [  # problem, candidate, PyTorch ops the candidate keeps
    ("elementwise_add_relu", "add_relu_triton", []),
    ("matmul", "matmul_triton", []),
    ("row_sum", "row_sum_triton", []),
    ("softmax", "softmax_triton", []),
    ("cross_entropy", "cross_entropy_triton", []),
    ("conv_relu_bias", "conv_relu_bias_partial", ["convolution"]),
]


@pytest.mark.parametrize("problem, candidate, kept", HONEST)
def test_honest_candidates_are_correct(verify, problem, candidate, kept):
    v = verify(problem, CANDIDATES / f"{candidate}.py")
    assert v.status == "correct", v.message
    assert len(v.trials) == 5 and all(t["ok"] for t in v.trials)
    assert {t["order"] for t in v.trials} == {"reference_first", "candidate_first"}
    assert len({t["seed"] for t in v.trials}) == 5
    assert v.checks["determinism"]["ok"]
    assert v.checks["second_shape"]["ok"], v.checks
    assert v.kernel_launches >= 1
    assert v.pytorch_ops == kept
    assert v.timing is None
    if not ON_GPU:
        assert "no GPU" in v.timing_unavailable
    # where the time went: every step the job took, each counted once, within the job's own time
    assert {"keeper", "inputs", "poison", "candidate", "compile", "first_call"} <= set(v.step_s), v.step_s
    assert all(s >= 0 for s in v.step_s.values()) and 0 < sum(v.step_s.values()) <= v.elapsed_s


@pytest.mark.skipif(not ON_GPU, reason="timing needs a GPU")
@pytest.mark.parametrize("problem, candidate", [("elementwise_add_relu", "add_relu_triton"), ("matmul", "matmul_triton")])
def test_gpu_timing_against_eager_and_compile(verify, problem, candidate):
    v = verify(problem, CANDIDATES / f"{candidate}.py", timing=True)
    assert v.status == "correct", v.message
    assert v.timing["candidate"]["median_ms"] > 0 and v.timing["candidate"]["reps"] >= 20
    assert v.timing["eager"]["median_ms"] > 0
    assert v.timing["speedup_vs_eager"] == pytest.approx(
        v.timing["eager"]["median_ms"] / v.timing["candidate"]["median_ms"], rel=1e-3)
    assert "speedup_vs_compile" in v.timing, v.timing.get("compile")
    assert v.checks["fresh_inputs_after_timing"]["ok"]
    assert v.checks["roofline"]["floor_ms"] > 0
    assert {"timing", "compile_baseline", "keeper"} <= set(v.step_s) and sum(v.step_s.values()) <= v.elapsed_s


def test_fp16_run_casts_float_inputs_but_not_integer_targets(verify):
    v = verify("cross_entropy", CANDIDATES / "cross_entropy_triton.py", dtype="fp16", trials=2)
    assert v.status == "correct", v.message
    assert v.dtype == "fp16"


def test_missing_tail_mask_is_reported_with_its_location(verify):
    v = verify("elementwise_add_relu", CANDIDATES / "add_relu_wrong_tail.py")
    assert v.status == "incorrect"
    assert "along dim 1 (size 1000) only indices 512..999 are wrong" in v.message
    mismatch = v.trials[-1]["mismatch"]
    assert mismatch["first_wrong_index"][1] >= 512 and 0 < mismatch["fraction_wrong"] < 1


def test_wrong_scale_is_reported(verify):
    v = verify("matmul", CANDIDATES / "matmul_wrong_scale.py")
    assert v.status == "incorrect"
    assert "2 x the reference" in v.message and "every element" in v.message


@pytest.mark.parametrize("candidate, status, phase, text", [
    ("crash_raises", "runtime_error", "first_call", "kernel gave up"),
    ("out_of_bounds", "runtime_error", "first_call", "CUDA error" if ON_GPU else "SIGSEGV"),
    ("hang", "timeout", "run", "ran past its 15s limit"),
    ("triton_compile_error", "compile_error", "first_call", "power of 2"),
    ("syntax_error", "compile_error", "static", "syntax error at line 6"),
    ("no_model_new", "compile_error", "static", "defines no class ModelNew"),
])
def test_failures_become_verdicts_and_the_pool_keeps_working(verify, candidate, status, phase, text):
    v = verify("elementwise_add_relu", CANDIDATES / f"{candidate}.py")
    assert (v.status, v.phase) == (status, phase), v.message
    assert text in v.message
    after = verify("elementwise_add_relu", CANDIDATES / "add_relu_triton.py", trials=1)
    assert after.status == "correct", after.message


@pytest.mark.skipif(ON_GPU, reason="the interpreter's error; on a GPU the compiler quotes the line itself")
def test_an_error_inside_a_kernel_names_the_kernels_line_and_the_launch(verify):
    # the interpreter raises at the launch and keeps the kernel's failing line in the exception's cause
    v = verify("elementwise_add_relu", CANDIDATES / "kernel_line_error.py")
    assert v.status == "compile_error", v.message
    assert "candidate.py:12: tl.atomic_xchg(" in v.message and "called at candidate.py:20: " in v.message



def test_candidate_error_points_at_its_line(verify):
    v = verify("elementwise_add_relu", CANDIDATES / "crash_raises.py")
    assert "candidate.py:20" in v.message


@pytest.mark.skipif(ON_GPU, reason="the size limit is the CPU interpreter's")
def test_too_large_for_the_interpreter_is_refused_and_set_shrinks_it(verify):
    v = verify("huge_relu", CANDIDATES / "add_relu_triton.py")
    assert v.status == "problem_error"
    assert "too large for the CPU interpreter" in v.message and "batch_size=4096" in v.message
    small = verify("huge_relu", CANDIDATES / "relu_triton.py", {"batch_size": "2", "dim": "1000"}, trials=2)
    assert small.status == "correct", small.message
    assert small.overrides == {"batch_size": ["4096", "2"], "dim": ["393216", "1000"]}


def test_strict_rejects_what_plain_mode_lists(verify):
    plain = verify("conv_relu_bias", CANDIDATES / "conv_relu_bias_partial.py", trials=1)
    strict = verify("conv_relu_bias", CANDIDATES / "conv_relu_bias_partial.py", trials=1, strict=True)
    assert plain.status == "correct" and plain.pytorch_ops == ["convolution"]
    assert strict.status == "rejected" and "convolution" in strict.message


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "kernelsearch", *args], capture_output=True, text=True, timeout=300)


def test_cli_json_verdict_and_exit_codes(tmp_path):
    ok = run_cli("verify", str(PROBLEMS / "softmax.py"), str(CANDIDATES / "softmax_triton.py"), "--json",
                 "--trials", "2", "--device", "cpu")
    assert ok.returncode == 0, ok.stderr
    verdict = json.loads(ok.stdout)
    assert verdict["status"] == "correct" and len(verdict["trials"]) == 2
    bad = run_cli("verify", str(PROBLEMS / "softmax.py"), str(CANDIDATES / "add_relu_wrong_tail.py"), "--device", "cpu")
    assert bad.returncode == 1
    assert bad.stdout.startswith("incorrect") or bad.stdout.startswith("runtime_error")


def test_cli_a_kernel_fixed_to_the_problems_shapes_exits_1_and_0_under_kernelbench_s_rules():
    args = ["verify", str(PROBLEMS / "elementwise_add_relu.py"), str(CANDIDATES / "hacks" / "hardcoded_shape.py"),
            "--trials", "2", "--device", "cpu"]
    ours = run_cli(*args)
    assert ours.returncode == 1 and ours.stdout.startswith("shape_specific"), ours.stdout + ours.stderr
    theirs = run_cli(*args, "--rules", "kernelbench")
    assert theirs.returncode == 0 and theirs.stdout.startswith("correct"), theirs.stdout + theirs.stderr
    assert "specialised to the problem's shapes" in theirs.stdout


@pytest.mark.parametrize("args, message", [
    (["verify", "absent.py", "x.py"], "problem file not found"),
    (["verify", str(PROBLEMS / "softmax.py"), "absent.py"], "candidate file not found"),
    (["verify", str(PROBLEMS / "softmax.py"), str(CANDIDATES / "softmax_triton.py"), "--set", "nope=1"],
     "no such top-level constant"),
])
def test_cli_usage_errors_exit_2_with_one_line(args, message):
    done = run_cli(*args)
    assert done.returncode == 2
    assert message in done.stderr and len(done.stderr.strip().splitlines()) == 1


def test_cli_problem_without_model_exits_2(tmp_path):
    problem = tmp_path / "p.py"
    problem.write_text("def get_inputs(): return []\n")
    done = run_cli("verify", str(problem), str(CANDIDATES / "softmax_triton.py"))
    assert done.returncode == 2 and "defines no Model" in done.stderr


def test_a_fresh_worker_request_gets_a_new_process(pool, verify):
    verify("elementwise_add_relu", CANDIDATES / "add_relu_triton.py")
    before = pool.info["pid"]
    assert verify("elementwise_add_relu", CANDIDATES / "add_relu_triton.py", fresh_worker=True).ok
    assert pool.info["pid"] != before


@pytest.mark.parametrize("candidate, phase", [("hang_first_call", "first_call"), ("hang", "run")])
def test_a_hang_is_a_timeout_within_a_minute_at_default_settings(candidate, phase):
    # Default limits (300 s for builds and runs): the call's own limit follows the reference's time, and each
    # later call's follows the first call's.
    from kernelsearch.problem import load_problem
    from kernelsearch.verify import PoolConfig, WorkerPool, make_request

    with WorkerPool(PoolConfig(device=DEVICE)) as pool:
        problem = load_problem(PROBLEMS / "elementwise_add_relu.py")
        path = CANDIDATES / f"{candidate}.py"
        v = pool.verify(make_request(problem, path.read_text(), path.stem, timing=False))
    assert (v.status, v.phase) == ("timeout", phase), v.message
    assert v.elapsed_s < (60 if not ON_GPU else 120), v.elapsed_s  # a GPU first call may autotune: 90 s floor


def test_cli_candidate_that_is_not_utf8_is_named_in_one_line(tmp_path):
    candidate = tmp_path / "latin1_candidate.py"
    candidate.write_bytes('name = "caf\xe9"\n'.encode("latin-1"))
    done = run_cli("verify", str(PROBLEMS / "softmax.py"), str(candidate), "--device", "cpu")
    assert done.returncode == 2
    assert "latin1_candidate.py is not UTF-8 text" in done.stderr and len(done.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("args, option", [
    (["verify", "p.py", "c.py", "--trials", "0"], "--trials"),
    (["solve", "p.py", "--max-attempts", "0"], "--max-attempts"),
    (["bench", "kernelbench", "--lanes", "0"], "--lanes"),
    (["solve", "p.py", "--max-tokens", "-5"], "--max-tokens"),
])
def test_the_same_limit_is_refused_the_same_way_everywhere(args, option):
    done = run_cli(*args)
    assert done.returncode == 2
    assert done.stderr.strip() == (f"kernelsearch: error: argument {option}: must be at least 1, got "
                                   f"{args[-1]} (see kernelsearch {args[0]} --help)")


@pytest.mark.parametrize("command", ["solve", "bench"])
@pytest.mark.parametrize("table, line, said", [
    ("search", "trials = 0", "[search] trials: must be at least 1, got 0"),
    ("search", "max_attempts = -3", "[search] max_attempts: must be at least 1, got -3"),
    ("model", "concurrency = 0", "[model] concurrency: must be at least 1, got 0"),
    ("search", 'budget = "0s"', "[search] budget: must be positive, got 0"),
    ("search", "target_speedup = -1.5", "[search] target_speedup: must be positive, got -1.5"),
    ("search", 'lanes = "four"', "[search] lanes: must be an integer, got 'four'"),
    ("search", "strict = 1", "[search] strict: must be true or false, got 1"),
    ("search", 'rules = "loose"', "[search] rules: must be one of kernelsearch, kernelbench, got 'loose'"),
    ("model", 'temperature = "warm"', "[model] temperature: must be a number, got 'warm'"),
])
def test_a_config_files_settings_are_held_to_the_flags_limits(tmp_path, command, table, line, said):
    config = tmp_path / "run.toml"
    config.write_text(f"[{table}]\n{line}\n")
    target = [str(PROBLEMS / "softmax.py")] if command == "solve" else ["kernelbench"]
    # refused before anything else is tried: no endpoint answers at this address, and no key is set
    done = run_cli(command, *target, "--config", str(config), "--base-url", "http://127.0.0.1:9",
                   "--out", str(tmp_path / "run"))
    assert done.returncode == 2 and done.stderr.strip() == f"kernelsearch: error: {config}: {said}"
    assert not (tmp_path / "run").exists()


def test_a_budget_flag_of_zero_is_refused_as_the_files_is(tmp_path):
    done = run_cli("solve", str(PROBLEMS / "softmax.py"), "--budget", "0", "--base-url", "http://127.0.0.1:9")
    assert done.returncode == 2 and done.stderr.strip() == "kernelsearch: error: --budget: must be positive, got 0"


@pytest.mark.parametrize("command", ["verify", "attention", "solve", "bench", "report", "retime", "mcp"])
def test_every_help_shows_defaults_and_exit_codes(command):
    done = run_cli(command, "--help")
    assert done.returncode == 0 and "exit codes: 0 " in done.stdout and "143" in done.stdout
    assert "(default" in done.stdout


def test_version():
    done = run_cli("--version")
    assert done.returncode == 0 and done.stdout.startswith("kernelsearch ")
