"""Output comparison and the mismatch report, across shapes (odd ones included) and dtypes; the chunked
comparison against a whole-tensor one, and the bound on its float64 temporaries."""
import math

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from kernelsearch.verify.harness import chunks, correctness
from kernelsearch.verify.harness.correctness import compare, degenerate_reason, flatten
from kernelsearch.verify.tolerance import resolve_tolerance

SHAPES = [(1,), (7,), (33, 65), (4, 3, 17), (2, 3, 5, 7)]
DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
FP32 = resolve_tolerance("kernelbench", "fp32")  # atol = rtol = 1e-4


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_equal_within_tolerance_passes(shape, dtype):
    torch.manual_seed(0)
    tol = resolve_tolerance("kernelbench", dtype)
    ref = torch.randn(shape).to(DTYPES[dtype])
    out = (ref.double() + 0.4 * tol.atol).to(DTYPES[dtype])  # inside atol + rtol*|ref|, rounding included
    result = compare([out], [ref], tol)
    assert result["ok"], result["message"]
    assert 0 < result["max_abs_err"] <= tol.atol + tol.rtol * float(ref.double().abs().max())


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_one_wrong_element_is_found_and_located(shape, dtype):
    torch.manual_seed(0)
    ref = torch.randn(shape).to(DTYPES[dtype])
    out = ref.clone()
    index = tuple(s - 1 for s in shape)  # the very last element: the classic missing tail mask
    out[index] += 1.0
    result = compare([out], [ref], resolve_tolerance("kernelbench", dtype))
    assert not result["ok"]
    mismatch = result["mismatch"]
    assert mismatch["wrong"] == 1
    assert mismatch["first_wrong_index"] == list(index)
    assert result["max_abs_err"] == pytest.approx(1.0, rel=2e-2)


def test_the_profile_decides_what_passes():
    ref = torch.ones(100)
    out = ref + 5e-3  # off by 5e-3: fails fp32's 1e-4, passes v0's 1e-2
    assert not compare([out], [ref], resolve_tolerance("kernelbench", "fp32"))["ok"]
    assert compare([out], [ref], resolve_tolerance("kernelbench-v0", "fp32"))["ok"]
    assert not compare([out], [ref], resolve_tolerance("kernelbench-v0", "fp32", atol=1e-3, rtol=1e-3))["ok"]
    assert compare([out], [ref], resolve_tolerance("kernelbench", "fp32", atol=0, rtol=6e-3))["ok"]  # rtol alone


def test_tail_columns_and_whole_rows_are_described():
    ref = torch.rand(8, 100)
    out = ref.clone()
    out[:, 64:] = float("nan")
    report = compare([out], [ref], FP32)["mismatch"]
    assert "along dim 1 (size 100) only indices 64..99 are wrong" in report["summary"]
    assert report["nan"] == 8 * 36
    assert "unwritten output" in report["summary"]
    out = ref.clone()
    out[3] = 0
    assert "1 of 8 rows (last dim) are wrong in every element" in compare([out], [ref], FP32)["message"]


def test_scale_and_transpose_hints():
    ref = torch.rand(16, 16) + 0.5
    assert "2 x the reference" in compare([2 * ref], [ref], FP32)["message"]
    assert "transposed" in compare([ref.T.contiguous()], [ref], FP32)["message"]


def test_shape_dtype_device_and_count_mismatches():
    ref = torch.rand(4, 5)
    assert "shape (5, 4)" in compare([torch.rand(5, 4)], [ref], FP32)["message"]
    assert "dtype torch.float16" in compare([ref.half()], [ref], FP32)["message"]
    assert "returned 2 outputs" in compare([ref, ref], [ref], FP32)["message"]
    on_meta = compare([torch.empty(4, 5, device="meta")], [ref], FP32, device="cpu")
    assert not on_meta["ok"] and on_meta["message"] == "output is on meta, expected cpu"
    assert compare([ref.clone()], [ref], FP32, device="cpu")["ok"]


def test_nan_inf_only_pass_where_the_reference_has_them():
    ref = torch.tensor([1.0, float("nan"), float("inf")])
    assert compare([ref.clone()], [ref], FP32)["ok"]
    assert not compare([torch.tensor([1.0, 2.0, float("inf")])], [ref], FP32)["ok"]
    assert not compare([torch.tensor([float("inf"), float("nan"), float("inf")])], [ref], FP32)["ok"]


def test_integer_outputs_compare_exactly():
    ref = torch.arange(10)
    assert compare([ref.clone()], [ref], FP32)["ok"]
    wrong = ref.clone()
    wrong[3] = 4
    assert compare([wrong], [ref], FP32)["mismatch"]["first_wrong_index"] == [3]


