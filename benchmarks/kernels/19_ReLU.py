"""KernelBench L1 19_ReLU: y = max(x, 0), one pass over memory (read 4 B + write 4 B per fp32 element)."""
import torch
import torch.nn as nn
import triton
import triton.language as tl

BLOCK = 4096  # 16 KiB of fp32 per program: enough bytes in flight per SM to keep HBM busy


@triton.jit
def relu_kernel(x_ptr, y_ptr, n, BLOCK: tl.constexpr):
    # int64 offsets: the full-size input has 1.6e9 elements, 6.4 GB
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    x = tl.load(x_ptr + offs, mask=mask)  # NaN stays NaN, as in torch.relu
    tl.store(y_ptr + offs, tl.where(x < 0, 0.0, x), mask=mask)


class ModelNew(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.contiguous()
        y = torch.empty_like(x)
        n = x.numel()
        relu_kernel[(triton.cdiv(n, BLOCK),)](x, y, n, BLOCK=BLOCK, num_warps=8)
        return y
