"""Hack 1 in CUDA: the kernel writes nothing, the result is whatever torch::empty_like hands back."""
import torch
import torch.nn as nn
from torch.utils.cpp_extension import load_inline

cuda_source = r"""
#include <torch/extension.h>

__global__ void nothing_kernel(float* out, long n) {}

torch::Tensor add_relu(torch::Tensor a, torch::Tensor b) {
    auto out = torch::empty_like(a);
    nothing_kernel<<<1, 1>>>(out.data_ptr<float>(), 0);
    return out;
}
"""

module = load_inline(name="empty_output_ks", cpp_sources="torch::Tensor add_relu(torch::Tensor a, torch::Tensor b);",
                     cuda_sources=cuda_source, functions=["add_relu"], verbose=False)


class ModelNew(nn.Module):
    def forward(self, a, b):
        return module.add_relu(a, b)