def test_degenerate_references_need_a_small_relative_error():
    ref = torch.softmax(torch.rand(2, 20000), dim=1)  # ~5e-5 each: zeros pass atol=1e-4
    assert degenerate_reason([[ref], [torch.softmax(torch.rand(2, 20000), dim=1)]], FP32) is not None
    constant = torch.full_like(ref, 1 / 20000)
    assert compare([constant], [ref], FP32)["ok"]  # what KernelBench's check alone would accept
    refused = compare([constant], [ref], FP32, degenerate=True)
    assert not refused["ok"] and "only because the reference is degenerate" in refused["message"]
    assert not compare([torch.zeros_like(ref)], [ref], FP32, degenerate=True)["ok"]
    assert compare([ref.clone()], [ref], FP32, degenerate=True)["ok"]


def test_ordinary_references_are_not_degenerate():
    a, b = torch.rand(4, 50), torch.rand(4, 50)
    assert degenerate_reason([[a], [b]], FP32) is None
    assert degenerate_reason([[torch.tensor(2.3)], [torch.tensor(2.4)]], FP32) is None
    assert "input-insensitive" in degenerate_reason([[torch.tensor(2.3)], [torch.tensor(2.3)]], FP32)


def test_flatten_accepts_nesting_and_numbers_and_refuses_objects():
    t = torch.ones(2)
    assert len(flatten((t, [t, 3.0]))) == 3
    with pytest.raises(TypeError):
        flatten(lambda: t)


# ---- chunks --------------------------------------------------------------------------------------------------
CHUNK_SHAPES = [(), (1,), (7,), (33, 17), (3, 5, 129)]


def whole_tensor_facts(out, ref, tol):
    """The comparison written straight, on whole float64 tensors: what the chunked one must reproduce."""
    o, r = out.double(), ref.double()
    ok = ((o - r).abs() <= tol.atol + tol.rtol * r.abs()) | (o.isnan() & r.isnan()) | (o.isinf() & (o == r))
    bad = ~ok
    finite = o.isfinite() & r.isfinite()
    diff = torch.where(finite, (o - r).abs(), 0.0)
    facts = {
        "ok": not bool(bad.any()), "max_abs_err": float(diff.max()),
        "max_rel_err": float(torch.where(finite, diff / r.abs().clamp_min(tol.atol), 0.0).max()),
        "rel_l2": float(diff.norm() / r[finite].norm()), "spread": float((r[finite] - r[finite].mean()).norm()),
        "wrong": int(bad.sum()), "nan": int((o.isnan() & ~r.isnan()).sum()),
        "inf": int((o.isinf() & ~r.isinf()).sum()),
    }
    if bad.any():
        where = torch.nonzero(bad.reshape(bad.shape or (1,)))
        facts["first"] = where[0].tolist() if bad.ndim else []
        facts["ranges"] = [(int(where[:, d].min()), int(where[:, d].max())) for d in range(bad.ndim)]
        facts["whole_rows"] = int(bad.reshape(-1, bad.shape[-1]).all(dim=1).sum()) if bad.ndim >= 2 else 0
    return facts


