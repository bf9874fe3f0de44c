import math

import torch
import torch.nn as nn
import triton
import triton.language as tl


@triton.jit
def _partial_colsum_kernel(
    x_ptr, ws_ptr,
    R, INNER, OUTER, num_n_blocks, SPLIT, R_PER,
    BLOCK_R: tl.constexpr, BLOCK_N: tl.constexpr,
):
    # x viewed as [OUTER, R, INNER]; ws is [SPLIT, OUTER, INNER]
    pid = tl.program_id(0)
    pid_n = pid % num_n_blocks
    rest = pid // num_n_blocks
    s = rest % SPLIT
    pid_o = rest // SPLIT

    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    mask_n = offs_n < INNER
    offs_r = tl.arange(0, BLOCK_R)

    r_start = s * R_PER
    r_end = tl.minimum(r_start + R_PER, R)

    ptrs = (x_ptr + pid_o.to(tl.int64) * R * INNER
            + (r_start + offs_r)[:, None].to(tl.int64) * INNER + offs_n[None, :])
    acc = tl.zeros((BLOCK_R, BLOCK_N), dtype=tl.float32)
    for r0 in range(0, R_PER, BLOCK_R):
        rows = r_start + r0 + offs_r
        m = (rows[:, None] < r_end) & mask_n[None, :]
        acc += tl.load(ptrs, mask=m, other=0.0).to(tl.float32)
        ptrs += BLOCK_R * INNER

    total = tl.sum(acc, axis=0)
    ws_ptrs = ws_ptr + (s * OUTER + pid_o).to(tl.int64) * INNER + offs_n
    tl.store(ws_ptrs, total.to(ws_ptr.dtype.element_ty), mask=mask_n)


@triton.jit
def _combine_kernel(
    ws_ptr, out_ptr, TOTAL, SPLIT,
    BLOCK: tl.constexpr,
):
    pid = tl.program_id(0)
    offs = pid.to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < TOTAL
    acc = tl.zeros((BLOCK,), dtype=tl.float32)
    for s in range(0, SPLIT):
        acc += tl.load(ws_ptr + s * TOTAL + offs, mask=mask, other=0.0)
    tl.store(out_ptr + offs, acc.to(out_ptr.dtype.element_ty), mask=mask)


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

        # Launch tuned for H100 at the original sizes ([128, 4096, 4095] reduced over 4096 rows):
        # 256-wide column strips (1 KB contiguous per row) x 32 rows per step -> 32 independent
        # loads per thread with 8 warps; split the 4096-row reduction so that ~8192 programs
        # (~1024 rows each) keep all SMs busy with a small tail.  Stage 1 keeps everything in
        # registers (num_stages=1: no shared-memory staging that would only cut occupancy).
        BLOCK_N = min(256, max(16, triton.next_power_of_2(inner)))
        BLOCK_R = max(8, min(32, 8192 // BLOCK_N))
        num_warps = 8 if BLOCK_N * BLOCK_R >= 4096 else 4
        num_n_blocks = triton.cdiv(inner, BLOCK_N)
        tiles = outer * num_n_blocks

        target_programs = 8192
        min_rows = 512 if R >= 4096 else 64
        split = 1
        if tiles < target_programs:
            split = max(1, min(triton.cdiv(target_programs, tiles), triton.cdiv(R, min_rows)))
            split = triton.next_power_of_2(split)
        r_per = triton.cdiv(triton.cdiv(R, split), BLOCK_R) * BLOCK_R
        split = max(1, triton.cdiv(R, r_per)) if R > 0 else 1

        total = outer * inner
        if split == 1 and out.dtype == torch.float32:
            ws = out
        else:
            ws = torch.empty((split, outer, inner), device=x.device, dtype=torch.float32)

        grid = (tiles * split,)
        _partial_colsum_kernel[grid](
            x, ws, R, inner, outer, num_n_blocks, split, r_per,
            BLOCK_R=BLOCK_R, BLOCK_N=BLOCK_N,
            num_warps=num_warps, num_stages=1,
        )
        if ws is not out:
            BLOCK = 2048
            _combine_kernel[(triton.cdiv(total, BLOCK),)](
                ws, out, total, split,
                BLOCK=BLOCK,
                num_warps=8, num_stages=1,
            )
        return out