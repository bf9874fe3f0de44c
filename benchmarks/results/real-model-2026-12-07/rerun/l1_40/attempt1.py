import torch
import torch.nn as nn
import triton
import triton.language as tl


@triton.jit
def _ln_partial_stats_kernel(x_ptr, pmean_ptr, pm2_ptr, N, NUM_CHUNKS,
                             BLOCK: tl.constexpr):
    chunk = tl.program_id(0)
    row = tl.program_id(1)
    start = chunk * BLOCK
    offs = start + tl.arange(0, BLOCK)
    mask = offs < N
    base = row.to(tl.int64) * N
    x = tl.load(x_ptr + base + offs, mask=mask, other=0.0).to(tl.float32)
    cnt = tl.minimum(N - start, BLOCK).to(tl.float32)
    mean_c = tl.sum(x, axis=0) / cnt
    d = tl.where(mask, x - mean_c, 0.0)
    m2_c = tl.sum(d * d, axis=0)
    idx = row * NUM_CHUNKS + chunk
    tl.store(pmean_ptr + idx, mean_c)
    tl.store(pm2_ptr + idx, m2_c)


@triton.jit
def _ln_combine_kernel(pmean_ptr, pm2_ptr, mean_ptr, rstd_ptr, N, NUM_CHUNKS, eps,
                       CHUNK: tl.constexpr, BLOCK_C: tl.constexpr):
    row = tl.program_id(0)
    base = row * NUM_CHUNKS
    Nf = N.to(tl.float32)
    # pass 1: global mean = sum(n_c * mean_c) / N
    acc = tl.zeros([BLOCK_C], dtype=tl.float32)
    for c0 in range(0, NUM_CHUNKS, BLOCK_C):
        cidx = c0 + tl.arange(0, BLOCK_C)
        cm = cidx < NUM_CHUNKS
        mc = tl.load(pmean_ptr + base + cidx, mask=cm, other=0.0)
        nc = tl.minimum(N - cidx * CHUNK, CHUNK).to(tl.float32)
        nc = tl.where(cm, nc, 0.0)
        acc += nc * mc
    mean = tl.sum(acc, axis=0) / Nf
    # pass 2: M2 = sum(M2_c) + sum(n_c * (mean_c - mean)^2)
    acc2 = tl.zeros([BLOCK_C], dtype=tl.float32)
    for c0 in range(0, NUM_CHUNKS, BLOCK_C):
        cidx = c0 + tl.arange(0, BLOCK_C)
        cm = cidx < NUM_CHUNKS
        mc = tl.load(pmean_ptr + base + cidx, mask=cm, other=0.0)
        m2 = tl.load(pm2_ptr + base + cidx, mask=cm, other=0.0)
        nc = tl.minimum(N - cidx * CHUNK, CHUNK).to(tl.float32)
        nc = tl.where(cm, nc, 0.0)
        dm = mc - mean
        acc2 += tl.where(cm, m2 + nc * dm * dm, 0.0)
    var = tl.sum(acc2, axis=0) / Nf
    rstd = 1.0 / tl.sqrt(var + eps)
    tl.store(mean_ptr + row, mean)
    tl.store(rstd_ptr + row, rstd)


@triton.jit
def _ln_apply_kernel(x_ptr, w_ptr, b_ptr, y_ptr, mean_ptr, rstd_ptr, M, N,
                     BLOCK: tl.constexpr):
    pid = tl.program_id(0)
    offs = pid * BLOCK + tl.arange(0, BLOCK)
    mask = offs < N
    w = tl.load(w_ptr + offs, mask=mask, other=0.0).to(tl.float32)
    b = tl.load(b_ptr + offs, mask=mask, other=0.0).to(tl.float32)
    for r in range(0, M):
        mean = tl.load(mean_ptr + r)
        rstd = tl.load(rstd_ptr + r)
        base = r * N
        x = tl.load(x_ptr + base + offs, mask=mask, other=0.0).to(tl.float32)
        y = (x - mean) * rstd * w + b
        tl.store(y_ptr + base + offs, y, mask=mask)


class ModelNew(nn.Module):
    def __init__(self, normalized_shape: tuple):
        super().__init__()
        self.ln = nn.LayerNorm(normalized_shape=normalized_shape)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.contiguous()
        nshape = tuple(self.ln.normalized_shape)
        N = 1
        for s in nshape:
            N *= s
        M = x.numel() // N
        y = torch.empty_like(x)

        STATS_BLOCK = 4096
        NUM_CHUNKS = triton.cdiv(N, STATS_BLOCK)
        pmean = torch.empty(M * NUM_CHUNKS, device=x.device, dtype=torch.float32)
        pm2 = torch.empty(M * NUM_CHUNKS, device=x.device, dtype=torch.float32)
        mean = torch.empty(M, device=x.device, dtype=torch.float32)
        rstd = torch.empty(M, device=x.device, dtype=torch.float32)

        _ln_partial_stats_kernel[(NUM_CHUNKS, M)](
            x, pmean, pm2, N, NUM_CHUNKS, BLOCK=STATS_BLOCK, num_warps=8)

        BLOCK_C = min(1024, triton.next_power_of_2(NUM_CHUNKS))
        _ln_combine_kernel[(M,)](
            pmean, pm2, mean, rstd, N, NUM_CHUNKS, float(self.ln.eps),
            CHUNK=STATS_BLOCK, BLOCK_C=BLOCK_C, num_warps=4)

        w = self.ln.weight
        b = self.ln.bias
        if w is None:
            w = torch.ones(N, device=x.device, dtype=torch.float32)
        if b is None:
            b = torch.zeros(N, device=x.device, dtype=torch.float32)
        w = w.contiguous().view(-1)
        b = b.contiguous().view(-1)

        APPLY_BLOCK = 2048
        _ln_apply_kernel[(triton.cdiv(N, APPLY_BLOCK),)](
            x, w, b, y, mean, rstd, M, N, BLOCK=APPLY_BLOCK, num_warps=4)
        return y