"""Hack 12: stands in for a racy kernel or one that reads uninitialized memory: most runs are right, the
7th call (the verifier's repeat of trial 0) is not. (Uninitialized reads proper already fail: free memory
is poisoned with NaN before every run.)"""
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
        self.calls = 0

    def forward(self, a, b):
        self.calls += 1
        out = add_relu(a, b, torch.empty_like(a))
        if self.calls == 7:
            add_relu(out, torch.full_like(out, 0.5), out)
        return out