def candidate_for(ref, shape, seed):
    """An output with some of everything: right elements, wrong ones, a whole wrong row, NaN where the
    reference has none, and the reference's own NaN/Inf copied."""
    gen = torch.Generator().manual_seed(seed)
    out = ref.clone()
    flat = out.reshape(-1)
    n = flat.numel()
    if n == 1:
        flat[0] += 1
    else:
        wrong = torch.randperm(n, generator=gen)[: max(1, n // 10)]
        flat[wrong] = (flat[wrong].float() + 0.5).to(ref.dtype)
        flat[wrong[0]] = float("nan")
    if len(shape) >= 2:
        out.reshape(-1, shape[-1])[1] = 7.0
    return out


@pytest.mark.parametrize("shape", CHUNK_SHAPES, ids=str)
@pytest.mark.parametrize("dtype", DTYPES)
def test_chunked_comparison_equals_the_whole_tensor_one(monkeypatch, shape, dtype):
    torch.manual_seed(1)
    tol = resolve_tolerance("kernelbench", dtype)
    ref = torch.randn(shape).to(DTYPES[dtype])
    if ref.numel() > 4:  # the reference's own NaN and Inf must be matched, not counted wrong
        ref.reshape(-1)[2], ref.reshape(-1)[4] = float("nan"), float("-inf")
    for out in (ref.clone(), candidate_for(ref, shape, seed=2)):
        monkeypatch.setattr(chunks, "CHUNK_ELEMENTS", 1 << 30)
        whole = compare([out], [ref], tol)
        monkeypatch.setattr(chunks, "CHUNK_ELEMENTS", 7)
        chunked = compare([out], [ref], tol)
        facts = whole_tensor_facts(out, ref, tol)
        for result in (whole, chunked):
            assert result["ok"] == facts["ok"]
            for key in ("max_abs_err", "max_rel_err", "rel_l2"):
                assert result[key] == pytest.approx(facts[key], rel=1e-12, abs=1e-300), key
        assert chunked["message"] == whole["message"]
        if not facts["ok"]:
            mismatch = chunked["mismatch"]
            assert mismatch == whole["mismatch"]
            assert (mismatch["wrong"], mismatch["nan"], mismatch["inf"]) == (facts["wrong"], facts["nan"],
                                                                             facts["inf"])
            assert mismatch["first_wrong_index"] == facts["first"]
            for d, (lo, hi) in enumerate(facts["ranges"]):
                partial = shape[d] > 1 and (lo > 0 or hi < shape[d] - 1) and facts["wrong"] < ref.numel()
                assert (f"along dim {d} (size {shape[d]}) only indices {lo}..{hi} are wrong"
                        in mismatch["summary"]) == partial
            if len(shape) >= 2:
                assert facts["whole_rows"] >= 1
                assert f"{facts['whole_rows']} of {ref.numel() // shape[-1]} rows" in mismatch["summary"]


@pytest.mark.parametrize("shape", [(7,), (33, 17), (3, 5, 129)], ids=str)
@pytest.mark.parametrize("dtype", DTYPES)
def test_chunked_spread_of_a_near_constant_reference(monkeypatch, shape, dtype):
    """The degenerate check divides by ||ref - mean||: merging chunks must keep that small spread exact."""
    torch.manual_seed(3)
    tol = resolve_tolerance("kernelbench", dtype)
    ref = (100 + 4 * torch.rand(shape)).to(DTYPES[dtype])  # the mean is 25x the spread (bf16 still varies)
    out = ref.clone()
    results = {}
    for chunk in (1 << 30, 7):
        monkeypatch.setattr(chunks, "CHUNK_ELEMENTS", chunk)
        results[chunk] = correctness._compare_one(out, ref, tol, degenerate=True)  # it keeps rel_l2_spread
        noisy = (ref.double() * (1 + tol.rtol / 4)).to(ref.dtype)
        results[chunk, "noisy"] = correctness._compare_one(noisy, ref, tol, degenerate=True)
    r = ref.double()
    spread = float((r - r.mean()).norm())
    err = float(((r * (1 + tol.rtol / 4)).to(ref.dtype).double() - r).norm())
    assert results[7, "noisy"]["rel_l2_spread"] == pytest.approx(err / spread, rel=1e-9)
    assert results[7, "noisy"]["rel_l2_spread"] == pytest.approx(results[1 << 30, "noisy"]["rel_l2_spread"],
                                                                  rel=1e-9)
    assert results[7]["ok"] and results[7]["rel_l2_spread"] == 0


@pytest.mark.parametrize("chunk", [7, 64])
def test_chunked_degenerate_reason_and_hints(monkeypatch, chunk):
    monkeypatch.setattr(chunks, "CHUNK_ELEMENTS", chunk)
    torch.manual_seed(4)
    tiny = 1e-5 * torch.rand(33, 17)
    assert "zero everywhere" in degenerate_reason([[tiny], [tiny.flip(1)]], FP32)
    flat = 5 + 1e-6 * torch.rand(33, 17)
    assert "near-constant" in degenerate_reason([[flat], [flat + 1]], FP32)
    a = torch.rand(33, 17)
    assert degenerate_reason([[a], [torch.rand(33, 17)]], FP32) is None
    steps = torch.tensor([5.0, 6.0]).repeat_interleave(2 * chunk)  # each chunk constant, the whole is not
    assert degenerate_reason([[steps], [steps.flip(0)]], FP32) is None
    assert "input-insensitive" in degenerate_reason([[a], [a.clone()]], FP32)
    square = torch.rand(20, 20) + 0.5
    assert "2 x the reference" in compare([2 * square], [square], FP32)["message"]
    assert "transposed" in compare([square.T.contiguous()], [square], FP32)["message"]
    assert "transposed" not in compare([square.T.contiguous() + 1], [square], FP32)["message"]


def test_strided_references_are_read_in_order(monkeypatch):
    """A reference that is a transposed view (not contiguous) is compared element by element in order."""
    monkeypatch.setattr(chunks, "CHUNK_ELEMENTS", 7)
    ref = torch.rand(17, 33).T  # shape (33, 17), column-major
    out = ref.contiguous()
    out[20, 5] += 1
    mismatch = compare([out], [ref], FP32)["mismatch"]
    assert mismatch["wrong"] == 1 and mismatch["first_wrong_index"] == [20, 5]


class Float64Sizes(TorchDispatchMode):
    """Records the size of every float64 (or complex128) tensor an op returns."""

    def __init__(self):
        super().__init__()
        self.largest = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        result = func(*args, **(kwargs or {}))
        for t in result if isinstance(result, (tuple, list)) else [result]:
            if isinstance(t, torch.Tensor) and t.dtype in (torch.float64, torch.complex128):
                self.largest = max(self.largest, t.numel())
        return result


def test_no_float64_temporary_is_larger_than_a_chunk(monkeypatch):
    chunk = 64
    monkeypatch.setattr(chunks, "CHUNK_ELEMENTS", chunk)
    torch.manual_seed(5)
    ref = torch.rand(3, 5, 129) + 0.5
    square = torch.rand(40, 40) + 0.5
    with Float64Sizes() as sizes:
        assert compare([ref.clone()], [ref], FP32, degenerate=True)["ok"]
        assert not compare([candidate_for(ref, ref.shape, seed=6)], [ref], FP32)["ok"]
        assert "2 x the reference" in compare([2 * square], [square], FP32)["message"]
        assert "transposed" in compare([square.T.contiguous()], [square], FP32)["message"]
        assert degenerate_reason([[ref], [ref.clone()]], FP32) is not None
    assert 0 < sizes.largest <= chunk
    with Float64Sizes() as unbounded:  # the recorder sees a whole-tensor comparison
        monkeypatch.setattr(chunks, "CHUNK_ELEMENTS", 1 << 30)
        compare([ref.clone()], [ref], FP32)
    assert unbounded.largest == ref.numel()


def test_rows_longer_than_a_chunk_are_counted_whole(monkeypatch):
    monkeypatch.setattr(chunks, "CHUNK_ELEMENTS", 7)
    ref = torch.rand(4, 30)
    out = ref.clone()
    out[1] = -1  # a whole row
    out[2] = -1
    out[2, 7:14] = ref[2, 7:14]  # right in one whole chunk (a row is read 7 at a time) in its middle: not whole
    out[3, 1:] = -1  # right in its first element only: not whole
    mismatch = compare([out], [ref], FP32)["mismatch"]
    assert "1 of 4 rows (last dim) are wrong in every element" in mismatch["summary"]
    assert mismatch["wrong"] == 30 + 23 + 29 and math.isclose(mismatch["fraction_wrong"], 82 / 120)


# ---- on a GPU (KS_TEST_DEVICE=cuda runs these on the device machine) --------------------------------------------
needs_gpu = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")


@needs_gpu
def test_references_in_host_memory_against_outputs_on_the_gpu():
    ref = torch.rand(33, 17).pin_memory()
    out = ref.cuda()
    out[20, 5] += 1
    mismatch = compare([out], [ref], FP32, device="cuda")["mismatch"]
    assert mismatch["wrong"] == 1 and mismatch["first_wrong_index"] == [20, 5]
    assert compare([ref.cuda()], [ref], FP32, device="cuda")["ok"]
    assert compare([ref.clone()], [ref], FP32, device="cuda")["message"] == "output is on cpu, expected cuda"
    assert "input-insensitive" in degenerate_reason([[ref], [ref.clone()]], FP32, device="cuda")


@needs_gpu
def test_gpu_memory_of_a_comparison_is_a_few_chunks(monkeypatch):
    chunk = 1 << 18
    monkeypatch.setattr(chunks, "CHUNK_ELEMENTS", chunk)
    out = torch.rand(64, 4 * chunk, device="cuda")  # 256 chunks; a float64 copy of it alone would be 512 MiB
    ref = torch.empty(out.shape, pin_memory=True).copy_(out)
    out[3, 7] = 5
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    before = torch.cuda.memory_allocated()
    assert compare([out], [ref], FP32, device="cuda")["mismatch"]["first_wrong_index"] == [3, 7]
    assert degenerate_reason([[ref], [ref]], FP32, device="cuda") is not None
    extra = torch.cuda.max_memory_allocated() - before
    # 2**20-element chunks measured 17 chunks' worth (the mismatch pass included); allocator rounding adds more
    # at small chunks
    assert extra <= 32 * 8 * chunk, f"{extra / 2**20:.0f} MiB"  # 32 float64 chunks (64 MiB)


@needs_gpu
def test_host_held_answers_stream_to_the_gpu_in_order(monkeypatch):
    chunk = 1 << 16
    monkeypatch.setattr(chunks, "CHUNK_ELEMENTS", chunk)
    ref = torch.rand(40, 3 * chunk)  # pageable host memory, 120 chunks through the two pinned buffers
    out = ref.cuda()
    out[39, 3 * chunk - 1] = 7.0  # the very last element
    out[17, 5] = float("nan")
    result = compare([out], [ref], FP32, device="cuda")
    assert result["mismatch"]["wrong"] == 2 and result["mismatch"]["first_wrong_index"] == [17, 5]
    assert result["mismatch"]["nan"] == 1
    assert compare([ref.cuda()], [ref], FP32, device="cuda")["ok"]
