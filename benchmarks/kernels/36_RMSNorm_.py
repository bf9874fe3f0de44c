"""KernelBench L1 36_RMSNorm_: y = x / sqrt(mean(x**2, dim=1) + eps) for x of shape (batch, features, *).

The reduction runs over the feature dimension, whose elements are `spatial` apart in memory. One program
takes a tile of (all features) x (BLOCK_S contiguous spatial positions): it sums squares over the features in
chunks of BLOCK_F, then reads the tile again to write the output. With 64 features a tile is 64 x 64 fp32 =
16 KiB, so the second read comes from L1/L2 and HBM sees about one read and one write per element.
"""
import torch
import torch.nn as nn
import triton
import triton.language as tl

BLOCK_S = 64  # 64 contiguous fp32 = 256 B per feature row of the tile: whole memory transactions


@triton.jit
def rms_normalize_kernel(x_ptr, y_ptr, n_features, spatial, eps,
                         BLOCK_F: tl.constexpr, BLOCK_S: tl.constexpr):
    # one flat grid axis (2**31 - 1 programs) rather than two: axis 1 would cap either count at 65535
    n_s_blocks = tl.cdiv(spatial, BLOCK_S)
    pid = tl.program_id(0).to(tl.int64)
    batch = pid // n_s_blocks
    s = (pid % n_s_blocks) * BLOCK_S + tl.arange(0, BLOCK_S)
    s_mask = s < spatial
    f_lane = tl.arange(0, BLOCK_F)
    base = batch * n_features * spatial  # 1.9e9 elements at full size: int64
    sum_sq = tl.zeros((BLOCK_S,), tl.float32)
    for f0 in range(0, n_features, BLOCK_F):
        f = f0 + f_lane
        offs = base + f[:, None].to(tl.int64) * spatial + s[None, :]
        mask = (f[:, None] < n_features) & s_mask[None, :]
        x = tl.load(x_ptr + offs, mask=mask, other=0.0).to(tl.float32)
        sum_sq += tl.sum(x * x, axis=0)
    inv_rms = 1.0 / tl.sqrt(sum_sq / n_features + eps)
    for f0 in range(0, n_features, BLOCK_F):
        f = f0 + f_lane
        offs = base + f[:, None].to(tl.int64) * spatial + s[None, :]
        mask = (f[:, None] < n_features) & s_mask[None, :]
        x = tl.load(x_ptr + offs, mask=mask).to(tl.float32)
        tl.store(y_ptr + offs, (x * inv_rms[None, :]).to(y_ptr.dtype.element_ty), mask=mask)


class ModelNew(nn.Module):
    def __init__(self, num_features: int, eps: float = 1e-5):
        super().__init__()
        self.num_features = num_features
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.contiguous()
        y = torch.empty_like(x)
        batch, n_features = x.shape[0], x.shape[1]
        spatial = x.numel() // (batch * n_features)
        block_f = min(triton.next_power_of_2(n_features), 64)
        grid = (batch * triton.cdiv(spatial, BLOCK_S),)
        rms_normalize_kernel[grid](x, y, n_features, spatial, self.eps,
                                   BLOCK_F=block_f, BLOCK_S=BLOCK_S, num_warps=4)
        return y
