import torch
import torch.nn as nn
import triton
import triton.language as tl


@triton.jit
def add_relu_kernel(a_ptr, b_ptr, out_ptr, n, BLOCK: tl.constexpr):
    offsets = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offsets < n
    tl.store(out_ptr + offsets, tl.maximum(tl.load(a_ptr + offsets, mask=mask) + tl.load(b_ptr + offsets, mask=mask),
                                           0.0), mask=mask)


class ModelNew(nn.Module):
    """Never returns from its first call (a spin that a real kernel could do on the GPU)."""

    def forward(self, a, b):
        while a.numel() > 0:
            pass
        out = torch.empty_like(a)
        add_relu_kernel[(triton.cdiv(a.numel(), 256),)](a, b, out, a.numel(), BLOCK=256)
        return out
