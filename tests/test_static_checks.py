"""The candidate source rules, checked on the syntax tree before anything runs."""
import pytest

from kernelsearch.verify.static_checks import check_source

from .conftest import CANDIDATES

HEADER = "import torch\nimport torch.nn as nn\nimport triton\nimport triton.language as tl\n"
MODEL = "\nclass ModelNew(nn.Module):\n    def forward(self, x):\n        return x\n"


@pytest.mark.parametrize("name", ["add_relu_triton", "matmul_triton", "softmax_triton", "row_sum_triton",
                                  "cross_entropy_triton", "conv_relu_bias_partial"])
def test_honest_candidates_pass(name):
    report = check_source((CANDIDATES / f"{name}.py").read_text())
    assert report.ok, report.violations
    assert report.language == "triton"


@pytest.mark.parametrize("snippet, expected", [
    ("import os", "imports os"),
    ("import sys", "imports sys"),
    ("from inspect import currentframe", "imports inspect"),
    ("import gc", "imports gc"),
    ("import ctypes", "imports ctypes"),
    ("import threading", "imports threading"),
    ("import socket", "imports socket"),
    ("import time", "imports time"),
    ("torch.cuda.synchronize = lambda: None", "assigns to torch.cuda.synchronize"),
    ("tl.dot = None", "assigns to triton.language.dot"),
    ("torch.backends.cuda.matmul.allow_tf32 = True", "torch.backends"),
    ("torch.set_float32_matmul_precision('medium')", "changes matmul precision"),
    ("s = torch.cuda.Stream()", "another CUDA stream"),
    ("from torch.cuda import Stream", "another CUDA stream"),
    ("g = torch.cuda.CUDAGraph()", "CUDA graph"),
    ("f = torch.compile(lambda x: x)", "torch.compile"),
    ("x = eval('1')", "uses eval()"),
    ("x = open('f').read()", "uses open()"),
    ("x = __import__('os')", "uses __import__()"),
    ("f = (lambda: 0).__globals__", ".__globals__"),
    ("setattr(torch, 'relu', None)", "setattr() on something other than self"),
    ("f = getattr(torch, 'compile')", "dynamic lookup"),
    ("try:\n    pass\nexcept Exception:\n    pass", "try/except that does not re-raise"),
    ("class Lazy(torch.Tensor):\n    pass", "subclasses torch.Tensor"),
    ("class ModelNew2(Model):\n    pass", "reference Model"),
    ("from .helpers import k", "relative import"),
    ("src = 'void f() { cublasSgemm(h); }'", "cuBLAS"),
    ("src = 'void f() { cudaStream_t s; cudaStreamCreate(&s); }'", "another CUDA stream"),
    ("src = 'torch::Tensor f(torch::Tensor a) { return at::matmul(a, a); }'", "PyTorch op from C++"),
    ("src = 'void f() { auto k = getenv(\"KEY\"); }'", "environment"),
    ("exit(0)", "ends the process"),
])
def test_each_rule_names_what_the_candidate_did(snippet, expected):
    report = check_source(HEADER + snippet + "\n" + MODEL)
    assert not report.ok
    assert any(expected in v for v in report.violations), report.violations


def test_reraising_try_and_self_setattr_are_allowed():
    source = HEADER + "try:\n    x = 1\nexcept ValueError:\n    raise\n" + MODEL.replace(
        "return x", "setattr(self, 'y', 1)\n        return x")
    assert check_source(source).ok


def test_comments_in_cuda_source_do_not_count():
    source = HEADER + "src = '''// no cublas here\n__global__ void k() {}'''\n" + MODEL
    assert check_source(source).ok


def test_syntax_error_and_missing_model_new():
    assert check_source("def f(:\n").syntax_error.startswith("line 1")
    report = check_source(HEADER + "x = 1\n")
    assert report.syntax_error is None and not report.has_model_new and not report.ok


def test_load_inline_marks_a_cuda_candidate():
    source = "import torch\nfrom torch.utils.cpp_extension import load_inline\n" + MODEL.replace(
        "nn.Module", "torch.nn.Module")
    report = check_source(source)
    assert report.ok, report.violations
    assert report.language == "cuda"
