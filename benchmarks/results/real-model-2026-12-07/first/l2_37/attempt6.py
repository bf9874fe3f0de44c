import torch
import torch.nn as nn
import triton
import triton.language as tl


@triton.jit
def _linear_swish_bias_gn_kernel(
    x_ptr, w_ptr, lb_ptr, b_ptr, gamma_ptr, beta_ptr, out_ptr,
    M, N, K,
    stride_xm, stride_xk,
    stride_wn, stride_wk,
    stride_om,
    eps,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
    GROUP_M: tl.constexpr,
    GSIZE: tl.constexpr, NG_TILE: tl.constexpr, FUSE_GN: tl.constexpr,
):
    pid = tl.program_id(0)
    num_pid_m = tl.cdiv(M, BLOCK_M)
    num_pid_n = tl.cdiv(N, BLOCK_N)
    num_pid_in_group = GROUP_M * num_pid_n
    group_id = pid // num_pid_in_group
    first_pid_m = group_id * GROUP_M
    group_size_m = min(num_pid_m - first_pid_m, GROUP_M)
    pid_m = first_pid_m + ((pid % num_pid_in_group) % group_size_m)
    pid_n = (pid % num_pid_in_group) // group_size_m

    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    offs_k = tl.arange(0, BLOCK_K)
    mask_m = offs_m < M
    mask_n = offs_n < N

    x_ptrs = x_ptr + offs_m[:, None].to(tl.int64) * stride_xm + offs_k[None, :] * stride_xk
    w_ptrs = w_ptr + offs_n[None, :].to(tl.int64) * stride_wn + offs_k[:, None] * stride_wk

    # Linear bias folded into the accumulator initialisation: acc = b_lin + x @ W^T
    lb = tl.load(lb_ptr + offs_n, mask=mask_n, other=0.0)
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32) + lb[None, :]
    for k0 in range(0, K, BLOCK_K):
        k_mask = (k0 + offs_k) < K
        a = tl.load(x_ptrs, mask=mask_m[:, None] & k_mask[None, :], other=0.0)
        b = tl.load(w_ptrs, mask=k_mask[:, None] & mask_n[None, :], other=0.0)
        acc = tl.dot(a, b, acc=acc, input_precision="tf32x3")
        x_ptrs += BLOCK_K * stride_xk
        w_ptrs += BLOCK_K * stride_wk

    bb = tl.load(b_ptr + offs_n, mask=mask_n, other=0.0)
    # Swish + bias: z * sigmoid(z) == z / (1 + exp(-z))  (one exp, one divide, no extra mul)
    y = acc / (1.0 + tl.exp(-acc)) + bb[None, :]

    if FUSE_GN:
        # GroupNorm applied as one scale-and-shift per element:
        # (y - mean) * rstd * gamma + beta == d * (rstd * gamma) + beta, with the
        # statistics of each (row, group) computed on the register tile.
        y3 = tl.reshape(y, (BLOCK_M, NG_TILE, GSIZE))
        mean = tl.sum(y3, axis=2) / GSIZE
        d = y3 - mean[:, :, None]
        var = tl.sum(d * d, axis=2) / GSIZE
        rstd = 1.0 / tl.sqrt(var + eps)
        gw = tl.load(gamma_ptr + offs_n, mask=mask_n, other=0.0)
        gb = tl.load(beta_ptr + offs_n, mask=mask_n, other=0.0)
        g3 = tl.reshape(gw, (NG_TILE, GSIZE))
        b3 = tl.reshape(gb, (NG_TILE, GSIZE))
        scale = rstd[:, :, None] * g3[None, :, :]
        y = tl.reshape(d * scale + b3[None, :, :], (BLOCK_M, BLOCK_N))

    out_ptrs = out_ptr + offs_m[:, None].to(tl.int64) * stride_om + offs_n[None, :]
    tl.store(out_ptrs, y, mask=mask_m[:, None] & mask_n[None, :])


