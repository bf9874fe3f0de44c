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


class ModelNew(nn.Module):
    """Correct but slow on purpose: one small launch per 2048 elements (8 launches instead of one)."""

    def __init__(self):
        super().__init__()

    def forward(self, a, b):
        shape = a.shape
        a, b = a.contiguous().view(-1), b.contiguous().view(-1)
        out = torch.empty_like(a)
        n = a.numel()
        for start in range(0, n, 2048):
            add_relu_kernel[(16,)](a[start:], b[start:], out[start:], min(2048, n - start), BLOCK=128)
        return out.view(shape)
