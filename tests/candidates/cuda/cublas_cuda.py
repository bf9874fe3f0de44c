"""Hack 5 in CUDA: hands the matmul to cuBLAS through an ATen method call from C++ (no at:: name for the
static check to see); the profiler shows no kernel of the candidate's own."""
import torch
import torch.nn as nn
from torch.utils.cpp_extension import load_inline

cpp_source = r"""
#include <torch/extension.h>
torch::Tensor mm(torch::Tensor a, torch::Tensor b) { return a.matmul(b); }
"""

module = load_inline(name="aten_mm_ks", cpp_sources=cpp_source, functions=["mm"], verbose=False)


class ModelNew(nn.Module):
    def forward(self, A, B):
        return module.mm(A, B)
