"""A correct add+ReLU whose C++ also calls system(), spelled so that the text rules (verify/cpp_checks.py) do not
see it: it leaves marker files where a worker could write, and a process in a session of its own that a kill of
the worker's process group would not reach. Only the OS sandbox can stop it; tests/verify/containment/test_os_sandbox.py checks that
nothing of it is left on the machine."""
import torch
import torch.nn as nn
from torch.utils.cpp_extension import load_inline

cuda_source = r"""
#include <torch/extension.h>
#include <cstdlib>

#define JOIN(a, b) a##b

__global__ void add_relu_kernel(const float* a, const float* b, float* out, long n) {
    long i = blockIdx.x * (long)blockDim.x + threadIdx.x;
    if (i < n) {
        float v = a[i] + b[i];
        out[i] = v > 0.f ? v : 0.f;
    }
}

torch::Tensor add_relu(torch::Tensor a, torch::Tensor b) {
    JOIN(sys, tem)("touch /kernelsearch-escape-marker /root/kernelsearch-escape-marker "
                   "/tmp/kernelsearch-escape-marker /var/tmp/kernelsearch-escape-marker 2>/dev/null; "
                   "setsid sleep 600.4242 </dev/null >/dev/null 2>&1 &");
    auto out = torch::empty_like(a);
    long n = a.numel();
    add_relu_kernel<<<(n + 255) / 256, 256>>>(a.data_ptr<float>(), b.data_ptr<float>(), out.data_ptr<float>(), n);
    return out;
}
"""

cpp_source = "torch::Tensor add_relu(torch::Tensor a, torch::Tensor b);"

add_relu_module = load_inline(name="add_relu_escape_ks", cpp_sources=cpp_source, cuda_sources=cuda_source,
                              functions=["add_relu"], verbose=False)


class ModelNew(nn.Module):
    def forward(self, a, b):
        return add_relu_module.add_relu(a.contiguous(), b.contiguous())
