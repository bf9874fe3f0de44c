"""What the search knows of a problem and of a timed kernel, and what it offers from that: the problem's profile,
the strategies that apply to it, the performance feedback and the bound it names, parents and duplicates, and
a prompt that says the tolerance and the changed sizes once."""
from __future__ import annotations

import asyncio

import pytest

from .conftest import PROBLEMS
from kernelsearch.llm.prompt import Previous, build_prompt, size_note, strategies
from kernelsearch.search.archive import Archive, Entry, source_key
from kernelsearch.search.feedback import performance
from kernelsearch.search.problem_profile import ProblemProfile, from_ops, from_source, profile_problem
from kernelsearch.search.problem_trace import trace
from kernelsearch.search.strategies import choose
from kernelsearch.verify import Verdict
from kernelsearch.verify.harness.gpu_kernels import KERNELS_KEPT, kernel_table
from kernelsearch.verify.tolerance import resolve_tolerance

H100 = "NVIDIA H100 80GB HBM3"
CONTRACTION_STRATEGIES = {"tensor_cores", "tensor_cores_cuda", "first_tensor_cores"}
FUSING_STRATEGIES = {"fuse", "first_fused"}


def traced(name: str, **sizes) -> ProblemProfile:
    source = (PROBLEMS / f"{name}.py").read_text()
    for constant, value in sizes.items():
        source = source.replace(f"\n{constant} = ", f"\n{constant} = {value}  # was ", 1)
    answer = trace(source, "fp32")
    return from_ops(answer.pop("ops"), answer.pop("op_calls"), **answer)


def every_choice(profile: ProblemProfile, language: str = "triton") -> set[str]:
    """Every strategy `choose` can give a lane of this problem: starts, and optimizations after a correct kernel
    whatever its measured bound, for 8 lanes over 20 rotations."""
    tags, correct = profile.tags(), Previous("first", "code", Verdict("correct", ""))
    names = {choose(None, lane, 0, language, tags).name for lane in range(8)}
    for bound in (None, "memory", "compute", "launch"):
        names |= {choose(correct, lane, k, language, tags, bound).name for lane in range(8) for k in range(20)}
    return names


# ---- the problem's profile ---------------------------------------------------------------------------------
@pytest.mark.parametrize("problem, ops, kinds", [
    ("elementwise_add_relu", ["add", "relu"], ["elementwise"]),
    ("matmul", ["mm"], ["matmul"]),
    ("softmax", ["_softmax"], ["reduction"]),
    ("row_sum", ["sum"], ["reduction"]),
    ("conv_relu_bias", ["convolution", "relu", "add"], ["conv", "elementwise"]),
])
def test_the_reference_is_traced_into_its_ops_and_kinds(problem, ops, kinds):
    profile = traced(problem)
    assert (profile.ops, profile.kinds) == (ops, kinds)
    assert profile.bytes > 0 and profile.flops is not None


def test_flop_per_byte_decides_whether_tensor_cores_can_pay():
    small, large = traced("matmul"), traced("matmul", M=1024, K=1024, N=1024)
    assert small.intensity == pytest.approx(2 * 64 * 48 * 40 / (4 * (64 * 48 + 48 * 40 + 64 * 40)))  # 8.1
    assert "compute_heavy" not in small.tags()  # memory-bound at this size: tensor cores cannot help
    assert large.intensity == pytest.approx(2 * 1024 ** 3 / (3 * 4 * 1024 ** 2)) and "compute_heavy" in large.tags()
    assert "2.15 GFLOP in products" in large.describe() and "memory-bound" in small.describe()


def test_the_profile_states_the_minimum_traffic_and_where_the_reduced_elements_lie():
    rms = traced("rms_norm", batch_size=112, features=64, dim1=512, dim2=512).describe()
    # x read once and written once: 112*64*512*512 fp32 = 7.52 GB each way
    assert "15 GB to read and write at least once (7.52 GB read, 7.52 GB written)" in rms
    assert ("Reduction: mean over dim 1 of a [112, 64, 512, 512] tensor: 64 elements per result, 262144 elements "
            "apart in memory") in rms and "reads along dim 3" in rms
    assert "Reduction: softmax over dim 1 of a [6, 257] tensor: 257 elements per result, adjacent in memory" in (
        traced("softmax").describe())
    assert "Reduction" not in traced("elementwise_add_relu").describe()


