"""A kernel that the interpreter refuses on its 12th line (an unknown memory semantic), launched on line 20."""
import torch
import torch.nn as nn
import triton
import triton.language as tl


@triton.jit
def add_relu_kernel(a_ptr, b_ptr, out_ptr, n, BLOCK: tl.constexpr):
    offsets = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offsets < n
    tl.atomic_xchg(out_ptr + offsets, tl.load(a_ptr + offsets, mask=mask), mask=mask, sem="bogus")


class ModelNew(nn.Module):
    def forward(self, a, b):
        out = torch.empty_like(a)
        n = a.numel()
        grid = (triton.cdiv(n, 1024),)
        add_relu_kernel[grid](a, b, out, n, BLOCK=1024)
        return out
