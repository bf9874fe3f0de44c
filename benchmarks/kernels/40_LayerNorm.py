"""KernelBench L1 40_LayerNorm: nn.LayerNorm over the trailing `normalized_shape` dims, with its weight/bias.

At full size there are only 16 rows of 64*256*256 = 4.2M elements, so one program per row would use 16 of
132 SMs. The row is cut into chunks instead:
  1. chunk_stats: each program loads one chunk once and stores its mean and M2 (sum of squared deviations
     from the chunk mean: no E[x^2] - mean^2 cancellation);
  2. row_stats: one program per row merges its chunks exactly: mean = sum(n_i mean_i) / n,
     M2 = sum(M2_i + n_i (mean_i - mean)^2); it stores mean and 1/sqrt(M2/n + eps);
  3. normalize: y = (x - mean) * rstd * weight + bias, one program per chunk.
x is read twice and y written once.
"""
import math

import torch
import torch.nn as nn
import triton
import triton.language as tl

CHUNK = 4096
STATS_BLOCK = 1024


@triton.jit
def chunk_stats_kernel(x_ptr, chunk_mean_ptr, chunk_m2_ptr, row_len, chunks_per_row, CHUNK: tl.constexpr):
    pid = tl.program_id(0).to(tl.int64)
    row = pid // chunks_per_row
    cols = (pid % chunks_per_row) * CHUNK + tl.arange(0, CHUNK)
    mask = cols < row_len
    x = tl.load(x_ptr + row * row_len + cols, mask=mask, other=0.0).to(tl.float32)
    count = tl.minimum(row_len - (pid % chunks_per_row) * CHUNK, CHUNK).to(tl.float32)
    mean = tl.sum(x, axis=0) / count
    dev = tl.where(mask, x - mean, 0.0)
    tl.store(chunk_mean_ptr + pid, mean)
    tl.store(chunk_m2_ptr + pid, tl.sum(dev * dev, axis=0))


@triton.jit
def row_stats_kernel(chunk_mean_ptr, chunk_m2_ptr, mean_ptr, rstd_ptr, row_len, chunks_per_row, eps,
                     CHUNK: tl.constexpr, BLOCK: tl.constexpr):
    row = tl.program_id(0).to(tl.int64)
    first = row * chunks_per_row
    lane = tl.arange(0, BLOCK)
    weighted = tl.zeros((BLOCK,), tl.float32)
    for c0 in range(0, chunks_per_row, BLOCK):
        c = c0 + lane
        mask = c < chunks_per_row
        n_c = tl.minimum(row_len - c * CHUNK, CHUNK).to(tl.float32)
        weighted += tl.where(mask, n_c * tl.load(chunk_mean_ptr + first + c, mask=mask, other=0.0), 0.0)
    mean = tl.sum(weighted, axis=0) / row_len
    m2 = tl.zeros((BLOCK,), tl.float32)
    for c0 in range(0, chunks_per_row, BLOCK):
        c = c0 + lane
        mask = c < chunks_per_row
        n_c = tl.minimum(row_len - c * CHUNK, CHUNK).to(tl.float32)
        d = tl.load(chunk_mean_ptr + first + c, mask=mask, other=0.0) - mean
        m2 += tl.where(mask, tl.load(chunk_m2_ptr + first + c, mask=mask, other=0.0) + n_c * d * d, 0.0)
    var = tl.sum(m2, axis=0) / row_len
    tl.store(mean_ptr + row, mean)
    tl.store(rstd_ptr + row, 1.0 / tl.sqrt(var + eps))


@triton.jit
def normalize_kernel(x_ptr, w_ptr, b_ptr, mean_ptr, rstd_ptr, y_ptr, row_len, chunks_per_row,
                     HAS_WEIGHT: tl.constexpr, HAS_BIAS: tl.constexpr, CHUNK: tl.constexpr):
    pid = tl.program_id(0).to(tl.int64)
    row = pid // chunks_per_row
    cols = (pid % chunks_per_row) * CHUNK + tl.arange(0, CHUNK)
    mask = cols < row_len
    x = tl.load(x_ptr + row * row_len + cols, mask=mask).to(tl.float32)
    y = (x - tl.load(mean_ptr + row)) * tl.load(rstd_ptr + row)
    if HAS_WEIGHT:
        y = y * tl.load(w_ptr + cols, mask=mask).to(tl.float32)
    if HAS_BIAS:
        y = y + tl.load(b_ptr + cols, mask=mask).to(tl.float32)
    tl.store(y_ptr + row * row_len + cols, y.to(y_ptr.dtype.element_ty), mask=mask)


class ModelNew(nn.Module):
    def __init__(self, normalized_shape: tuple):
        super().__init__()
        # the same module as the reference's, kept only for its parameters (weight, bias) and eps
        self.ln = nn.LayerNorm(normalized_shape=normalized_shape)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.contiguous()
        row_len = math.prod(self.ln.normalized_shape)
        n_rows = x.numel() // row_len
        chunks_per_row = triton.cdiv(row_len, CHUNK)
        n_chunks = n_rows * chunks_per_row
        f32 = dict(dtype=torch.float32, device=x.device)
        chunk_mean, chunk_m2 = torch.empty(n_chunks, **f32), torch.empty(n_chunks, **f32)
        mean, rstd = torch.empty(n_rows, **f32), torch.empty(n_rows, **f32)
        chunk_stats_kernel[(n_chunks,)](x, chunk_mean, chunk_m2, row_len, chunks_per_row, CHUNK=CHUNK, num_warps=8)
        row_stats_kernel[(n_rows,)](chunk_mean, chunk_m2, mean, rstd, row_len, chunks_per_row, self.ln.eps,
                                    CHUNK=CHUNK, BLOCK=STATS_BLOCK, num_warps=4)
        y = torch.empty_like(x)
        weight, bias = self.ln.weight, self.ln.bias
        normalize_kernel[(n_chunks,)](
            x, weight if weight is not None else x, bias if bias is not None else x, mean, rstd, y,
            row_len, chunks_per_row, HAS_WEIGHT=weight is not None, HAS_BIAS=bias is not None,
            CHUNK=CHUNK, num_warps=8)
        return y
