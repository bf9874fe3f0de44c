import torch
import torch.nn as nn
import triton
import triton.language as tl


@triton.jit
def _ln_stats_finish_kernel(x_ptr, pmean_ptr, pm2_ptr, count_ptr, mean_ptr, rstd_ptr,
                            N, NUM_CHUNKS, eps,
                            TILE: tl.constexpr, TILES: tl.constexpr, BLOCK_C: tl.constexpr):
    # Phase 1 (every program): exact (mean, M2) of TILES contiguous tiles of one row,
    # merged with Chan's formula, written as one partial.
    # Phase 2 (the last program of the row to finish, found with an atomic ticket):
    # merges the row's partials in a fixed order and writes mean / rstd. The whole row
    # reduction therefore completes inside this one launch, deterministically.
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

    # acq_rel ticket: orders our partial stores before it and the final loads after it
    ticket = tl.atomic_add(count_ptr + row, 1, sem="acq_rel")
    if ticket == NUM_CHUNKS - 1:
        Nf = N.to(tl.float32)
        CHUNK = TILE * TILES
        acc = tl.zeros([BLOCK_C], dtype=tl.float32)
        for c0 in range(0, NUM_CHUNKS, BLOCK_C):
            cidx = c0 + tl.arange(0, BLOCK_C)
            cm = cidx < NUM_CHUNKS
            pm = tl.load(pmean_ptr + row * NUM_CHUNKS + cidx, mask=cm, other=0.0)
            nc = tl.where(cm, tl.minimum(tl.maximum(N - cidx * CHUNK, 0), CHUNK).to(tl.float32), 0.0)
            acc += nc * pm
        mean = tl.sum(acc, axis=0) / Nf
        acc2 = tl.zeros([BLOCK_C], dtype=tl.float32)
        for c0 in range(0, NUM_CHUNKS, BLOCK_C):
            cidx = c0 + tl.arange(0, BLOCK_C)
            cm = cidx < NUM_CHUNKS
            pm = tl.load(pmean_ptr + row * NUM_CHUNKS + cidx, mask=cm, other=0.0)
            p2 = tl.load(pm2_ptr + row * NUM_CHUNKS + cidx, mask=cm, other=0.0)
            nc = tl.where(cm, tl.minimum(tl.maximum(N - cidx * CHUNK, 0), CHUNK).to(tl.float32), 0.0)
            dm = pm - mean
            acc2 += tl.where(cm, p2 + nc * dm * dm, 0.0)
        var = tl.sum(acc2, axis=0) / Nf
        tl.store(mean_ptr + row, mean)
        tl.store(rstd_ptr + row, 1.0 / tl.sqrt(var + eps))


@triton.jit
def _ln_apply2d_kernel(x_ptr, w_ptr, b_ptr, y_ptr, mean_ptr, rstd_ptr, M, N,
                       BLOCK_R: tl.constexpr, BLOCK: tl.constexpr):
    # 2D tile [BLOCK_R rows, BLOCK contiguous columns]; gamma/beta slice loaded once and
    # broadcast; per-row mean/rstd are two small vector loads (no partial merging here).
    pid = tl.program_id(0)
    cols = pid * BLOCK + tl.arange(0, BLOCK)
    cmask = cols < N
    w = tl.load(w_ptr + cols, mask=cmask, other=0.0)
    b = tl.load(b_ptr + cols, mask=cmask, other=0.0)
    for r0 in range(0, M, BLOCK_R):
        rows = r0 + tl.arange(0, BLOCK_R)
        rmask = rows < M
        mean = tl.load(mean_ptr + rows, mask=rmask, other=0.0)
        rstd = tl.load(rstd_ptr + rows, mask=rmask, other=0.0)
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
        dev = x.device
        y = torch.empty_like(x)

        num_sms = 132
        if x.is_cuda:
            num_sms = torch.cuda.get_device_properties(dev).multi_processor_count
        TILE = 4096
        n_tiles = triton.cdiv(N, TILE)
        target_programs = num_sms * 8
        chunks_per_row = max(1, min(n_tiles, triton.next_power_of_2(triton.cdiv(target_programs, M))))
        chunks_per_row = min(chunks_per_row, 256)
        TILES = triton.cdiv(n_tiles, chunks_per_row)
        NUM_CHUNKS = triton.cdiv(N, TILE * TILES)

        pmean = torch.empty(M * NUM_CHUNKS, device=dev, dtype=torch.float32)
        pm2 = torch.empty(M * NUM_CHUNKS, device=dev, dtype=torch.float32)
        tickets = torch.zeros(M, device=dev, dtype=torch.int32)
        mean = torch.empty(M, device=dev, dtype=torch.float32)
        rstd = torch.empty(M, device=dev, dtype=torch.float32)

        BLOCK_C = min(1024, triton.next_power_of_2(NUM_CHUNKS))
        _ln_stats_finish_kernel[(NUM_CHUNKS, M)](
            x, pmean, pm2, tickets, mean, rstd, N, NUM_CHUNKS, float(self.ln.eps),
            TILE=TILE, TILES=TILES, BLOCK_C=BLOCK_C, num_warps=8)

        w = self.ln.weight
        b = self.ln.bias
        if w is None:
            w = torch.ones(N, device=dev, dtype=torch.float32)
        if b is None:
            b = torch.zeros(N, device=dev, dtype=torch.float32)
        w = w.contiguous().view(-1)
        b = b.contiguous().view(-1)

        BLOCK_R = min(8, triton.next_power_of_2(M))
        BLOCK = max(1024, 8192 // BLOCK_R)
        _ln_apply2d_kernel[(triton.cdiv(N, BLOCK),)](
            x, w, b, y, mean, rstd, M, N, BLOCK_R=BLOCK_R, BLOCK=BLOCK, num_warps=8)
        return y