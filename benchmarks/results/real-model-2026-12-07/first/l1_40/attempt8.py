import torch
import torch.nn as nn
import triton
import triton.language as tl


@triton.jit
def _ln_stats_kernel(x_ptr, psum_ptr, psq_ptr, N, num_chunks,
                     BLOCK: tl.constexpr, ITERS: tl.constexpr):
    chunk = tl.program_id(0)
    row = tl.num_programs(1) - 1 - tl.program_id(1)
    row_base = x_ptr + row.to(tl.int64) * N
    shift = tl.load(row_base).to(tl.float32)
    offs = tl.arange(0, BLOCK)
    start = chunk.to(tl.int64) * (BLOCK * ITERS)
    acc_s = tl.zeros([BLOCK], dtype=tl.float32)
    acc_q = tl.zeros([BLOCK], dtype=tl.float32)
    for i in range(ITERS):
        cols = start + i * BLOCK + offs
        mask = cols < N
        x = tl.load(row_base + cols, mask=mask, other=0.0).to(tl.float32)
        d = tl.where(mask, x - shift, 0.0)
        acc_s += d
        acc_q += d * d
    s = tl.sum(acc_s, axis=0)
    q = tl.sum(acc_q, axis=0)
    out = row * num_chunks + chunk
    tl.store(psum_ptr + out, s)
    tl.store(psq_ptr + out, q)


@triton.jit
def _ln_finalize_kernel(x_ptr, psum_ptr, psq_ptr, scale_ptr, offset_ptr,
                        N, num_chunks, inv_n, eps, BLOCK_P: tl.constexpr):
    row = tl.program_id(0)
    shift = tl.load(x_ptr + row.to(tl.int64) * N).to(tl.float32)
    offs = tl.arange(0, BLOCK_P)
    acc_s = tl.zeros([BLOCK_P], dtype=tl.float32)
    acc_q = tl.zeros([BLOCK_P], dtype=tl.float32)
    base = row * num_chunks
    for start in range(0, num_chunks, BLOCK_P):
        idx = start + offs
        m = idx < num_chunks
        acc_s += tl.load(psum_ptr + base + idx, mask=m, other=0.0)
        acc_q += tl.load(psq_ptr + base + idx, mask=m, other=0.0)
    s = tl.sum(acc_s, axis=0)
    q = tl.sum(acc_q, axis=0)
    mean_d = s * inv_n
    var = tl.maximum(q * inv_n - mean_d * mean_d, 0.0)
    rstd = 1.0 / tl.sqrt(var + eps)
    # fold the mean into an affine pair: (x - mean) * rstd = x * rstd + (-mean * rstd)
    tl.store(scale_ptr + row, rstd)
    tl.store(offset_ptr + row, -(shift + mean_d) * rstd)


@triton.jit
def _ln_affine_apply_kernel(x_ptr, w_ptr, b_ptr, y_ptr, scale_ptr, offset_ptr,
                            M, N, BLOCK_C: tl.constexpr, ROWS: tl.constexpr):
    pid = tl.program_id(0)
    cols = pid.to(tl.int64) * BLOCK_C + tl.arange(0, BLOCK_C)
    cmask = cols < N
    w = tl.load(w_ptr + cols, mask=cmask, other=0.0).to(tl.float32)
    b = tl.load(b_ptr + cols, mask=cmask, other=0.0).to(tl.float32)
    r_offs = tl.arange(0, ROWS)
    for r0 in range(0, M, ROWS):
        rows = r0 + r_offs
        rmask = rows < M
        sc = tl.load(scale_ptr + rows, mask=rmask, other=0.0)
        of = tl.load(offset_ptr + rows, mask=rmask, other=0.0)
        offs = rows.to(tl.int64)[:, None] * N + cols[None, :]
        m2 = rmask[:, None] & cmask[None, :]
        x = tl.load(x_ptr + offs, mask=m2, other=0.0).to(tl.float32)
        # two FMAs per element: y = (x * rstd + (-mean * rstd)) * w + b
        y = (x * sc[:, None] + of[:, None]) * w[None, :] + b[None, :]
        tl.store(y_ptr + offs, y.to(y_ptr.dtype.element_ty), mask=m2)


class ModelNew(nn.Module):
    def __init__(self, normalized_shape: tuple):
        super(ModelNew, self).__init__()
        self.ln = nn.LayerNorm(normalized_shape=normalized_shape)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        N = 1
        for s in self.ln.normalized_shape:
            N *= int(s)
        x_c = x.contiguous()
        M = x_c.numel() // N
        y = torch.empty_like(x_c)
        w = self.ln.weight.contiguous().view(-1)
        b = self.ln.bias.contiguous().view(-1)

        # statistics pass: 4096-wide steps on 4 warps (32 contiguous floats per
        # thread per step), 8 steps per program -> 32768-element chunks; at the
        # original size 16 rows x 128 chunks = 2048 small CTAs, enough to fill
        # all 132 SMs with several CTAs each in a single wave
        BLOCK = min(4096, triton.next_power_of_2(N))
        target_chunks_per_row = max(1, triton.cdiv(2048, M))
        ITERS = max(1, min(8, N // (BLOCK * target_chunks_per_row)))
        num_chunks = triton.cdiv(N, BLOCK * ITERS)
        stats_warps = 4 if BLOCK >= 1024 else 1

        psum = torch.empty((M, num_chunks), device=x.device, dtype=torch.float32)
        psq = torch.empty((M, num_chunks), device=x.device, dtype=torch.float32)
        scale = torch.empty((M,), device=x.device, dtype=torch.float32)
        offset = torch.empty((M,), device=x.device, dtype=torch.float32)

        _ln_stats_kernel[(num_chunks, M)](
            x_c, psum, psq, N, num_chunks,
            BLOCK=BLOCK, ITERS=ITERS, num_warps=stats_warps)

        BLOCK_P = min(256, triton.next_power_of_2(num_chunks))
        _ln_finalize_kernel[(M,)](
            x_c, psum, psq, scale, offset, N, num_chunks,
            1.0 / N, float(self.ln.eps), BLOCK_P=BLOCK_P, num_warps=1)

        # apply pass: 4096-wide column blocks x 2 rows per step on 8 warps
        # (w, b: 16 regs each per thread, x tile 32): 1024 CTAs at the original
        # size, 8 steps of 32 KB each, w/b slice read once per CTA
        BLOCK_C = min(4096, triton.next_power_of_2(N))
        ROWS = min(2, triton.next_power_of_2(M))
        apply_warps = 8 if BLOCK_C * ROWS >= 4096 else 4
        _ln_affine_apply_kernel[(triton.cdiv(N, BLOCK_C),)](
            x_c, w, b, y, scale, offset, M, N,
            BLOCK_C=BLOCK_C, ROWS=ROWS, num_warps=apply_warps)
        return y.view(x.shape)