def test_the_fusion_rule_names_only_the_kinds_of_work_the_problem_has():
    assert "reduction" in traced("rms_norm").fusion_rule()
    for name in ("rms_norm", "elementwise_add_relu"):
        assert not {"product", "convolution"} & set(traced(name).fusion_rule().split())
    assert "convolution" in traced("conv_relu_bias").fusion_rule()
    text = build_prompt("class Model: ...", language="triton", dtype="fp32", device="cpu", strict=False,
                        strategy=strategies()["fuse"], fusion_rule=traced("elementwise_add_relu").fusion_rule())
    assert "a chain of elementwise operations is one kernel" in " ".join(text.split()) and "$" not in text
    assert "a product, a convolution or a reduction" in " ".join(build_prompt(  # an unknown problem: generic
        "class Model: ...", language="triton", dtype="fp32", device="cpu", strict=False,
        strategy=strategies()["fuse"]).split())


def test_one_pass_names_a_running_max_and_sum_only_where_the_problem_has_a_softmax():
    pooling = ProblemProfile(ops=["max_pool2d_with_indices"], kinds=["pooling"], op_calls=1)  # KernelBench L1 42

    def one_pass(profile: ProblemProfile | None, name: str = "one_pass") -> str:
        prompt = build_prompt("class Model: ...", language="triton", dtype="fp32", device="cpu", strict=False,
                              strategy=strategies()[name], pass_rule=profile.pass_rule() if profile else "")
        return " ".join(prompt.split("## This attempt")[1].split())

    for name in ("one_pass", "first_one_pass"):
        pooled = one_pass(pooling, name)
        assert "windows cover once" in pooled and "softmax" not in pooled and "running max" not in pooled
        assert "running max and a running sum" in one_pass(traced("softmax"), name)
        rms = one_pass(traced("rms_norm"), name)
        assert "a sum and a sum of squares together" in rms and "running max" not in rms and "$" not in rms
    assert "softmax-like work" in one_pass(None)  # an unknown problem: the generic rule


def test_the_trace_runs_in_its_own_process_and_falls_back_to_the_source():
    profile = asyncio.run(profile_problem((PROBLEMS / "elementwise_add_relu.py").read_text()))
    assert (profile.how, profile.ops, profile.bytes) == ("traced", ["add", "relu"], 3 * 16 * 1000 * 4)
    # .item() cannot run on the meta device: the op names come from the source
    source = (PROBLEMS / "matmul.py").read_text().replace("return torch.matmul(A, B)",
                                                          "return torch.matmul(A, B) * A.sum().item()")
    profile = asyncio.run(profile_problem(source))
    assert profile.how == "source" and "item()" in profile.note and "matmul" in profile.kinds
    assert from_source("def broken(:").how == "unknown"


# ---- strategies that apply ---------------------------------------------------------------------------------
@pytest.mark.parametrize("problem", ["elementwise_add_relu", "relu_in_place", "softmax", "row_sum"])
def test_elementwise_and_reduction_problems_are_never_offered_tensor_cores(problem):
    for language in ("triton", "cuda"):
        assert not every_choice(traced(problem), language) & CONTRACTION_STRATEGIES


@pytest.mark.parametrize("problem", ["relu_in_place", "softmax", "row_sum", "matmul"])
def test_a_single_op_is_never_asked_to_fuse(problem):
    names = every_choice(traced(problem))
    assert not names & FUSING_STRATEGIES
    assert not any("epilogue" in strategies()[n].text for n in names)


