"""KernelBench L1 47_Sum_reduction_over_a_dimension: torch.sum(x, dim, keepdim=True) for any dim.

x is seen as (outer, reduced, inner), contiguous. One program owns BLOCK_I neighbouring `inner` positions
of one `outer` index and walks down the reduced dimension BLOCK_R rows at a time, so every load is a run of
contiguous elements (at full size: 128 x 4096 x 4095, reducing the 4096). Each element is read once, in fp32.
"""
import math

import torch
import torch.nn as nn
import triton
import triton.language as tl

TILE = 2048  # elements per loaded tile (BLOCK_R x BLOCK_I)


@triton.jit
def sum_middle_kernel(x_ptr, y_ptr, n_reduced, n_inner,
                      BLOCK_R: tl.constexpr, BLOCK_I: tl.constexpr):
    n_i_blocks = tl.cdiv(n_inner, BLOCK_I)
    pid = tl.program_id(0).to(tl.int64)  # 2.1e9 elements at full size: int64 offsets
    outer = pid // n_i_blocks
    i = (pid % n_i_blocks) * BLOCK_I + tl.arange(0, BLOCK_I)
    i_mask = i < n_inner
    r_lane = tl.arange(0, BLOCK_R)
    base = outer * n_reduced * n_inner
    acc = tl.zeros((BLOCK_R, BLOCK_I), tl.float32)
    for r0 in range(0, n_reduced, BLOCK_R):
        r = r0 + r_lane
        offs = base + r[:, None].to(tl.int64) * n_inner + i[None, :]
        mask = (r[:, None] < n_reduced) & i_mask[None, :]
        acc += tl.load(x_ptr + offs, mask=mask, other=0.0).to(tl.float32)
    total = tl.sum(acc, axis=0)
    tl.store(y_ptr + outer * n_inner + i, total.to(y_ptr.dtype.element_ty), mask=i_mask)


class ModelNew(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.dim = dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.contiguous()
        dim = self.dim % x.dim()
        out_shape = list(x.shape)
        out_shape[dim] = 1
        y = torch.empty(out_shape, dtype=x.dtype, device=x.device)
        n_outer = math.prod(x.shape[:dim])
        n_reduced = x.shape[dim]
        n_inner = math.prod(x.shape[dim + 1:])
        # a power of two covering `inner` up to 256 wide; the rest of the tile goes down the reduced dim
        block_i = min(triton.next_power_of_2(n_inner), 256)
        block_r = TILE // block_i
        grid = (n_outer * triton.cdiv(n_inner, block_i),)
        sum_middle_kernel[grid](x, y, n_reduced, n_inner, BLOCK_R=block_r, BLOCK_I=block_i, num_warps=8)
        return y
