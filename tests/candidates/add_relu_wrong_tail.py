import torch
import torch.nn as nn
import triton
import triton.language as tl


@triton.jit
def add_relu_kernel(a_ptr, b_ptr, out_ptr, n_cols, BLOCK: tl.constexpr):
    row = tl.program_id(0)
    cols = tl.arange(0, BLOCK)
    # Bug on purpose: one block per row, so columns past BLOCK are never written.
    mask = cols < n_cols
    a = tl.load(a_ptr + row * n_cols + cols, mask=mask)
    b = tl.load(b_ptr + row * n_cols + cols, mask=mask)
    tl.store(out_ptr + row * n_cols + cols, tl.maximum(a + b, 0.0), mask=mask)


class ModelNew(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, a, b):
        rows, cols = a.shape
        out = torch.empty_like(a)
        add_relu_kernel[(rows,)](a, b, out, cols, BLOCK=512)
        return out