def test_a_large_matmul_is_offered_tensor_cores_with_an_fp32_safe_precision():
    profile = traced("matmul", M=1024, K=1024, N=1024)
    assert "tensor_cores" in every_choice(profile) and "tensor_cores_cuda" in every_choice(profile, "cuda")
    assert choose(None, 1, 0, "triton", profile.tags()).name == "first_tensor_cores"  # lane 1 starts there

    def prompt(strategy, dtype="fp32", tolerance=None, language="triton"):
        return build_prompt("class Model: ...", language=language, dtype=dtype, device="H100", strict=False,
                            strategy=strategies()[strategy], tolerance=tolerance)

    for strategy in ("tensor_cores", "first_tensor_cores"):
        text = prompt(strategy)
        assert 'input_precision="tf32x3"' in text and 'input_precision="ieee"' in text and "$" not in text
        assert text.count("atol = rtol = 1e-4 (the kernelbench profile for fp32)") == 1  # stated once
    assert "3xTF32" in prompt("tensor_cores_cuda", language="cuda")
    assert "admits TF32" in prompt("tensor_cores", tolerance=resolve_tolerance("kernelbench-v0"))
    assert "tf32x3" not in prompt("tensor_cores", dtype="bf16") and "accumulate in fp32" in prompt(
        "tensor_cores", dtype="bf16")


def test_lanes_start_apart_and_never_share_a_strategy_at_one_step():
    tags = traced("elementwise_add_relu").tags()
    starts = [choose(None, lane, 0, "triton", tags).name for lane in range(3)]
    assert len(set(starts)) == 3 and starts[0] == "first"
    correct = Previous("first", "code", Verdict("correct", ""))
    for k in range(6):  # lanes whose rotations would meet at this step are pushed apart
        taken: set[str] = set()
        for lane in range(3):
            name = choose(correct, lane, k - lane, "triton", tags, taken=taken).name  # all at one rotation place
            assert name not in taken
            taken.add(name)
    # a fix answers its own lane's code: two lanes may both fix a build error at one step
    failed = Previous("first", "code", Verdict("compile_error", ""))
    assert choose(failed, 1, 0, "triton", tags, taken={"fix_compile"}).name == "fix_compile"


def test_a_lane_tries_every_strategy_once_before_any_again_and_skips_goals_already_met():
    tags = traced("rms_norm").tags()
    one_launch = Previous("first", "code", Verdict("correct", "", kernel_launches=1))
    tried: dict[str, int] = {}
    for k in range(4):  # another lane's pick at each step is taken: it pushes this lane, never into a repeat
        taken = {choose(one_launch, 1, k, "triton", tags, tried=tried).name}
        name = choose(one_launch, 0, k, "triton", tags, taken=taken, tried=tried).name
        assert name not in tried and (name not in taken or k == 3)  # at k = 3 only one is left untried
        tried[name] = 1
    assert set(tried) == {"one_pass", "vectorize", "algebra", "tune"}  # not fuse, not fewer launches
    assert choose(one_launch, 0, 4, "triton", tags, tried=tried).name in tried  # all used: the rotation again
    several = Previous("first", "code", Verdict("correct", "", kernel_launches=2))
    assert choose(several, 0, 0, "triton", tags).name == "fuse"
    # two lanes start their rotations apart instead of one step behind each other
    assert [choose(one_launch, lane, 0, "triton", tags, lanes=2).name for lane in (0, 1)] == ["one_pass", "algebra"]


# ---- performance feedback ----------------------------------------------------------------------------------
def gpu_verdict(median_ms: float, flops: float, moved: float, launches: int = 1, **timing) -> Verdict:
    return Verdict("correct", "", device=H100, kernel_launches=launches,
                   timing={"candidate": {"median_ms": median_ms}, "eager": {"median_ms": 2 * median_ms},
                           "speedup_vs_eager": 2.0, **timing},
                   checks={"roofline": {"flops": flops, "bytes": moved, "floor_ms": 0.0}})


