import torch
import torch.nn as nn
import triton
import triton.language as tl


@triton.jit
def _ln_stats_kernel(x_ptr, pmean_ptr, pm2_ptr, N, NUM_CHUNKS,
                     TILE: tl.constexpr, TILES: tl.constexpr):
    # One program streams TILES contiguous tiles of one row (unit stride, 16 floats
    # per thread per tile -> 128-bit loads). Per-tile (mean, M2) is exact; tiles are
    # merged with Chan's formula.
    chunk = tl.program_id(0)
    row = tl.program_id(1)
    base = row.to(tl.int64) * N
    cstart = chunk * (TILE * TILES)
    lane = tl.arange(0, TILE)
    n_a = 0.0
    mean_a = 0.0
    m2_a = 0.0
    for t in range(0, TILES):
        start = cstart + t * TILE
        offs = start + lane
        mask = offs < N
        x = tl.load(x_ptr + base + offs, mask=mask, other=0.0)
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
def _ln_apply2d_kernel(x_ptr, w_ptr, b_ptr, y_ptr, pmean_ptr, pm2_ptr, M, N, NUM_CHUNKS, eps,
                       CHUNK: tl.constexpr, BLOCK_C: tl.constexpr,
                       BLOCK_R: tl.constexpr, BLOCK: tl.constexpr):
    # 2D tile [BLOCK_R rows, BLOCK contiguous columns]: the column slice of gamma/beta
    # is loaded once and broadcast over rows; every row segment is a contiguous,
    # 16-byte-aligned run, so loads/stores vectorize. Row statistics for the BLOCK_R
    # rows are finished in a vector prologue from the per-chunk partials.
    pid = tl.program_id(0)
    cols = pid * BLOCK + tl.arange(0, BLOCK)
    cmask = cols < N
    w = tl.load(w_ptr + cols, mask=cmask, other=0.0)
    b = tl.load(b_ptr + cols, mask=cmask, other=0.0)
    Nf = N.to(tl.float32)
    cidx = tl.arange(0, BLOCK_C)
    chm = cidx < NUM_CHUNKS
    nc = tl.where(chm, tl.minimum(tl.maximum(N - cidx * CHUNK, 0), CHUNK).to(tl.float32), 0.0)
    for r0 in range(0, M, BLOCK_R):
        rows = r0 + tl.arange(0, BLOCK_R)
        rmask = rows < M
        pmask = rmask[:, None] & chm[None, :]
        pofs = rows[:, None] * NUM_CHUNKS + cidx[None, :]
        pm = tl.load(pmean_ptr + pofs, mask=pmask, other=0.0)
        p2 = tl.load(pm2_ptr + pofs, mask=pmask, other=0.0)
        mean = tl.sum(nc[None, :] * pm, axis=1) / Nf
        dm = pm - mean[:, None]
        var = tl.sum(tl.where(pmask, p2 + nc[None, :] * dm * dm, 0.0), axis=1) / Nf
        rstd = 1.0 / tl.sqrt(var + eps)
        xmask = rmask[:, None] & cmask[None, :]
        xofs = rows[:, None].to(tl.int64) * N + cols[None, :]
        x = tl.load(x_ptr + xofs, mask=xmask, other=0.0)
        y = (x - mean[:, None]) * rstd[:, None] * w[None, :] + b[None, :]
        tl.store(y_ptr + xofs, y, mask=xmask)


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
        # about 64 chunks per row: keeps the partials small for the apply prologue
        TILES = triton.next_power_of_2(max(1, n_tiles // 64))
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

        BLOCK_R = min(16, triton.next_power_of_2(M))
        BLOCK = max(256, 16384 // BLOCK_R)
        BLOCK_C = triton.next_power_of_2(NUM_CHUNKS)
        _ln_apply2d_kernel[(triton.cdiv(N, BLOCK),)](
            x, w, b, y, pmean, pm2, M, N, NUM_CHUNKS, float(self.ln.eps),
            CHUNK=CHUNK, BLOCK_C=BLOCK_C, BLOCK_R=BLOCK_R, BLOCK=BLOCK, num_warps=16)
        return y