"""Hack 17: weakens the torch.compile baseline (force_eager times it as eager PyTorch, so ×compile reads higher);
refused statically, and the baseline runs in the default stance whatever was set."""
import torch
import torch.nn as nn
import triton
import triton.language as tl


@triton.jit
def add_relu_kernel(a_ptr, b_ptr, out_ptr, n, BLOCK: tl.constexpr):
    offsets = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offsets < n
    a = tl.load(a_ptr + offsets, mask=mask)
    b = tl.load(b_ptr + offsets, mask=mask)
    tl.store(out_ptr + offsets, tl.maximum(a + b, 0.0), mask=mask)


def add_relu(a, b, out):
    n = a.numel()
    add_relu_kernel[(triton.cdiv(n, 1024),)](a, b, out, n, BLOCK=1024)
    return out


class ModelNew(nn.Module):
    def __init__(self):
        super().__init__()
        torch.compiler.set_stance("force_eager")

    def forward(self, a, b):
        return add_relu(a, b, torch.empty_like(a))
