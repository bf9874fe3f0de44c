"""KernelBench L1 23_Softmax: softmax over dim 1 of a (rows, cols) tensor.

One program per row, two passes over it: an online pass keeps a running max and a running sum of exp(x - max)
per lane (rescaled when the max grows), then a second pass writes exp(x - max) / sum. Memory traffic is 2 reads
+ 1 write per element; a row at full size is 393216 fp32 = 1.5 MiB, too long to keep in registers.
"""
import torch
import torch.nn as nn
import triton
import triton.language as tl

BLOCK = 4096
# Start of the running max: finite, so that lanes which have only seen masked (-inf) elements give
# exp(-inf - START) = 0 instead of exp(-inf + inf) = NaN
START = -3.0e38


@triton.jit
def softmax_row_kernel(x_ptr, y_ptr, n_cols, BLOCK: tl.constexpr, START: tl.constexpr):
    row_start = tl.program_id(0).to(tl.int64) * n_cols
    lane = tl.arange(0, BLOCK)
    run_max = tl.full((BLOCK,), START, tl.float32)
    run_sum = tl.zeros((BLOCK,), tl.float32)
    for col in range(0, n_cols, BLOCK):
        cols = col + lane
        x = tl.load(x_ptr + row_start + cols, mask=cols < n_cols, other=-float("inf")).to(tl.float32)
        new_max = tl.maximum(run_max, x)
        run_sum = run_sum * tl.exp(run_max - new_max) + tl.exp(x - new_max)
        run_max = new_max
    row_max = tl.max(run_max, axis=0)
    row_sum = tl.sum(run_sum * tl.exp(run_max - row_max), axis=0)
    inv_sum = 1.0 / row_sum
    for col in range(0, n_cols, BLOCK):
        cols = col + lane
        mask = cols < n_cols
        x = tl.load(x_ptr + row_start + cols, mask=mask).to(tl.float32)
        y = tl.exp(x - row_max) * inv_sum
        tl.store(y_ptr + row_start + cols, y.to(y_ptr.dtype.element_ty), mask=mask)


class ModelNew(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.contiguous()
        y = torch.empty_like(x)
        n_rows, n_cols = x.shape
        softmax_row_kernel[(n_rows,)](x, y, n_cols, BLOCK=BLOCK, START=START, num_warps=8)
        return y
