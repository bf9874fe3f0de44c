import torch
import torch.nn as nn
import triton
import triton.language as tl


@triton.jit
def rmsnorm_fused_kernel(
    x_ptr, y_ptr,
    C, S, n_sblocks,
    inv_C, eps,
    BLOCK_C: tl.constexpr,
    BLOCK_S: tl.constexpr,
    SINGLE_TILE: tl.constexpr,
):
    pid = tl.program_id(0)
    b = pid // n_sblocks
    sb = pid % n_sblocks

    offs_s = sb * BLOCK_S + tl.arange(0, BLOCK_S)
    offs_s = tl.max_contiguous(tl.multiple_of(offs_s, BLOCK_S), BLOCK_S)
    mask_s = offs_s < S
    offs_c = tl.arange(0, BLOCK_C)
    base = b.to(tl.int64) * C * S
    xb = x_ptr + base
    yb = y_ptr + base

    if SINGLE_TILE:
        # One pass: the [C, BLOCK_S] tile lives in registers between the
        # reduction and the scaling; x read once, y written once.
        mask = (offs_c < C)[:, None] & mask_s[None, :]
        offs = offs_c[:, None] * S + offs_s[None, :]
        v = tl.load(xb + offs, mask=mask, other=0.0,
                    eviction_policy="evict_first").to(tl.float32)
        ss = tl.sum(v * v, axis=0)                       # [BLOCK_S]
        inv_rms = 1.0 / tl.sqrt(ss * inv_C + eps)       # one divide per column
        tl.store(yb + offs, v * inv_rms[None, :], mask=mask,
                 eviction_policy="evict_first")
    else:
        # Huge C only: two passes over feature chunks (second read mostly from L2).
        acc = tl.zeros([BLOCK_S], dtype=tl.float32)
        for c0 in range(0, C, BLOCK_C):
            cc = c0 + offs_c
            mask = (cc < C)[:, None] & mask_s[None, :]
            offs = cc[:, None] * S + offs_s[None, :]
            v = tl.load(xb + offs, mask=mask, other=0.0).to(tl.float32)
            acc += tl.sum(v * v, axis=0)
        inv_rms = 1.0 / tl.sqrt(acc * inv_C + eps)
        for c0 in range(0, C, BLOCK_C):
            cc = c0 + offs_c
            mask = (cc < C)[:, None] & mask_s[None, :]
            offs = cc[:, None] * S + offs_s[None, :]
            v = tl.load(xb + offs, mask=mask, other=0.0,
                        eviction_policy="evict_first").to(tl.float32)
            tl.store(yb + offs, v * inv_rms[None, :], mask=mask,
                     eviction_policy="evict_first")


class ModelNew(nn.Module):
    def __init__(self, num_features: int, eps: float = 1e-5):
        super().__init__()
        self.num_features = num_features
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.contiguous()
        B = x.shape[0]
        C = x.shape[1]
        S = 1
        for d in x.shape[2:]:
            S *= d
        y = torch.empty_like(x)
        if x.numel() == 0:
            return y

        c_pow2 = triton.next_power_of_2(C)
        s_pow2 = triton.next_power_of_2(S)
        if c_pow2 <= 1024:
            # ~4K fp32 per program at 4 warps, ~8K-16K at 8 warps for wide C
            BLOCK_C = c_pow2
            tile = 4096 if c_pow2 <= 128 else 8192
            BLOCK_S = max(16, min(s_pow2, tile // BLOCK_C))
            single = True
            num_warps = 4 if BLOCK_C * BLOCK_S <= 4096 else 8
        else:
            BLOCK_C = 32
            BLOCK_S = max(16, min(s_pow2, 128))
            single = False
            num_warps = 4
        n_sblocks = triton.cdiv(S, BLOCK_S)
        grid = (B * n_sblocks,)
        rmsnorm_fused_kernel[grid](
            x, y, C, S, n_sblocks, 1.0 / C, float(self.eps),
            BLOCK_C=BLOCK_C, BLOCK_S=BLOCK_S, SINGLE_TILE=single,
            num_warps=num_warps,
        )
        return y