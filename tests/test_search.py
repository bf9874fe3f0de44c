"""Search pieces on known data: strategy choice, archive ranking, prompts, configuration."""
from __future__ import annotations

import pytest

from kernelsearch.config import ConfigError, build, parse_duration
from kernelsearch.llm.prompt import Previous, build_prompt, cut_report, strategies
from kernelsearch.search.archive import Archive, Entry
from kernelsearch.search.strategies import choose
from kernelsearch.verify import Verdict
from kernelsearch.verify.verdict import format_verdict

from .conftest import ON_GPU


def timed(ms: float, eager_ms: float = 1.0) -> Verdict:
    timing = {"candidate": {"median_ms": ms}, "eager": {"median_ms": eager_ms},
              "speedup_vs_eager": round(eager_ms / ms, 4)}
    return Verdict(status="correct", message="", timing=timing)


def entry(attempt: int, verdict: Verdict, at: float) -> Entry:
    return Entry(attempt, 0, "fuse", f"code {attempt}", verdict, at)


def with_interval(verdict: Verdict, low: float, high: float) -> Verdict:
    verdict.timing["speedup_vs_eager_ci"] = [low, high]
    return verdict


def test_archive_treats_speedups_inside_the_timing_noise_as_ties():
    archive = Archive()
    assert archive.add(entry(1, with_interval(timed(0.50), 1.90, 2.10), 1.0))
    # 2.08x looks faster, but its interval overlaps the best's: a tie, and the earlier kernel stays
    assert not archive.add(entry(2, with_interval(timed(0.48), 2.00, 2.20), 2.0))
    assert archive.best().attempt_id == 1
    assert [e.attempt_id for e in archive.ranked()] == [1, 2]
    # wholly above the best's interval: a real improvement
    assert archive.add(entry(3, with_interval(timed(0.40), 2.40, 2.60), 3.0))
    assert [e.attempt_id for e in archive.ranked()] == [3, 2, 1]


def test_archive_prefers_faster_then_timed_then_earlier():
    archive = Archive()
    assert archive.add(entry(1, Verdict("correct", ""), 1.0))  # untimed (no GPU) still counts as a best
    assert not archive.add(entry(2, Verdict("correct", ""), 2.0))  # an equal later one does not replace it
    assert archive.add(entry(3, timed(0.5), 3.0))  # timed beats untimed
    assert not archive.add(entry(4, timed(0.8), 4.0))  # slower
    assert archive.add(entry(5, timed(0.25), 5.0))
    assert [e.attempt_id for e in archive.ranked()] == [5, 3, 4, 1, 2]
    assert archive.best().summary() == "attempt 5: 0.25 ms, 4x eager"


@pytest.mark.parametrize("status, expected", [
    ("compile_error", "fix_compile"), ("runtime_error", "fix_runtime"), ("timeout", "fix_timeout"),
    ("incorrect", "fix_wrong"), ("rejected", "fix_rules")])
def test_failures_get_a_fix(status, expected):
    assert choose(Previous("fuse", "code", Verdict(status, "")), 0, 0, "triton").name == expected


def test_start_and_missing_code():
    assert choose(None, 0, 0, "triton").name == "first"
    assert choose(Previous("first", None, None, problem="no code"), 0, 0, "triton").name == "fix_rules"


def test_optimizations_rotate_and_lanes_start_apart():
    correct = Previous("first", "code", timed(1.0))
    lane0 = [choose(correct, 0, k, "triton").name for k in range(4)]
    lane1 = [choose(correct, 1, k, "triton").name for k in range(4)]
    assert len(set(lane0)) == 4 and lane0[1:] == lane1[:3]
    every = {choose(correct, 0, k, "cuda").name for k in range(20)}
    assert "tensor_cores_cuda" in every and "tensor_cores" not in every


def test_pytorch_ops_are_taken_back_first():
    verdict = timed(1.0)
    verdict.pytorch_ops = ["aten.conv2d"]
    assert choose(Previous("fuse", "code", verdict), 2, 3, "triton").name == "fewer_launches"


def test_prompt_carries_problem_rules_best_and_feedback():
    failed = Verdict("compile_error", "syntax error at line 6: expected ':'", problem="p", candidate="c")
    prompt = build_prompt("class Model: ...", language="triton", dtype="fp16", device="H100", strict=True,
                          strategy=strategies()["fix_compile"], best=("class ModelNew: fast", "attempt 3: 2x eager"),
                          previous=Previous("first", "class ModelNew: broken", failed))
    for part in ("class Model: ...", "atol = rtol = 1e-2", "this run is strict", "make_block_ptr",
                 "class ModelNew: fast", "attempt 3: 2x eager", "expected ':'", "class ModelNew: broken",
                 "fix the build error"):
        assert part in prompt, part
    assert "$" not in prompt  # every template field was filled


def this_attempt(prompt: str) -> str:
    return " ".join(prompt.split("## This attempt")[1].split())  # line breaks aside


def test_autotune_is_offered_on_a_gpu_and_ruled_out_in_the_cpu_interpreter():
    def tune(device: str, language: str = "triton") -> str:
        return build_prompt("class Model: ...", language=language, dtype="fp32", device=device, strict=False,
                            strategy=strategies()["tune"])

    on_gpu, on_cpu, cuda_on_cpu = tune("NVIDIA H100 80GB HBM3"), tune("cpu"), tune("cpu", "cuda")
    assert "you may use `triton.autotune`" in this_attempt(on_gpu) and "autotune" not in on_gpu.split("## This")[0]
    assert "no `triton.autotune`" in this_attempt(on_cpu) and "you may use" not in on_cpu
    assert "Do not use `triton.autotune`" in " ".join(on_cpu.split("## The problem")[0].split())  # said up front
    assert "autotune" not in cuda_on_cpu and "from the input sizes" in this_attempt(cuda_on_cpu)
    assert "$" not in on_gpu + on_cpu + cuda_on_cpu
    # the rules say what allocation and a scratch buffer are allowed to be
    rules = " ".join(on_cpu.split("## Rules the verifier enforces")[1].split("## This attempt")[0].split())
    assert "Allocation (`torch.empty`, `torch.zeros`, `torch.full`), views, reshapes and copies are free" in rules
    assert "scratch buffer may stay on the module between calls only if your kernels rewrite all of it" in rules


