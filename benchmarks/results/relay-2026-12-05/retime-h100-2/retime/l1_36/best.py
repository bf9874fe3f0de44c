# kernelsearch: best kernel for problem - attempt 2, NVIDIA H100 80GB HBM3, fp32, 2.68x eager, 1.06x torch.compile (re-timed at the original sizes)
import torch
import torch.nn as nn
import triton
import triton.language as tl


@triton.jit
def rmsnorm_fused_kernel(
    x_ptr, y_ptr,
    C, S, n_sblocks,
    eps,
    BLOCK_C: tl.constexpr,
    BLOCK_S: tl.constexpr,
    SINGLE_TILE: tl.constexpr,
):
    pid = tl.program_id(0)
    b = pid // n_sblocks
    sb = pid % n_sblocks

    offs_s = sb * BLOCK_S + tl.arange(0, BLOCK_S)
    mask_s = offs_s < S
    offs_c = tl.arange(0, BLOCK_C)
    base = b.to(tl.int64) * C * S
    xb = x_ptr + base
    yb = y_ptr + base

    if SINGLE_TILE:
        # whole feature dimension in registers: read once, write once
        mask_c = offs_c < C
        offs = offs_c[:, None] * S + offs_s[None, :]
        mask = mask_c[:, None] & mask_s[None, :]
        v = tl.load(xb + offs, mask=mask, other=0.0).to(tl.float32)
        ss = tl.sum(v * v, axis=0)
        rms = tl.sqrt(ss / C + eps)
        tl.store(yb + offs, v / rms[None, :], mask=mask)
    else:
        # very large C: chunk over features (second read hits L2 mostly)
        acc = tl.zeros([BLOCK_S], dtype=tl.float32)
        for c0 in range(0, C, BLOCK_C):
            cc = c0 + offs_c
            mask = (cc < C)[:, None] & mask_s[None, :]
            offs = cc[:, None] * S + offs_s[None, :]
            v = tl.load(xb + offs, mask=mask, other=0.0).to(tl.float32)
            acc += tl.sum(v * v, axis=0)
        rms = tl.sqrt(acc / C + eps)
        for c0 in range(0, C, BLOCK_C):
            cc = c0 + offs_c
            mask = (cc < C)[:, None] & mask_s[None, :]
            offs = cc[:, None] * S + offs_s[None, :]
            v = tl.load(xb + offs, mask=mask, other=0.0).to(tl.float32)
            tl.store(yb + offs, v / rms[None, :], mask=mask)


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
        MAX_TILE = 4096  # elements held in registers per program
        if c_pow2 <= 256:
            BLOCK_C = c_pow2
            BLOCK_S = max(16, min(triton.next_power_of_2(S), MAX_TILE // BLOCK_C))
            single = True
        else:
            BLOCK_C = 32
            BLOCK_S = min(triton.next_power_of_2(S), 128)
            single = False
        BLOCK_S = max(1, min(BLOCK_S, max(1, triton.next_power_of_2(S))))
        n_sblocks = triton.cdiv(S, BLOCK_S)
        grid = (B * n_sblocks,)
        rmsnorm_fused_kernel[grid](
            x, y, C, S, n_sblocks, float(self.eps),
            BLOCK_C=BLOCK_C, BLOCK_S=BLOCK_S, SINGLE_TILE=single,
            num_warps=4,
        )
        return y
