"""KernelBench L1 22_Tanh: y = tanh(x), one pass over memory (read 4 B + write 4 B per fp32 element)."""
import torch
import torch.nn as nn
import triton
import triton.language as tl

BLOCK = 4096  # 16 KiB of fp32 per program: enough bytes in flight per SM to keep HBM busy


@triton.jit
def tanh_kernel(x_ptr, y_ptr, n, BLOCK: tl.constexpr):
    # int64 offsets: the full-size input has 1.6e9 elements, 6.4 GB
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    x = tl.load(x_ptr + offs, mask=mask).to(tl.float32)
    # tanh|x| = (1 - e) / (1 + e) with e = exp(-2|x|) in (0, 1]: never overflows; near 0 the absolute
    # error is ~1e-7, far inside atol = 1e-4
    e = tl.exp(-2.0 * tl.abs(x))
    t = (1.0 - e) / (1.0 + e)
    y = tl.where(x < 0, -t, t)
    tl.store(y_ptr + offs, y.to(y_ptr.dtype.element_ty), mask=mask)


class ModelNew(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.contiguous()
        y = torch.empty_like(x)
        n = x.numel()
        tanh_kernel[(triton.cdiv(n, BLOCK),)](x, y, n, BLOCK=BLOCK, num_warps=8)
        return y
