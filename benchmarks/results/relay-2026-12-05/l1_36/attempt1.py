import torch
import torch.nn as nn
import triton
import triton.language as tl


@triton.jit
def rmsnorm_channel_kernel(
    x_ptr, y_ptr,
    C, S, n_sblocks,
    eps,
    BLOCK_S: tl.constexpr,
):
    pid = tl.program_id(0)
    b = pid // n_sblocks
    sb = pid % n_sblocks

    offs = sb * BLOCK_S + tl.arange(0, BLOCK_S)
    mask = offs < S
    base = b.to(tl.int64) * C * S

    # pass 1: sum of squares over the feature dimension
    acc = tl.zeros([BLOCK_S], dtype=tl.float32)
    for c in range(0, C):
        v = tl.load(x_ptr + base + c * S + offs, mask=mask, other=0.0).to(tl.float32)
        acc += v * v

    rms = tl.sqrt(acc / C + eps)

    # pass 2: normalize
    for c in range(0, C):
        ptr_off = base + c * S + offs
        v = tl.load(x_ptr + ptr_off, mask=mask, other=0.0).to(tl.float32)
        tl.store(y_ptr + ptr_off, v / rms, mask=mask)


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
        BLOCK_S = 1024
        n_sblocks = triton.cdiv(S, BLOCK_S)
        grid = (B * n_sblocks,)
        rmsnorm_channel_kernel[grid](
            x, y, C, S, n_sblocks, float(self.eps),
            BLOCK_S=BLOCK_S, num_warps=4,
        )
        return y