SCALAR_AND_VECTOR_MASK = '''
import torch
import triton
import triton.language as tl


@triton.jit
def add_relu_kernel(a_ptr, b_ptr, out_ptr, n, BLOCK: tl.constexpr):
    offsets = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = (n > 0) & (offsets < n)  # a scalar bool & a vector: fine on a GPU, rejected by the interpreter
    a = tl.load(a_ptr + offsets, mask=mask)
    b = tl.load(b_ptr + offsets, mask=mask)
    tl.store(out_ptr + offsets, tl.maximum(a + b, 0.0), mask=mask)


class ModelNew(torch.nn.Module):
    def forward(self, a, b):
        out = torch.empty_like(a)
        add_relu_kernel[(triton.cdiv(a.numel(), 1024),)](a, b, out, a.numel(), BLOCK=1024)
        return out
'''


@pytest.mark.skipif(ON_GPU, reason="the failure is the CPU interpreter's")
def test_a_failure_only_the_interpreter_gives_gets_a_hint_in_the_next_prompt(verify, tmp_path):
    candidate = tmp_path / "scalar_mask.py"
    candidate.write_text(SCALAR_AND_VECTOR_MASK)
    verdict = verify("elementwise_add_relu", candidate)
    assert not verdict.ok and "mask has unsupported dtype" in format_verdict(verdict)

    def fix(device: str, verdict: Verdict) -> str:
        prompt = build_prompt("class Model: ...", language="triton", dtype="fp32", device=device, strict=False,
                              strategy=strategies()["fix_compile"],
                              previous=Previous("first", SCALAR_AND_VECTOR_MASK, verdict))
        return " ".join(prompt.split("## Your previous attempt")[1].split("Your previous code")[0].split())

    hint = "This failure comes from the Triton interpreter this CPU run uses (a GPU build accepts the code)"
    assert hint in fix("cpu", verdict) and "`tl.where(row < n_rows, offs < n, False)`" in fix("cpu", verdict)
    assert hint not in fix("NVIDIA H100 80GB HBM3", verdict)  # a GPU build has no such quirk
    other = Verdict("compile_error", "NameError: name 'offs' is not defined")
    assert "Triton interpreter" not in fix("cpu", other)
    # the fix the hint names passes in the interpreter
    candidate.write_text(SCALAR_AND_VECTOR_MASK.replace("(n > 0) & (offsets < n)",
                                                        "tl.where(n > 0, offsets < n, False)"))
    assert verify("elementwise_add_relu", candidate).ok


def test_long_reports_are_cut_to_the_errors():
    log = [f"line {i}" for i in range(300)]
    log[150] = "kernel.cu(12): error: identifier x is undefined"
    cut = cut_report("\n".join(log))
    assert "identifier x is undefined" in cut and "line 149" in cut and "line 299" in cut
    assert len(cut.splitlines()) < 30


def test_durations():
    assert [parse_duration(t) for t in ("90", "90s", "15m", "1.5h")] == [90, 90, 900, 5400]
    with pytest.raises(ConfigError):
        parse_duration("soon")


def test_config_file_then_flags(tmp_path):
    path = tmp_path / "run.toml"
    path.write_text('[model]\nendpoint = "vllm"\nmodel = "r1"\n[search]\nbudget = "2m"\nlanes = 2\n')
    model, search = build(str(path), {"model": None}, {"lanes": 3, "budget_s": None})
    assert (model.endpoint, model.model, search.budget_s, search.lanes) == ("vllm", "r1", 120, 3)
    path.write_text("[search]\nlanse = 2\n")
    with pytest.raises(ConfigError, match="unknown key"):
        build(str(path), {}, {})


def test_caps_and_target_stop_the_search(tmp_path):
    from kernelsearch.problem import load_problem
    from kernelsearch.search.display import Display
    from kernelsearch.search.lanes import Search
    from kernelsearch.search.run_dir import RunDir
    from kernelsearch.search.solve_config import SolveConfig

    from .conftest import PROBLEMS

    problem = load_problem(PROBLEMS / "elementwise_add_relu.py")
    store = RunDir(tmp_path).open_store()

    def search(**config):
        return Search(problem, SolveConfig(**config), client=None, pool=None, store=store, display=Display(live=False))

    s = search(target_speedup=1.5)
    s.check_caps()
    assert not s.stop.is_set()
    s.archive.add(entry(1, timed(0.5), 1.0))  # 2x eager
    s.check_caps()
    assert s.stop_reason == "target reached (2x eager >= 1.5x)"
    for step in (1, 2):
        i = store.begin(lane=0, step=step, strategy="first", base_id=None, session=0, started_s=0.0, prompt="p")
        store.update(i, status="incorrect", finished_s=1.0)
    s = search(max_attempts=2)
    s.check_caps()
    assert s.stop_reason == "attempt cap reached (2)"
    s = search(budget_s=0.5)
    s.spent_before = 0.6  # budget spent in an earlier session
    s.check_caps()
    assert s.stop_reason == "budget spent"
