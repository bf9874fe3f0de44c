"""An honest kernel that writes into an output buffer its model allocates once and keeps (a common pattern for
preallocated outputs): its own kernel computes every call's answer."""
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
    def __init__(self):
        super().__init__()
        self.out = None

    def forward(self, a, b):
        if self.out is None or self.out.shape != a.shape:
            self.out = torch.empty_like(a)
        n = a.numel()
        add_relu_kernel[(triton.cdiv(n, 1024),)](a, b, self.out, n, BLOCK=1024)
        return self.out
