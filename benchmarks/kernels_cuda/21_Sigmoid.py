"""CUDA C++ (load_inline) kernel for KernelBench L1 21_Sigmoid: one thread per element, a grid-stride loop with
64-bit indices. One of the eight of benchmarks/gpu_sweep.sh's CUDA-build batch (built off the GPU, all at once)."""
import torch
import torch.nn as nn
from torch.utils.cpp_extension import load_inline

cuda_source = r"""
#include <torch/extension.h>

__global__ void sigmoid_kernel(const float* x, float* out, long n) {
    for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < n; i += (long)gridDim.x * blockDim.x) {
        float v = x[i];
        out[i] = 1.f / (1.f + expf(-v));
    }
}

torch::Tensor sigmoid(torch::Tensor x) {
    auto out = torch::empty_like(x);
    long n = x.numel();
    int blocks = (int)std::min<long>((n + 255) / 256, 65535L * 16);
    sigmoid_kernel<<<blocks, 256>>>(x.data_ptr<float>(), out.data_ptr<float>(), n);
    return out;
}
"""

cpp_source = "torch::Tensor sigmoid(torch::Tensor x);"

module = load_inline(name="sigmoid_ks", cpp_sources=cpp_source, cuda_sources=cuda_source, functions=["sigmoid"],
                     verbose=False)


class ModelNew(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, x):
        return module.sigmoid(x.contiguous())
