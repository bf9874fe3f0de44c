import math

import torch
import torch.nn as nn
import triton
import triton.language as tl


@triton.jit
def _sum_cols_persistent_kernel(
    x_ptr, out_ptr,
    R, INNER, num_n_blocks, num_tiles, NPROG, TILES_PER_PROG,
    BLOCK_R: tl.constexpr, BLOCK_N: tl.constexpr,
):
    # x viewed as [OUTER, R, INNER] contiguous, out as [OUTER, INNER]
    pid = tl.program_id(0)
    offs_r = tl.arange(0, BLOCK_R)
    offs_nb = tl.arange(0, BLOCK_N)
    for i in range(0, TILES_PER_PROG):
        tile = pid + i * NPROG
        valid = tile < num_tiles
        pid_o = tile // num_n_blocks
        pid_n = tile % num_n_blocks

        offs_n = pid_n * BLOCK_N + offs_nb
        mask_n = (offs_n < INNER) & valid

        slab = x_ptr + pid_o.to(tl.int64) * R * INNER
        ptrs = slab + offs_r[:, None] * INNER + offs_n[None, :]
        acc = tl.zeros((BLOCK_R, BLOCK_N), dtype=tl.float32)
        for r0 in range(0, R, BLOCK_R):
            m = ((r0 + offs_r)[:, None] < R) & mask_n[None, :]
            acc += tl.load(ptrs, mask=m, other=0.0).to(tl.float32)
            ptrs += BLOCK_R * INNER

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
        BLOCK_R = max(8, min(32, 8192 // BLOCK_N))
        num_n_blocks = triton.cdiv(inner, BLOCK_N)
        num_tiles = outer * num_n_blocks

        if x.is_cuda:
            n_sm = torch.cuda.get_device_properties(x.device).multi_processor_count
        else:
            n_sm = 4
        nprog = max(1, min(num_tiles, 2 * n_sm))
        tiles_per_prog = triton.cdiv(num_tiles, nprog)

        _sum_cols_persistent_kernel[(nprog,)](
            x, out, R, inner, num_n_blocks, num_tiles, nprog, tiles_per_prog,
            BLOCK_R=BLOCK_R, BLOCK_N=BLOCK_N,
            num_warps=8,
        )
        return out