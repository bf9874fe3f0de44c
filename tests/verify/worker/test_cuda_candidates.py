"""CUDA C++ (load_inline) candidates on a machine without a GPU: rules checked, sources compiled, nothing run."""
import shutil

import pytest

from ...conftest import CANDIDATES, ON_GPU
from kernelsearch.verify.checks.static_checks import check_source

CUDA = CANDIDATES / "cuda"
needs_nvcc = pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc not installed")
cpu_only = pytest.mark.skipif(ON_GPU, reason="on a GPU the candidate runs: see the gpu tests below")
gpu_only = pytest.mark.skipif(not ON_GPU, reason="needs a GPU")


@pytest.mark.parametrize("name, words", [
    ("side_stream_cuda", "cudaStreamCreate"),
])
def test_cuda_hacks_are_caught_statically(name, words):
    report = check_source((CUDA / f"{name}.py").read_text())
    assert report.language == "cuda"
    assert any(words in v for v in report.violations), report.violations


@pytest.mark.slow
@needs_nvcc
@cpu_only
def test_cuda_candidate_compiles_but_is_not_called_correct(verify):
    v = verify("elementwise_add_relu", CUDA / "add_relu_cuda.py")
    assert v.status == "compiled", v.message
    assert "a GPU is needed to run it" in v.message and "sm_90" in v.message
    assert v.language == "cuda"


@pytest.mark.slow
@needs_nvcc
def test_cuda_compile_error_is_reported(verify):
    v = verify("elementwise_add_relu", CUDA / "compile_error_cuda.py")
    assert v.status == "compile_error", v.message
    assert "error" in v.message.lower()
    if not ON_GPU:
        assert "cuda.cu" in v.message  # the compile check names the file and line nvcc complained about


@gpu_only
@pytest.mark.parametrize("problem, name, status, words", [
    ("elementwise_add_relu", "add_relu_cuda", "correct", "matches the reference"),
    ("elementwise_add_relu", "empty_output_cuda", "incorrect", "NaN"),
    ("matmul", "cublas_cuda", "rejected", "none of the candidate's own GPU kernels"),
    ("elementwise_add_relu", "side_stream_cuda", "rejected", "cudaStreamCreate"),
])
def test_cuda_candidates_on_the_gpu(verify, problem, name, status, words):
    v = verify(problem, CUDA / f"{name}.py", timing=status == "correct")
    assert v.status == status, v.message
    assert words in v.message
    if status == "correct":
        assert v.timing["speedup_vs_eager"] > 0
