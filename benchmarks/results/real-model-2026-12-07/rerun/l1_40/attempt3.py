import torch
import torch.nn as nn
import triton
import triton.language as tl


@triton.jit
def _ln_stats_kernel(x_ptr, pmean_ptr, pm2_ptr, N, NUM_CHUNKS,
                     TILE: tl.constexpr, TILES: tl.constexpr):
    # one program = one chunk of TILES*TILE contiguous elements of one row.
    # Each tile's (mean, M2) is exact (tile lives in registers); tiles are merged
    # with Chan's formula, so only 2 floats per chunk leave the kernel.
    chunk = tl.program_id(0)
    row = tl.program_id(1)
    base = row.to(tl.int64) * N
    cstart = chunk * (TILE * TILES)
    n_a = 0.0
    mean_a = 0.0
    m2_a = 0.0
    for t in range(0, TILES):
        start = cstart + t * TILE
        offs = start + tl.arange(0, TILE)
        mask = offs < N
        x = tl.load(x_ptr + base + offs, mask=mask, other=0.0).to(tl.float32)
        n_b = tl.minimum(tl.maximum(N - start, 0), TILE).to(tl.float32)
        mean_b = tl.sum(x, axis=0) / tl.maximum(n_b, 1.0)
        d = tl.where(mask, x - mean_b, 0.0)
        m2_b = tl.sum(d * d, axis=0)
        n = n_a + n_b
        delta = mean_b - mean_a
        frac = n_b / tl.maximum(n, 1.0)
        mean_a = mean_a + delta * frac
        m2_a = m2_a + m2_b + delta * delta * n_a * frac
        n_a = n
    idx = row * NUM_CHUNKS + chunk
    tl.store(pmean_ptr + idx, mean_a)
    tl.store(pm2_ptr + idx, m2_a)


@triton.jit
def _ln_apply_kernel(x_ptr, w_ptr, b_ptr, y_ptr, pmean_ptr, pm2_ptr, M, N, NUM_CHUNKS, eps,
                     CHUNK: tl.constexpr, BLOCK_C: tl.constexpr, BLOCK: tl.constexpr):
    # one program = one contiguous column slice, walked over every row, so gamma/beta
    # are read once in total. Row statistics are finished here from the per-chunk
    # partials (a few hundred bytes per row, L2 resident): no separate combine launch.
    pid = tl.program_id(0)
    offs = pid * BLOCK + tl.arange(0, BLOCK)
    mask = offs < N
    w = tl.load(w_ptr + offs, mask=mask, other=0.0).to(tl.float32)
    b = tl.load(b_ptr + offs, mask=mask, other=0.0).to(tl.float32)
    Nf = N.to(tl.float32)
    cidx = tl.arange(0, BLOCK_C)
    cm = cidx < NUM_CHUNKS
    nc = tl.where(cm, tl.minimum(tl.maximum(N - cidx * CHUNK, 0), CHUNK).to(tl.float32), 0.0)
    for r in range(0, M):
        pbase = r * NUM_CHUNKS
        pm = tl.load(pmean_ptr + pbase + cidx, mask=cm, other=0.0)
        p2 = tl.load(pm2_ptr + pbase + cidx, mask=cm, other=0.0)
        mean = tl.sum(nc * pm, axis=0) / Nf
        dm = pm - mean
        var = tl.sum(tl.where(cm, p2 + nc * dm * dm, 0.0), axis=0) / Nf
        rstd = 1.0 / tl.sqrt(var + eps)
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
        N = 1
        for s in tuple(self.ln.normalized_shape):
            N *= s
        M = x.numel() // N
        y = torch.empty_like(x)

        TILE = 4096
        n_tiles = triton.cdiv(N, TILE)
        # about 128 chunks per row: enough programs to fill the GPU, few partials
        TILES = triton.next_power_of_2(max(1, n_tiles // 128))
        CHUNK = TILE * TILES
        NUM_CHUNKS = triton.cdiv(N, CHUNK)
        pmean = torch.empty(M * NUM_CHUNKS, device=x.device, dtype=torch.float32)
        pm2 = torch.empty(M * NUM_CHUNKS, device=x.device, dtype=torch.float32)

        _ln_stats_kernel[(NUM_CHUNKS, M)](
            x, pmean, pm2, N, NUM_CHUNKS, TILE=TILE, TILES=TILES, num_warps=8)

        w = self.ln.weight
        b = self.ln.bias
        if w is None:
            w = torch.ones(N, device=x.device, dtype=torch.float32)
        if b is None:
            b = torch.zeros(N, device=x.device, dtype=torch.float32)
        w = w.contiguous().view(-1)
        b = b.contiguous().view(-1)

        BLOCK = 2048
        BLOCK_C = triton.next_power_of_2(NUM_CHUNKS)
        _ln_apply_kernel[(triton.cdiv(N, BLOCK),)](
            x, w, b, y, pmean, pm2, M, N, NUM_CHUNKS, float(self.ln.eps),
            CHUNK=CHUNK, BLOCK_C=BLOCK_C, BLOCK=BLOCK, num_warps=4)
        return y