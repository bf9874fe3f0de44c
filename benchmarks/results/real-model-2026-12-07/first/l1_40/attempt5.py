import torch
import torch.nn as nn
import triton
import triton.language as tl


@triton.jit
def _ln_rowstats_kernel(x_ptr, psum_ptr, psq_ptr, N, num_chunks,
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
    out = row * num_chunks + chunk
    tl.store(psum_ptr + out, tl.sum(acc_s, axis=0))
    tl.store(psq_ptr + out, tl.sum(acc_q, axis=0))


@triton.jit
def _ln_colblock_apply_kernel(x_ptr, w_ptr, b_ptr, y_ptr, psum_ptr, psq_ptr,
                              M, N, num_chunks, inv_n, eps,
                              BLOCK_C: tl.constexpr, ROWS: tl.constexpr,
                              BLOCK_P: tl.constexpr):
    pid = tl.program_id(0)
    cols = pid.to(tl.int64) * BLOCK_C + tl.arange(0, BLOCK_C)
    cmask = cols < N
    w = tl.load(w_ptr + cols, mask=cmask, other=0.0).to(tl.float32)
    b = tl.load(b_ptr + cols, mask=cmask, other=0.0).to(tl.float32)
    r_offs = tl.arange(0, ROWS)
    p_offs = tl.arange(0, BLOCK_P)
    for r0 in range(0, M, ROWS):
        rows = r0 + r_offs
        rmask = rows < M
        rows64 = rows.to(tl.int64)
        offs = rows64[:, None] * N + cols[None, :]
        m2 = rmask[:, None] & cmask[None, :]
        # streaming load first, statistics of these rows while it is in flight
        x = tl.load(x_ptr + offs, mask=m2, other=0.0).to(tl.float32)

        shift = tl.load(x_ptr + rows64 * N, mask=rmask, other=0.0).to(tl.float32)
        acc_s = tl.zeros([ROWS, BLOCK_P], dtype=tl.float32)
        acc_q = tl.zeros([ROWS, BLOCK_P], dtype=tl.float32)
        for p0 in range(0, num_chunks, BLOCK_P):
            idx = p0 + p_offs
            pm = rmask[:, None] & (idx < num_chunks)[None, :]
            poffs = rows[:, None] * num_chunks + idx[None, :]
            acc_s += tl.load(psum_ptr + poffs, mask=pm, other=0.0)
            acc_q += tl.load(psq_ptr + poffs, mask=pm, other=0.0)
        s = tl.sum(acc_s, axis=1)
        q = tl.sum(acc_q, axis=1)
        mean_d = s * inv_n
        var = tl.maximum(q * inv_n - mean_d * mean_d, 0.0)
        rstd = 1.0 / tl.sqrt(var + eps)
        mean = shift + mean_d

        y = (x - mean[:, None]) * rstd[:, None] * w[None, :] + b[None, :]
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

        BLOCK = min(4096, triton.next_power_of_2(N))
        target_chunks_per_row = max(1, triton.cdiv(1024, M))
        ITERS = max(1, min(8, N // (BLOCK * target_chunks_per_row)))
        num_chunks = triton.cdiv(N, BLOCK * ITERS)

        psum = torch.empty((M, num_chunks), device=x.device, dtype=torch.float32)
        psq = torch.empty((M, num_chunks), device=x.device, dtype=torch.float32)

        _ln_rowstats_kernel[(num_chunks, M)](
            x_c, psum, psq, N, num_chunks,
            BLOCK=BLOCK, ITERS=ITERS, num_warps=8)

        BLOCK_C = min(2048, triton.next_power_of_2(N))
        ROWS = min(4, triton.next_power_of_2(M))
        BLOCK_P = min(128, triton.next_power_of_2(num_chunks))
        _ln_colblock_apply_kernel[(triton.cdiv(N, BLOCK_C),)](
            x_c, w, b, y, psum, psq, M, N, num_chunks,
            1.0 / N, float(self.ln.eps),
            BLOCK_C=BLOCK_C, ROWS=ROWS, BLOCK_P=BLOCK_P, num_warps=8)
        return y.view(x.shape)