def test_the_bound_of_a_timed_kernel_steers_the_next_strategy():
    matmul = traced("matmul", M=4096, K=4096, N=4096).tags()
    # 4096^3 GEMM at 2 ms: 69 TFLOP/s, 14 % of the H100's 494: compute-bound -> tensor cores
    slow_gemm = performance(gpu_verdict(2.0, 2 * 4096 ** 3, 3 * 4 * 4096 ** 2), "fp32")
    assert slow_gemm.bound == "compute"
    assert "68.72 TFLOP/s of the 494 TFLOP/s peak" in slow_gemm.text() and "14 % of the roofline" in slow_gemm.text()
    correct = Previous("first", "code", Verdict("correct", ""))
    assert choose(correct, 0, 0, "triton", matmul, slow_gemm.bound).name == "tensor_cores"
    # 1 GB in 1 ms: memory-bound at 30 % of the bandwidth -> fusion, wider access, fewer passes
    copy = performance(gpu_verdict(1.0, 0.0, 1e9), "fp32")
    assert copy.bound == "memory" and "1000 GB/s of the 3350 GB/s peak" in copy.text()
    add_relu = traced("elementwise_add_relu").tags()
    picks = {choose(correct, lane, 0, "triton", add_relu, "memory").name for lane in range(8)}
    assert picks <= {"fuse", "fewer_launches", "vectorize", "algebra", "tune"} and "fuse" in picks
    # four launches in 0.03 ms: the launches are the time -> fewer launches
    tiny = performance(gpu_verdict(0.03, 0.0, 1e6, launches=4), "fp32")
    assert tiny.bound == "launch" and "4 launches per forward" in tiny.text()
    assert {choose(correct, lane, 0, "triton", add_relu, "launch").name for lane in range(8)} <= {
        "fuse", "fewer_launches", "tune"}


def test_kernel_times_are_shown_where_the_verdict_has_them_and_nothing_without_a_gpu():
    verdict = gpu_verdict(1.0, 0.0, 1e9, kernels=[{"name": "add_relu_kernel", "ms": 0.9, "calls": 1}],
                          eager_kernels=[{"name": "vectorized_elementwise_kernel", "ms": 0.6, "calls": 2}])
    text = performance(verdict, "fp32").text()
    assert "your kernels: add_relu_kernel 0.9 ms" in text
    assert "eager PyTorch runs: vectorized_elementwise_kernel 0.6 ms (2 calls)" in text
    assert performance(Verdict("correct", "", device="cpu"), "fp32") is None  # the interpreter's time means nothing
    assert performance(Verdict("incorrect", "", device=H100, timing=verdict.timing), "fp32") is None


# ---- parents and duplicates --------------------------------------------------------------------------------
def timed_entry(attempt: int, lane: int, speedup: float, code: str | None = None) -> Entry:
    timing = {"candidate": {"median_ms": 1 / speedup}, "eager": {"median_ms": 1.0}, "speedup_vs_eager": speedup,
              "speedup_vs_eager_ci": [speedup * 0.99, speedup * 1.01]}
    return Entry(attempt, lane, "fuse", code or f"kernel {attempt}", Verdict("correct", "", timing=timing), attempt)


def test_parents_are_the_best_and_other_good_different_kernels():
    archive = Archive()
    for entry in (timed_entry(1, 0, 1.0), timed_entry(2, 1, 3.0), timed_entry(3, 0, 2.5),
                  timed_entry(4, 1, 0.5), timed_entry(5, 1, 2.9, code="kernel 2  # the same as attempt 2")):
        archive.add(entry)
    # 0.5x is under a third of the best's 3x; attempt 5 is attempt 2's source again
    assert [e.attempt_id for e in archive.parents()] == [2, 3, 1]
    assert [archive.parent_for(lane).attempt_id for lane in range(4)] == [2, 3, 1, 2]


def test_sources_that_differ_only_in_comments_and_spacing_are_one_kernel():
    a = "import torch\n\n\ndef f(x):  # add one\n    return x + 1\n"
    b = "# header\nimport torch\ndef f( x ):\n\n    return x+1   # again\n"
    assert source_key(a) == source_key(b)
    assert source_key(a) != source_key(a.replace("x + 1", "x + 2"))
    nested, after = "if x:\n    y()\n    z()\n", "if x:\n    y()\nz()\n"
    assert source_key(nested) != source_key(after)  # indentation is structure, not spacing


