"""KernelBench L1 38_L1Norm_: y = x / mean(|x|, dim=1) for a (rows, cols) tensor.

One program per row, two passes: sum |x| (per-lane partial sums, fp32), then write x / mean. A row at full
size is 65535 fp32 = 256 KiB, too long for registers, so the second pass reads the row again (mostly from L2).
"""
import torch
import torch.nn as nn
import triton
import triton.language as tl

BLOCK = 4096


@triton.jit
def l1_normalize_row_kernel(x_ptr, y_ptr, n_cols, BLOCK: tl.constexpr):
    row_start = tl.program_id(0).to(tl.int64) * n_cols  # 32768 x 65535 elements at full size: past 2**31
    lane = tl.arange(0, BLOCK)
    abs_sum = tl.zeros((BLOCK,), tl.float32)
    for col in range(0, n_cols, BLOCK):
        cols = col + lane
        x = tl.load(x_ptr + row_start + cols, mask=cols < n_cols, other=0.0).to(tl.float32)
        abs_sum += tl.abs(x)
    mean = tl.sum(abs_sum, axis=0) / n_cols
    for col in range(0, n_cols, BLOCK):
        cols = col + lane
        mask = cols < n_cols
        x = tl.load(x_ptr + row_start + cols, mask=mask).to(tl.float32)
        tl.store(y_ptr + row_start + cols, (x / mean).to(y_ptr.dtype.element_ty), mask=mask)


class ModelNew(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.contiguous()
        y = torch.empty_like(x)
        n_rows, n_cols = x.shape
        l1_normalize_row_kernel[(n_rows,)](x, y, n_cols, BLOCK=BLOCK, num_warps=8)
        return y