@triton.jit
def _groupnorm_rows_kernel(
    y_ptr, gamma_ptr, beta_ptr, out_ptr,
    N, GS, NUM_GROUPS, eps,
    BLOCK_GR: tl.constexpr, BLOCK_G: tl.constexpr,
):
    # one program: one row, BLOCK_GR groups of that row
    row = tl.program_id(0)
    gblk = tl.program_id(1)
    offs_g = gblk * BLOCK_GR + tl.arange(0, BLOCK_GR)
    offs_c = tl.arange(0, BLOCK_G)
    mask = (offs_g[:, None] < NUM_GROUPS) & (offs_c[None, :] < GS)
    cols = offs_g[:, None] * GS + offs_c[None, :]
    base = row.to(tl.int64) * N
    v = tl.load(y_ptr + base + cols, mask=mask, other=0.0)
    mean = tl.sum(v, axis=1) / GS
    d = tl.where(mask, v - mean[:, None], 0.0)
    var = tl.sum(d * d, axis=1) / GS
    rstd = 1.0 / tl.sqrt(var + eps)
    w = tl.load(gamma_ptr + cols, mask=mask, other=0.0)
    b = tl.load(beta_ptr + cols, mask=mask, other=0.0)
    o = d * rstd[:, None] * w + b
    tl.store(out_ptr + base + cols, o, mask=mask)


class ModelNew(nn.Module):
    def __init__(self, in_features, out_features, num_groups, bias_shape):
        super(ModelNew, self).__init__()
        self.matmul = nn.Linear(in_features, out_features)
        self.bias = nn.Parameter(torch.randn(bias_shape))
        self.group_norm = nn.GroupNorm(num_groups, out_features)

    def forward(self, x):
        x = x.contiguous()
        M, K = x.shape
        w = self.matmul.weight.contiguous()
        lb = self.matmul.bias.contiguous()
        bias = self.bias.contiguous().reshape(-1)
        gamma = self.group_norm.weight.contiguous()
        beta = self.group_norm.bias.contiguous()
        eps = float(self.group_norm.eps)
        N = w.shape[0]
        num_groups = self.group_norm.num_groups
        gsize = N // num_groups

        out = torch.empty((M, N), device=x.device, dtype=x.dtype)

        fuse = gsize >= 1 and (gsize & (gsize - 1)) == 0 and gsize <= 256
        # Tile shape for SRAM/register reuse on H100: a 128 x 256 output tile reads
        # (128 + 256) x BLOCK_K inputs per k-step for 2*128*256*BLOCK_K flops (~43 flop/byte
        # vs 32 for 128 x 128), so each x tile is reused across 256 output channels (4 whole
        # GroupNorm groups of 64 at the original sizes) and each W tile across 128 rows.
        # 8 warps: the fp32 accumulator is 128 registers per thread; BLOCK_K = 32 and
        # 3 stages keep the pipelined operand buffers at 3 x 48 KB of shared memory.
        n_cap = 256 if N >= 256 else 128
        if fuse:
            BLOCK_N = max(gsize, 16, min(n_cap, triton.next_power_of_2(N)))
        else:
            BLOCK_N = max(16, min(n_cap, triton.next_power_of_2(N)))
        BLOCK_M = 128 if M >= 128 else 64
        BLOCK_K = max(16, min(32, triton.next_power_of_2(K)))
        num_stages = 3
        ng_tile = BLOCK_N // gsize if fuse else 1
        gs_const = gsize if fuse else BLOCK_N

        target = out if fuse else torch.empty((M, N), device=x.device, dtype=x.dtype)
        grid = (triton.cdiv(M, BLOCK_M) * triton.cdiv(N, BLOCK_N),)
        _linear_swish_bias_gn_kernel[grid](
            x, w, lb, bias, gamma, beta, target,
            M, N, K,
            x.stride(0), x.stride(1),
            w.stride(0), w.stride(1),
            target.stride(0),
            eps,
            BLOCK_M=BLOCK_M, BLOCK_N=BLOCK_N, BLOCK_K=BLOCK_K,
            GROUP_M=8,
            GSIZE=gs_const, NG_TILE=ng_tile, FUSE_GN=fuse,
            num_warps=8, num_stages=num_stages,
        )

        if not fuse:
            BLOCK_G = max(2, triton.next_power_of_2(gsize))
            BLOCK_GR = max(2, min(triton.next_power_of_2(num_groups), 4096 // BLOCK_G))
            grid2 = (M, triton.cdiv(num_groups, BLOCK_GR))
            _groupnorm_rows_kernel[grid2](
                target, gamma, beta, out,
                N, gsize, num_groups, eps,
                BLOCK_GR=BLOCK_GR, BLOCK_G=BLOCK_G,
                num_warps=4,
            )
        return out