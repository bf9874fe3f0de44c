import torch
import torch.nn as nn
import triton
import triton.language as tl


@triton.jit
def _fused_linear_swish_groupnorm_kernel(
    x_ptr, w_ptr, lb_ptr, b_ptr, gamma_ptr, beta_ptr, out_ptr,
    M, N, K, G, TILE_COLS,
    stride_xm, stride_wn, stride_om,
    eps,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
    GROUP_M: tl.constexpr, GPT: tl.constexpr, FUSE_GN: tl.constexpr,
    EVEN_K: tl.constexpr,
):
    pid = tl.program_id(0)
    num_pid_m = tl.cdiv(M, BLOCK_M)
    num_pid_n = tl.cdiv(N, TILE_COLS)
    num_pid_in_group = GROUP_M * num_pid_n
    group_id = pid // num_pid_in_group
    first_pid_m = group_id * GROUP_M
    group_size_m = min(num_pid_m - first_pid_m, GROUP_M)
    pid_m = first_pid_m + ((pid % num_pid_in_group) % group_size_m)
    pid_n = (pid % num_pid_in_group) // group_size_m

    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    loc = tl.arange(0, BLOCK_N)
    offs_n = pid_n * TILE_COLS + loc
    offs_k = tl.arange(0, BLOCK_K)
    mask_m = offs_m < M
    mask_n = (loc < TILE_COLS) & (offs_n < N)

    # Operand loads without row/column masks: out-of-range rows of x and rows of W are
    # wrapped back into range (their results are never stored and never enter the group
    # statistics), so every load is a plain contiguous run along K, the fastest-moving
    # dimension of both x [M, K] and W [N, K] -> 16-byte vector loads / cp.async copies.
    rows_a = offs_m % M
    rows_b = offs_n % N
    x_ptrs = x_ptr + rows_a[:, None].to(tl.int64) * stride_xm + offs_k[None, :]
    w_ptrs = w_ptr + rows_b[None, :].to(tl.int64) * stride_wn + offs_k[:, None]

    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    if EVEN_K:
        for k0 in range(0, K, BLOCK_K):
            a = tl.load(x_ptrs)
            b = tl.load(w_ptrs)
            acc = tl.dot(a, b, acc=acc, input_precision="tf32x3")
            x_ptrs += BLOCK_K
            w_ptrs += BLOCK_K
    else:
        for k0 in range(0, K, BLOCK_K):
            k_ok = (k0 + offs_k) < K
            a = tl.load(x_ptrs, mask=k_ok[None, :], other=0.0)
            b = tl.load(w_ptrs, mask=k_ok[:, None], other=0.0)
            acc = tl.dot(a, b, acc=acc, input_precision="tf32x3")
            x_ptrs += BLOCK_K
            w_ptrs += BLOCK_K

    lb = tl.load(lb_ptr + offs_n, mask=mask_n, other=0.0)
    bb = tl.load(b_ptr + offs_n, mask=mask_n, other=0.0)
    y = acc + lb[None, :]
    y = y * tl.sigmoid(y)
    y = y + bb[None, :]

    if FUSE_GN:
        gid = loc // G  # group index inside the tile (>= GPT for unused columns)
        mean_t = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
        for g in tl.static_range(GPT):
            sel = (gid == g)[None, :]
            s = tl.sum(tl.where(sel, y, 0.0), axis=1)
            mean_t = tl.where(sel, (s / G)[:, None], mean_t)
        d = y - mean_t
        rstd_t = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
        for g in tl.static_range(GPT):
            sel = (gid == g)[None, :]
            v = tl.sum(tl.where(sel, d * d, 0.0), axis=1) / G
            rstd_t = tl.where(sel, (1.0 / tl.sqrt(v + eps))[:, None], rstd_t)
        gw = tl.load(gamma_ptr + offs_n, mask=mask_n, other=0.0)
        gb = tl.load(beta_ptr + offs_n, mask=mask_n, other=0.0)
        y = d * rstd_t * gw[None, :] + gb[None, :]

    out_ptrs = out_ptr + offs_m[:, None].to(tl.int64) * stride_om + offs_n[None, :]
    tl.store(out_ptrs, y, mask=mask_m[:, None] & mask_n[None, :])


@triton.jit
def _gn_rows_fallback_kernel(
    y_ptr, gamma_ptr, beta_ptr, out_ptr,
    N, GS, NUM_GROUPS, eps,
    BLOCK_GR: tl.constexpr, BLOCK_G: tl.constexpr,
):
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
    tl.store(out_ptr + base + cols, d * rstd[:, None] * w + b, mask=mask)


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
        G = N // num_groups

        out = torch.empty((M, N), device=x.device, dtype=x.dtype)

        fuse = G <= 256
        if fuse:
            if G <= 128:
                BLOCK_N = max(16, min(128, triton.next_power_of_2(16 * G)))
            else:
                BLOCK_N = 256
            GPT = max(1, min(BLOCK_N // G, 16))
            tile_cols = GPT * G
        else:
            BLOCK_N = 128
            GPT = 1
            tile_cols = BLOCK_N
        BLOCK_M = 128 if BLOCK_N <= 128 else 64
        BLOCK_K = 32 if K % 32 == 0 else max(16, min(32, triton.next_power_of_2(K)))

        target = out if fuse else torch.empty((M, N), device=x.device, dtype=x.dtype)
        grid = (triton.cdiv(M, BLOCK_M) * triton.cdiv(N, tile_cols),)
        _fused_linear_swish_groupnorm_kernel[grid](
            x, w, lb, bias, gamma, beta, target,
            M, N, K, G, tile_cols,
            x.stride(0), w.stride(0), target.stride(0),
            eps,
            BLOCK_M=BLOCK_M, BLOCK_N=BLOCK_N, BLOCK_K=BLOCK_K,
            GROUP_M=8, GPT=GPT, FUSE_GN=fuse,
            EVEN_K=(K % BLOCK_K == 0),
            num_warps=8, num_stages=3,
        )

        if not fuse:
            BLOCK_G = triton.next_power_of_2(G)
            BLOCK_GR = max(2, min(triton.next_power_of_2(num_groups), 4096 // BLOCK_G))
            grid2 = (M, triton.cdiv(num_groups, BLOCK_GR))
            _gn_rows_fallback_kernel[grid2](
                target, gamma, beta, out,
                N, G, num_groups, eps,
                BLOCK_GR=BLOCK_GR, BLOCK_G=BLOCK_G,
                num_warps=4,
            )
        return out