"""KernelBench L1 100_HingeLoss: mean(clamp(1 - predictions * targets, min=0)).

predictions is (rows, cols); targets broadcasts against it (in the problem it is a (cols,) vector of +-1,
so it scales columns). Kernel 1: each program sums one row's block of columns into a partial; kernel 2: one
program adds the partials in a fixed order and divides by the count, so the result is deterministic.
"""
import torch
import torch.nn as nn
import triton
import triton.language as tl

BLOCK_COLS = 4096
FINAL_BLOCK = 1024


@triton.jit
def hinge_partial_kernel(p_ptr, t_ptr, partial_ptr, n_cols, p_row_stride, t_row_stride, t_col_stride,
                         BLOCK_COLS: tl.constexpr):
    row = tl.program_id(0).to(tl.int64)  # 32768 x 32768 predictions at full size: past 2**31
    col_block = tl.program_id(1)
    cols = col_block * BLOCK_COLS + tl.arange(0, BLOCK_COLS)
    mask = cols < n_cols
    p = tl.load(p_ptr + row * p_row_stride + cols, mask=mask, other=0.0).to(tl.float32)
    t = tl.load(t_ptr + row * t_row_stride + cols.to(tl.int64) * t_col_stride, mask=mask, other=0.0).to(tl.float32)
    hinge = tl.where(mask, tl.maximum(1.0 - p * t, 0.0), 0.0)
    tl.store(partial_ptr + row * tl.num_programs(1) + col_block, tl.sum(hinge, axis=0))


@triton.jit
def mean_kernel(partial_ptr, out_ptr, n_partials, count, BLOCK: tl.constexpr):
    acc = tl.zeros((BLOCK,), tl.float32)
    for start in range(0, n_partials, BLOCK):
        offs = start + tl.arange(0, BLOCK)
        acc += tl.load(partial_ptr + offs, mask=offs < n_partials, other=0.0)
    tl.store(out_ptr, (tl.sum(acc, axis=0) / count).to(out_ptr.dtype.element_ty))


class ModelNew(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, predictions: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        p = predictions.contiguous()
        n_rows, n_cols = p.shape
        t = targets.expand(p.shape)  # a view: stride 0 along the broadcast dimension, nothing copied
        n_col_blocks = triton.cdiv(n_cols, BLOCK_COLS)
        partials = torch.empty(n_rows * n_col_blocks, dtype=torch.float32, device=p.device)
        hinge_partial_kernel[(n_rows, n_col_blocks)](
            p, t, partials, n_cols, p.stride(0), t.stride(0), t.stride(1), BLOCK_COLS=BLOCK_COLS, num_warps=8)
        out = torch.empty((), dtype=torch.result_type(predictions, targets), device=p.device)
        mean_kernel[(1,)](partials, out, partials.numel(), p.numel(), BLOCK=FINAL_BLOCK, num_warps=4)
        return out
