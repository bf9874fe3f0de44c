import torch
import torch.nn as nn
import triton
import triton.language as tl


@triton.jit
def _ln_stats_kernel(x_ptr, psum_ptr, psq_ptr, M, N, num_chunks,
                     BLOCK: tl.constexpr, ITERS: tl.constexpr):
    pid = tl.program_id(0)
    row = pid % M
    # column chunks in descending order (rows fastest); the apply kernel walks
    # them ascending and finds the last-read data still in L2
    chunk = num_chunks - 1 - pid // M
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
def _ln_norm_kernel(x_ptr, w_ptr, b_ptr, y_ptr, psum_ptr, psq_ptr,
                    M, N, num_chunks, inv_n, eps,
                    BLOCK: tl.constexpr, BLOCK_P: tl.constexpr):
    pid = tl.program_id(0)
    row = pid % M
    cb = pid // M
    cols = cb.to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = cols < N
    row_base = row.to(tl.int64) * N
    # issue the streaming loads first
    x = tl.load(x_ptr + row_base + cols, mask=mask, other=0.0).to(tl.float32)
    w = tl.load(w_ptr + cols, mask=mask, other=0.0).to(tl.float32)
    b = tl.load(b_ptr + cols, mask=mask, other=0.0).to(tl.float32)

    # finish the row reduction from the per-chunk partials
    shift = tl.load(x_ptr + row_base).to(tl.float32)
    offs_p = tl.arange(0, BLOCK_P)
    acc_s = tl.zeros([BLOCK_P], dtype=tl.float32)
    acc_q = tl.zeros([BLOCK_P], dtype=tl.float32)
    pbase = row * num_chunks
    for start in range(0, num_chunks, BLOCK_P):
        idx = start + offs_p
        m = idx < num_chunks
        acc_s += tl.load(psum_ptr + pbase + idx, mask=m, other=0.0)
        acc_q += tl.load(psq_ptr + pbase + idx, mask=m, other=0.0)
    s = tl.sum(acc_s, axis=0)
    q = tl.sum(acc_q, axis=0)
    mean_d = s * inv_n
    var = tl.maximum(q * inv_n - mean_d * mean_d, 0.0)
    rstd = 1.0 / tl.sqrt(var + eps)
    mean = shift + mean_d

    y = (x - mean) * rstd * w + b
    tl.store(y_ptr + row_base + cols, y.to(y_ptr.dtype.element_ty), mask=mask)


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

        _ln_stats_kernel[(M * num_chunks,)](
            x_c, psum, psq, M, N, num_chunks,
            BLOCK=BLOCK, ITERS=ITERS, num_warps=8)

        BLOCK_P = min(256, triton.next_power_of_2(num_chunks))
        _ln_norm_kernel[(M * triton.cdiv(N, BLOCK),)](
            x_c, w, b, y, psum, psq, M, N, num_chunks,
            1.0 / N, float(self.ln.eps),
            BLOCK=BLOCK, BLOCK_P=BLOCK_P, num_warps=8)
        return y.view(x.shape)