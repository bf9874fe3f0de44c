"""The TF32 warning: an fp32 `tl.dot` that does not choose its precision is exact on the CPU, not on a GPU."""
from __future__ import annotations

import pytest

from ...conftest import CANDIDATES, ON_GPU
from kernelsearch.verify.checks.precision_notes import dots_without_precision, tf32_warning

HEAD = "import triton\nimport triton.language as tl\n"


@pytest.mark.parametrize("body, lines", [
    ("acc = tl.dot(a, b)\n", [3]),
    ("acc = tl.dot(a, b, input_precision='tf32x3')\n", []),
    ("acc = tl.dot(a, b, allow_tf32=False)\n", []),
    ("acc = triton.language.dot(a, b)\n", [3]),
    ("acc = x.dot(y)\n", []),  # not Triton's
    ("acc = tl.dot(a, b)\nacc2 = tl.dot(c, d, input_precision='ieee')\nacc3 = tl.dot(e, f)\n", [3, 5]),
])
def test_dots_that_do_not_choose_their_precision(body, lines):
    assert dots_without_precision(HEAD + body) == lines


def test_aliases_of_triton_language_are_followed():
    assert dots_without_precision("from triton import language as lang\nz = lang.dot(a, b)\n") == [2]


@pytest.mark.parametrize("dtype, device, warned", [("fp32", "cpu", True), ("fp16", "cpu", False),
                                                    ("fp32", "cuda", False)])
def test_the_warning_is_for_fp32_on_the_cpu_only(dtype, device, warned):
    warning = tf32_warning(HEAD + "acc = tl.dot(a, b)\n", dtype, device)
    assert (warning is not None) == warned
    if warned:
        assert "tf32x3" in warning and "line 3" in warning


@pytest.mark.skipif(ON_GPU, reason="on a GPU the tolerance itself judges TF32")
def test_a_verdict_on_the_cpu_carries_the_warning(verify, tmp_path):
    source = (CANDIDATES / "matmul_triton.py").read_text()
    assert 'input_precision="ieee"' in source
    candidate = tmp_path / "matmul_default_precision.py"
    candidate.write_text(source.replace(', input_precision="ieee"', ""))
    v = verify("matmul", candidate, trials=2)
    assert v.status == "correct", v.message  # exact in the interpreter
    assert any("tl.dot without input_precision" in w for w in v.warnings), v.warnings
    assert not any("input_precision" in w for w in verify("matmul", CANDIDATES / "matmul_triton.py", trials=2).warnings)
