"""KernelBench L1 12_Matmul_with_diagonal_matrices_: C = diag(A) @ B, i.e. C[i, j] = A[i] * B[i, j].

One program per (row, block of columns): A[i] is loaded once per program, B and C stream through once.
"""
import torch
import torch.nn as nn
import triton
import triton.language as tl

BLOCK_COLS = 1024


@triton.jit
def row_scale_kernel(a_ptr, b_ptr, c_ptr, n_cols, BLOCK_COLS: tl.constexpr):
    row = tl.program_id(0).to(tl.int64)
    cols = tl.program_id(1) * BLOCK_COLS + tl.arange(0, BLOCK_COLS)
    mask = cols < n_cols
    scale = tl.load(a_ptr + row)
    b = tl.load(b_ptr + row * n_cols + cols, mask=mask)
    tl.store(c_ptr + row * n_cols + cols, scale * b, mask=mask)


class ModelNew(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, A: torch.Tensor, B: torch.Tensor) -> torch.Tensor:
        A = A.contiguous()
        B = B.contiguous()
        n_rows, n_cols = B.shape
        C = torch.empty(B.shape, dtype=torch.result_type(A, B), device=B.device)
        grid = (n_rows, triton.cdiv(n_cols, BLOCK_COLS))
        row_scale_kernel[grid](A, B, C, n_cols, BLOCK_COLS=BLOCK_COLS, num_warps=4)
        return C
