import torch
import torch.nn as nn
import triton
import triton.language as tl


@triton.jit
def _ln_partial_stats_kernel(x_ptr, psum_ptr, psq_ptr, N, num_chunks,
                             BLOCK: tl.constexpr, ITERS: tl.constexpr):
    chunk = tl.program_id(0)
    row = tl.program_id(1)
    row_base = x_ptr + row.to(tl.int64) * N
    # shift by the row's first element to avoid cancellation in E[x^2] - mean^2
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
def _ln_finalize_kernel(x_ptr, psum_ptr, psq_ptr, mean_ptr, rstd_ptr,
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
    var = q * inv_n - mean_d * mean_d
    var = tl.maximum(var, 0.0)
    rstd = 1.0 / tl.sqrt(var + eps)
    tl.store(mean_ptr + row, shift + mean_d)
    tl.store(rstd_ptr + row, rstd)


@triton.jit
def _ln_apply_kernel(x_ptr, w_ptr, b_ptr, y_ptr, mean_ptr, rstd_ptr, N,
                     BLOCK: tl.constexpr):
    pid = tl.program_id(0)
    row = tl.program_id(1)
    cols = pid.to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = cols < N
    mean = tl.load(mean_ptr + row)
    rstd = tl.load(rstd_ptr + row)
    base = row.to(tl.int64) * N
    x = tl.load(x_ptr + base + cols, mask=mask, other=0.0).to(tl.float32)
    w = tl.load(w_ptr + cols, mask=mask, other=0.0).to(tl.float32)
    b = tl.load(b_ptr + cols, mask=mask, other=0.0).to(tl.float32)
    y = (x - mean) * rstd * w + b
    tl.store(y_ptr + base + cols, y.to(y_ptr.dtype.element_ty), mask=mask)


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
        # aim for >= ~1024 programs in the stats pass, at most 8 blocks per program
        target_chunks_per_row = max(1, triton.cdiv(1024, M))
        ITERS = max(1, min(8, N // (BLOCK * target_chunks_per_row)))
        CHUNK = BLOCK * ITERS
        num_chunks = triton.cdiv(N, CHUNK)

        psum = torch.empty((M, num_chunks), device=x.device, dtype=torch.float32)
        psq = torch.empty((M, num_chunks), device=x.device, dtype=torch.float32)
        mean = torch.empty((M,), device=x.device, dtype=torch.float32)
        rstd = torch.empty((M,), device=x.device, dtype=torch.float32)

        _ln_partial_stats_kernel[(num_chunks, M)](
            x_c, psum, psq, N, num_chunks,
            BLOCK=BLOCK, ITERS=ITERS, num_warps=8)

        BLOCK_P = min(1024, triton.next_power_of_2(num_chunks))
        _ln_finalize_kernel[(M,)](
            x_c, psum, psq, mean, rstd, N, num_chunks,
            1.0 / N, float(self.ln.eps), BLOCK_P=BLOCK_P, num_warps=4)

        _ln_apply_kernel[(triton.cdiv(N, BLOCK), M)](
            x_c, w, b, y, mean, rstd, N, BLOCK=BLOCK, num_warps=8)
        return y.view(x.shape)