# ---- prompt hygiene ----------------------------------------------------------------------------------------
def test_the_tolerance_and_the_changed_sizes_are_said_once():
    verdict = Verdict("correct", "", problem="p", candidate="c", tolerance="kernelbench (fp32): atol=1e-4, rtol=1e-4",
                      overrides={"M": ["4096", "64"], "K": ["4096", "48"]})
    notes = size_note({"M": ("4096", "64"), "K": ("4096", "48")})
    prompt = build_prompt("class Model: ...", language="triton", dtype="fp32", device="cpu", strict=False,
                          strategy=strategies()["tile"], best=("class ModelNew: ...", "attempt 1"),
                          previous=Previous("first", "class ModelNew: ...", verdict), problem_notes=notes)
    assert prompt.count("M = 64 (originally 4096), K = 48 (originally 4096)") == 1
    assert prompt.count("This run changed the problem's sizes") == 1
    assert prompt.count("dimensions up to 85.3× longer") == 1  # 4096 / 48: a long sum's rounding is said once
    assert "dimensions up to" not in size_note({"shape": ("(4, 4)", "(2, 2)")})  # no ratio known: not said
    assert "problem changed" not in prompt and "kernelbench (fp32): atol" not in prompt
    assert prompt.count("atol = rtol = 1e-4") == 1
    assert size_note({}) == ""


# ---- the profiler's kernel table (verify.gpu_kernels) and its degradation without a GPU -------------------------
def test_profiled_kernels_become_a_table_per_call_the_longest_first():
    launches = [("void at::native::vectorized_elementwise_kernel<4, at::native::AddFunctor<float>>(int, ...)", 30.0),
                ("add_relu_kernel", 300.0), ("add_relu_kernel", 330.0), ("add_relu_kernel", 270.0),
                ("void at::native::vectorized_elementwise_kernel<4, at::native::ReluFunctor<float>>(int, ...)", 60.0)]
    rows = kernel_table(launches, calls=3)
    assert rows == [{"name": "add_relu_kernel", "ms": 0.3, "calls": 1},
                    {"name": "at::native::vectorized_elementwise_kernel", "ms": 0.03, "calls": 1}]
    many = kernel_table([(f"k{i}", float(100 - i)) for i in range(20)], calls=1)
    assert len(many) == KERNELS_KEPT and many[-1]["name"] == f"{20 - KERNELS_KEPT + 1} other kernels"
    assert many[-1]["calls"] == 20 - KERNELS_KEPT + 1 and many[0] == {"name": "k0", "ms": 0.1, "calls": 1}


def test_without_a_gpu_the_kernel_breakdown_is_skipped_and_said_so():
    import torch

    from kernelsearch.verify.worker.timing_step import _profile_kernels
    if torch.cuda.is_available():
        pytest.skip("this checks the CPU's degradation")
    verdict = Verdict("correct", "", timing={"candidate": {"median_ms": 1.0}})
    found = _profile_kernels(verdict.timing, {"candidate": lambda x: x + 1}, [torch.ones(4)])
    assert "kernels" not in verdict.timing and verdict.timing["kernels_unavailable"]
    assert found.outcome is None  # a profiler that fails costs the breakdown, never the verdict


def test_one_launch_is_never_launch_bound_and_the_profiled_kernels_name_the_bound():
    one = performance(gpu_verdict(0.005, 0.0, 1e6, kernels=[{"name": "relu_kernel", "ms": 0.004, "calls": 1}]),
                      "fp32")
    assert one.bound == "memory" and "your kernels: relu_kernel 0.004 ms" in one.text()
    # a GEMM at 4 % of the tensor-core peak, its two launches in 5 ms: compute-bound, and the text says the answer
    gemm = performance(gpu_verdict(5.0, 2 * 4096 ** 3, 3 * 4 * 4096 ** 2, kernels=[
        {"name": "matmul_kernel", "ms": 4.9, "calls": 1}, {"name": "bias_kernel", "ms": 0.1, "calls": 1}],
        compile_kernels=[{"name": "sm90_xmma_gemm_f32f32_tf32f32", "ms": 0.4, "calls": 1}]), "fp32")
    assert gemm.bound == "compute"
    assert "compute-bound: its FLOPs, not its bytes, set the roofline's floor: tensor cores" in gemm.text()
    assert "torch.compile runs: sm90_xmma_gemm_f32f32_tf32f32 0.4 ms" in gemm.text()
    assert "your kernels: matmul_kernel 4.9 ms, bias_kernel 0.1 ms" in gemm.text()


