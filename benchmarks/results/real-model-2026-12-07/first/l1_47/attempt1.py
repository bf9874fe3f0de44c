import math

import torch
import torch.nn as nn
import triton
import triton.language as tl


@triton.jit
def _sum_dim_kernel(
    x_ptr, out_ptr,
    R, INNER, num_n_blocks,
    BLOCK_R: tl.constexpr, BLOCK_N: tl.constexpr,
):
    pid = tl.program_id(0)
    pid_o = pid // num_n_blocks
    pid_n = pid % num_n_blocks

    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    mask_n = offs_n < INNER
    offs_r = tl.arange(0, BLOCK_R)

    base = pid_o.to(tl.int64) * R * INNER
    acc = tl.zeros((BLOCK_R, BLOCK_N), dtype=tl.float32)
    for r0 in range(0, R, BLOCK_R):
        rows = r0 + offs_r
        m = (rows[:, None] < R) & mask_n[None, :]
        ptrs = x_ptr + base + rows[:, None].to(tl.int64) * INNER + offs_n[None, :]
        acc += tl.load(ptrs, mask=m, other=0.0).to(tl.float32)

    total = tl.sum(acc, axis=0)
    out_ptrs = out_ptr + pid_o.to(tl.int64) * INNER + offs_n
    tl.store(out_ptrs, total.to(out_ptr.dtype.element_ty), mask=mask_n)


class ModelNew(nn.Module):
    def __init__(self, dim: int):
        super(ModelNew, self).__init__()
        self.dim = dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dim = self.dim % x.dim()
        x = x.contiguous()
        shape = list(x.shape)
        outer = math.prod(shape[:dim])
        R = shape[dim]
        inner = math.prod(shape[dim + 1:])

        out_shape = list(shape)
        out_shape[dim] = 1
        out = torch.empty(out_shape, device=x.device, dtype=x.dtype)
        if out.numel() == 0:
            return out

        BLOCK_N = min(256, max(16, triton.next_power_of_2(inner)))
        BLOCK_R = 16
        num_n_blocks = triton.cdiv(inner, BLOCK_N)
        grid = (outer * num_n_blocks,)
        _sum_dim_kernel[grid](
            x, out, R, inner, num_n_blocks,
            BLOCK_R=BLOCK_R, BLOCK_N=BLOCK_N,
            num_warps=4,
        )
        return out