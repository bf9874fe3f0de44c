import torch
import torch.nn as nn
import triton
import triton.language as tl


@triton.jit
def _ln_welford_stats_kernel(x_ptr, pmean_ptr, pm2_ptr, N, NUM_CHUNKS,
                             TILE: tl.constexpr, TILES: tl.constexpr):
    # One program streams TILES contiguous tiles of one row. Each thread keeps its own
    # Welford state (count, mean, M2) for its TILE/(32*num_warps) lanes, so the loop body
    # is pure elementwise work on wide contiguous loads; the only cross-thread
    # reduction happens once, at the end of the chunk.
    chunk = tl.program_id(0)
    row = tl.program_id(1)
    cstart = chunk * (TILE * TILES)
    lane = tl.arange(0, TILE)
    ptrs = x_ptr + row.to(tl.int64) * N + cstart + lane
    rel = cstart + lane
    cnt_v = tl.zeros([TILE], dtype=tl.float32)
    mean_v = tl.zeros([TILE], dtype=tl.float32)
    m2_v = tl.zeros([TILE], dtype=tl.float32)
    for t in range(0, TILES):
        mask = rel < N
        x = tl.load(ptrs, mask=mask, other=0.0)
        cnt_new = cnt_v + tl.where(mask, 1.0, 0.0)
        delta = x - mean_v
        mean_v = mean_v + tl.where(mask, delta / tl.maximum(cnt_new, 1.0), 0.0)
        m2_v = m2_v + tl.where(mask, delta * (x - mean_v), 0.0)
        cnt_v = cnt_new
        ptrs += TILE
        rel += TILE
    n = tl.sum(cnt_v, axis=0)
    mean = tl.sum(cnt_v * mean_v, axis=0) / tl.maximum(n, 1.0)
    dm = mean_v - mean
    m2 = tl.sum(m2_v + cnt_v * dm * dm, axis=0)
    idx = row * NUM_CHUNKS + chunk
    tl.store(pmean_ptr + idx, mean)
    tl.store(pm2_ptr + idx, m2)


@triton.jit
def _ln_apply_rows_kernel(x_ptr, w_ptr, b_ptr, y_ptr, pmean_ptr, pm2_ptr, M, N, NUM_CHUNKS, eps,
                          CHUNK: tl.constexpr, BLOCK_C: tl.constexpr, BLOCK: tl.constexpr):
    # One program = one contiguous column slice (BLOCK floats, 16 per thread), walked down
    # all rows by pointer increments; gamma/beta are read once in total.
    pid = tl.program_id(0)
    offs = pid * BLOCK + tl.arange(0, BLOCK)
    mask = offs < N
    w = tl.load(w_ptr + offs, mask=mask, other=0.0)
    b = tl.load(b_ptr + offs, mask=mask, other=0.0)
    Nf = N.to(tl.float32)
    cidx = tl.arange(0, BLOCK_C)
    cm = cidx < NUM_CHUNKS
    nc = tl.where(cm, tl.minimum(tl.maximum(N - cidx * CHUNK, 0), CHUNK).to(tl.float32), 0.0)
    xp = x_ptr + offs
    yp = y_ptr + offs
    pmp = pmean_ptr + cidx
    p2p = pm2_ptr + cidx
    for r in range(0, M):
        pm = tl.load(pmp, mask=cm, other=0.0)
        p2 = tl.load(p2p, mask=cm, other=0.0)
        mean = tl.sum(nc * pm, axis=0) / Nf
        dm = pm - mean
        var = tl.sum(tl.where(cm, p2 + nc * dm * dm, 0.0), axis=0) / Nf
        rstd = 1.0 / tl.sqrt(var + eps)
        x = tl.load(xp, mask=mask, other=0.0)
        tl.store(yp, (x - mean) * rstd * w + b, mask=mask)
        xp += N
        yp += N
        pmp += NUM_CHUNKS
        p2p += NUM_CHUNKS


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

        TILE = 2048                      # 8 floats per thread per tile at 8 warps
        n_tiles = triton.cdiv(N, TILE)
        TILES = triton.next_power_of_2(max(1, n_tiles // 128))
        CHUNK = TILE * TILES
        NUM_CHUNKS = triton.cdiv(N, CHUNK)
        pmean = torch.empty(M * NUM_CHUNKS, device=x.device, dtype=torch.float32)
        pm2 = torch.empty(M * NUM_CHUNKS, device=x.device, dtype=torch.float32)

        _ln_welford_stats_kernel[(NUM_CHUNKS, M)](
            x, pmean, pm2, N, NUM_CHUNKS, TILE=TILE, TILES=TILES, num_warps=8)

        w = self.ln.weight
        b = self.ln.bias
        if w is None:
            w = torch.ones(N, device=x.device, dtype=torch.float32)
        if b is None:
            b = torch.zeros(N, device=x.device, dtype=torch.float32)
        w = w.contiguous().view(-1)
        b = b.contiguous().view(-1)

        BLOCK = 4096
        BLOCK_C = triton.next_power_of_2(NUM_CHUNKS)
        _ln_apply_rows_kernel[(triton.cdiv(N, BLOCK),)](
            x, w, b, y, pmean, pm2, M, N, NUM_CHUNKS, float(self.ln.eps),
            CHUNK=CHUNK, BLOCK_C=BLOCK_C, BLOCK=BLOCK, num_warps=8)
        return y