# ---- strategies that fit (relay run with a real model, 2026-12-07) -------------------------------------------
def test_one_pass_is_offered_only_where_reading_once_is_possible_and_not_already_done():
    assert "one_pass" in traced("softmax").tags() and "one_pass" in traced("rms_norm").tags()
    # a row of 393216 values (1.5 MB) does not fit on chip: it is read twice whatever the kernel (L1 23)
    wide = traced("softmax", dim=393216)
    assert "one_pass" not in wide.tags() and not {"one_pass", "first_one_pass"} & every_choice(wide)
    # a plain sum reads each element once in any kernel (L1 47)
    assert "one_pass" not in traced("row_sum").tags() and "reduction" in traced("row_sum").tags()


def test_tensor_cores_are_not_asked_of_a_kernel_that_uses_them():
    tags = traced("matmul", M=1024, K=1024, N=1024).tags()
    plain = Previous("first", "acc += tl.sum(a[:, :, None] * b[None, :, :], axis=1)", Verdict("correct", ""))
    dotted = Previous("first", "acc += tl.dot(a, b, input_precision='tf32x3')", Verdict("correct", ""))
    assert choose(plain, 0, 0, "triton", tags, "compute").name == "tensor_cores"
    assert choose(dotted, 0, 0, "triton", tags, "compute").name != "tensor_cores"
    cuda = Previous("first", "wmma::mma_sync(acc, a, b, acc);", Verdict("correct", ""))
    assert choose(cuda, 0, 0, "cuda", tags, "compute").name != "tensor_cores_cuda"


def test_an_algebraic_rewrite_is_offered_where_there_is_something_to_rewrite():
    assert "algebra" not in every_choice(traced("matmul", M=1024, K=1024, N=1024))  # one product: nothing to drop
    assert "algebra" not in every_choice(traced("softmax"))
    assert "algebra" in every_choice(traced("conv_relu_bias")) and "algebra" in every_choice(traced("rms_norm"))
    text = strategies()["algebra"].text
    assert "never kept from an earlier one" in text and "precompute what depends only on parameters once" not in text


def test_an_fp32_prompt_with_products_says_what_tl_dot_does_and_a_cpu_prompt_names_the_mask_trap():
    def first(name, products, device="cpu"):
        return build_prompt((PROBLEMS / f"{name}.py").read_text(), language="triton", dtype="fp32", device=device,
                            strict=False, strategy=strategies()["first"], products=products)

    with_products = first("matmul", True)
    assert 'input_precision="ieee"' in with_products and "computes it\nexactly" in with_products
    assert "tl.dot" not in first("elementwise_add_relu", False)  # nothing to multiply: not a word of it
    assert "tl.where(row < n_rows, offs < n, False)" in with_products
    assert "tl.where(row < n_rows" not in first("matmul", True, device="NVIDIA H100 80GB HBM3")
    assert "those passed to `__init__` too" in with_products  # the second shape changes the module's sizes
    # how the candidate's parameters get the reference's values, and the mode both run in (asked by the model)
    assert "built after the same random seed" in with_products and "training mode" in with_products


def test_a_tensor_past_2_31_elements_at_the_original_size_asks_for_64_bit_offsets():
    huge = traced("huge_relu", batch_size=8192)  # 8192 x 393216 = 3.2e9 elements in and out
    assert huge.largest_tensor == 8192 * 393216
    assert "past 2^31" in huge.describe() and "tl.int64" in huge.describe()
    assert "past 2^31" not in traced("huge_relu").describe()  # 1.6e9: 32-bit offsets reach it


def test_a_prompt_asks_for_the_design_in_the_files_first_line_which_other_lanes_are_shown():
    from kernelsearch.search.steer import design_line
    text = build_prompt("class Model: ...", language="triton", dtype="fp32", device="H100", strict=False,
                        strategy=strategies()["first"])
    assert "docstring whose first line says the design" in text
    # what the tried list shows of such a file (relay run 2026-12-07: kernel names said nothing of a GEMM removed)
    code = '"""x @ colsum(W) + sum(b): the GEMM removed by algebra, 2 kernels"""\n\ndef colsum_kernel(): pass\n'
    assert design_line(code) == "x @ colsum(W) + sum(b): the GEMM removed by algebra, 2 kernels"
