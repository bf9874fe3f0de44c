"""Output comparison and the mismatch report, across shapes (odd ones included) and dtypes."""
import pytest
import torch

from kernelsearch.verify.correctness import TOLERANCE, compare, degenerate_reason, flatten

SHAPES = [(1,), (7,), (33, 65), (4, 3, 17), (2, 3, 5, 7)]
DTYPES = {"fp32": torch.float32, "fp16": torch.float16}


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_equal_within_tolerance_passes(shape, dtype):
    torch.manual_seed(0)
    ref = torch.randn(shape).to(DTYPES[dtype])
    tol = TOLERANCE[dtype]
    out = (ref.double() + 0.4 * tol).to(DTYPES[dtype])  # inside atol + rtol*|ref|
    result = compare([out], [ref], dtype)
    assert result["ok"], result["message"]
    assert result["max_abs_err"] <= tol + tol * float(ref.double().abs().max()) + 1e-3


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_one_wrong_element_is_found_and_located(shape, dtype):
    torch.manual_seed(0)
    ref = torch.randn(shape).to(DTYPES[dtype])
    out = ref.clone()
    index = tuple(s - 1 for s in shape)  # the very last element: the classic missing tail mask
    out[index] += 1.0
    result = compare([out], [ref], dtype)
    assert not result["ok"]
    mismatch = result["mismatch"]
    assert mismatch["wrong"] == 1
    assert mismatch["first_wrong_index"] == list(index)
    assert result["max_abs_err"] == pytest.approx(1.0, rel=2e-2)


def test_tail_columns_and_whole_rows_are_described():
    ref = torch.rand(8, 100)
    out = ref.clone()
    out[:, 64:] = float("nan")
    report = compare([out], [ref], "fp32")["mismatch"]
    assert "along dim 1 (size 100) only indices 64..99 are wrong" in report["summary"]
    assert report["nan"] == 8 * 36
    assert "unwritten output" in report["summary"]
    out = ref.clone()
    out[3] = 0
    assert "1 of 8 rows (last dim) are wrong in every element" in compare([out], [ref], "fp32")["message"]


def test_scale_and_transpose_hints():
    ref = torch.rand(16, 16) + 0.5
    assert "2 x the reference" in compare([2 * ref], [ref], "fp32")["message"]
    assert "transposed" in compare([ref.T.contiguous()], [ref], "fp32")["message"]


def test_shape_dtype_and_count_mismatches():
    ref = torch.rand(4, 5)
    assert "shape (5, 4)" in compare([torch.rand(5, 4)], [ref], "fp32")["message"]
    assert "dtype torch.float16" in compare([ref.half()], [ref], "fp32")["message"]
    assert "returned 2 outputs" in compare([ref, ref], [ref], "fp32")["message"]


def test_nan_inf_only_pass_where_the_reference_has_them():
    ref = torch.tensor([1.0, float("nan"), float("inf")])
    assert compare([ref.clone()], [ref], "fp32")["ok"]
    assert not compare([torch.tensor([1.0, 2.0, float("inf")])], [ref], "fp32")["ok"]
    assert not compare([torch.tensor([float("inf"), float("nan"), float("inf")])], [ref], "fp32")["ok"]


def test_integer_outputs_compare_exactly():
    ref = torch.arange(10)
    assert compare([ref.clone()], [ref], "fp32")["ok"]
    wrong = ref.clone()
    wrong[3] = 4
    assert compare([wrong], [ref], "fp32")["mismatch"]["first_wrong_index"] == [3]


def test_degenerate_references_need_a_small_relative_error():
    ref = torch.softmax(torch.rand(2, 20000), dim=1)  # ~5e-5 each: zeros pass atol=1e-4
    assert degenerate_reason([[ref], [torch.softmax(torch.rand(2, 20000), dim=1)]], 1e-4) is not None
    constant = torch.full_like(ref, 1 / 20000)
    assert compare([constant], [ref], "fp32")["ok"]  # what KernelBench's check alone would accept
    assert not compare([constant], [ref], "fp32", degenerate=True)["ok"]
    assert not compare([torch.zeros_like(ref)], [ref], "fp32", degenerate=True)["ok"]
    assert compare([ref.clone()], [ref], "fp32", degenerate=True)["ok"]


def test_ordinary_references_are_not_degenerate():
    a, b = torch.rand(4, 50), torch.rand(4, 50)
    assert degenerate_reason([[a], [b]], 1e-4) is None
    assert degenerate_reason([[torch.tensor(2.3)], [torch.tensor(2.4)]], 1e-4) is None
    assert "input-insensitive" in degenerate_reason([[torch.tensor(2.3)], [torch.tensor(2.3)]], 1e-4)


def test_flatten_accepts_nesting_and_numbers_and_refuses_objects():
    t = torch.ones(2)
    assert len(flatten((t, [t, 3.0]))) == 3
    with pytest.raises(TypeError):
        flatten(lambda: t)
