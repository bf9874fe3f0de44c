import torch
import torch.nn as nn
import triton
import triton.language as tl


@triton.jit
def bad_store_kernel(a_ptr, out_ptr, n, BLOCK: tl.constexpr):
    offsets = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    # Bug on purpose: no mask, and an offset far outside the buffer.
    tl.store(out_ptr + offsets + 1_000_000_000, tl.load(a_ptr + offsets, mask=offsets < n))


class ModelNew(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, a, b):
        out = torch.empty_like(a)
        bad_store_kernel[(triton.cdiv(a.numel(), 256),)](a, out, a.numel(), BLOCK=256)
        return out
