import torch
import torch.nn as nn
import triton
import triton.language as tl


@triton.jit
def fused_linear_lse_mish_kernel(
    x_ptr, w_ptr, b_ptr, pm_ptr, ps_ptr, cnt_ptr, out_ptr,
    M, N, K, T,
    stride_xm, stride_xk,
    stride_wn, stride_wk,
    factor, cmin, cmax,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
    BLOCK_T: tl.constexpr, GROUP_M: tl.constexpr, EVEN_K: tl.constexpr,
):
    # grouped (swizzled) tile order for L2 reuse
    pid = tl.program_id(0)
    num_pid_m = tl.cdiv(M, BLOCK_M)
    num_pid_n = tl.cdiv(N, BLOCK_N)
    num_pid_in_group = GROUP_M * num_pid_n
    group_id = pid // num_pid_in_group
    first_pid_m = group_id * GROUP_M
    group_size_m = tl.minimum(num_pid_m - first_pid_m, GROUP_M)
    pid_m = first_pid_m + ((pid % num_pid_in_group) % group_size_m)
    pid_n = (pid % num_pid_in_group) // group_size_m

    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    offs_k = tl.arange(0, BLOCK_K)
    mask_m = offs_m < M
    mask_n = offs_n < N

    offs_m = tl.max_contiguous(tl.multiple_of(offs_m, BLOCK_M), BLOCK_M)
    offs_k = tl.max_contiguous(tl.multiple_of(offs_k, BLOCK_K), BLOCK_K)

    # ---- GEMM tile on tensor cores (3xTF32 ~ fp32 accuracy) ----
    x_ptrs = x_ptr + offs_m[:, None] * stride_xm + offs_k[None, :] * stride_xk
    w_ptrs = w_ptr + offs_n[:, None] * stride_wn + offs_k[None, :] * stride_wk
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    if EVEN_K:
        # K is a multiple of BLOCK_K: no per-element K mask, so each row segment is one
        # run of BLOCK_K contiguous floats (16-byte vector loads); the row mask is uniform along K
        for k0 in range(0, K, BLOCK_K):
            a = tl.load(x_ptrs, mask=mask_m[:, None], other=0.0)
            w = tl.load(w_ptrs, mask=mask_n[:, None], other=0.0)
            acc = tl.dot(a, tl.trans(w), acc, input_precision="tf32x3")
            x_ptrs += BLOCK_K * stride_xk
            w_ptrs += BLOCK_K * stride_wk
    else:
        for k0 in range(0, K, BLOCK_K):
            mask_k = (k0 + offs_k) < K
            a = tl.load(x_ptrs, mask=mask_m[:, None] & mask_k[None, :], other=0.0)
            w = tl.load(w_ptrs, mask=mask_n[:, None] & mask_k[None, :], other=0.0)
            acc = tl.dot(a, tl.trans(w), acc, input_precision="tf32x3")
            x_ptrs += BLOCK_K * stride_xk
            w_ptrs += BLOCK_K * stride_wk

    # ---- epilogue in registers: bias, scale (x*s + x*s), clamp ----
    bias = tl.load(b_ptr + offs_n, mask=mask_n, other=0.0)
    v = (acc + bias[None, :]) * factor
    v = tl.minimum(tl.maximum(v, cmin), cmax)
    v = tl.where(mask_n[None, :], v, float("-inf"))

    # partial logsumexp over this tile's columns (each tile has >= 1 valid column)
    tile_max = tl.max(v, axis=1)
    tile_sum = tl.sum(tl.exp(v - tile_max[:, None]), axis=1)
    # partials are laid out [T, M]: this tile's BLOCK_M values are one contiguous run
    tl.store(pm_ptr + pid_n * M + offs_m, tile_max, mask=mask_m)
    tl.store(ps_ptr + pid_n * M + offs_m, tile_sum, mask=mask_m)

    # ---- the last tile to finish in this row block combines the partials ----
    tl.debug_barrier()  # all threads' partial stores issued before the release below
    prev = tl.atomic_add(cnt_ptr + pid_m, 1, sem="acq_rel", scope="gpu")
    if prev == T - 1:
        # one pass over the partials with an online (rescaled) max / sum-exp merge
        offs_t = tl.arange(0, BLOCK_T)
        mrow = tl.full((BLOCK_M,), float("-inf"), dtype=tl.float32)
        srow = tl.zeros((BLOCK_M,), dtype=tl.float32)
        for t0 in range(0, T, BLOCK_T):
            tt = t0 + offs_t
            msk = mask_m[:, None] & (tt < T)[None, :]
            pmv = tl.load(pm_ptr + tt[None, :] * M + offs_m[:, None], mask=msk,
                          other=float("-inf"), cache_modifier=".cg")
            psv = tl.load(ps_ptr + tt[None, :] * M + offs_m[:, None], mask=msk,
                          other=0.0, cache_modifier=".cg")
            # rows past M: make them finite so no inf - inf appears (their result is never stored)
            pmv = tl.where(mask_m[:, None], pmv, 0.0)
            new_m = tl.maximum(mrow, tl.max(pmv, axis=1))  # finite: first block holds column 0
            srow = srow * tl.exp(mrow - new_m) + tl.sum(psv * tl.exp(pmv - new_m[:, None]), axis=1)
            mrow = new_m
        srow = tl.where(mask_m, srow, 1.0)
        lse = mrow + tl.log(srow)

        # x * mish(x) = x * x * tanh(softplus(x)); tanh(log(1+e^x)) = (e^2x + 2e^x) / (e^2x + 2e^x + 2)
        e = tl.exp(tl.minimum(lse, 20.0))
        num = e * (e + 2.0)
        th = num / (num + 2.0)
        th = tl.where(lse > 20.0, 1.0, th)
        tl.store(out_ptr + offs_m, lse * (lse * th), mask=mask_m)
        # re-arm this row block's counter for the next launch (every tile of the block has arrived)
        tl.atomic_xchg(cnt_ptr + pid_m, 0, sem="relaxed", scope="gpu")


class ModelNew(nn.Module):
    def __init__(self, input_size, hidden_size, scale_factor, clamp_min, clamp_max):
        super().__init__()
        self.matmul = nn.Linear(input_size, hidden_size)
        self.scale_factor = scale_factor
        self.clamp_min = clamp_min
        self.clamp_max = clamp_max
        # per-row-block arrival counters; the kernel resets each one to 0 after use,
        # so they are zeroed once here (or on growth) instead of on every call
        self.register_buffer("_tile_counter", torch.zeros(1, dtype=torch.int32), persistent=False)

    def forward(self, x):
        x = x.contiguous()
        w = self.matmul.weight
        b = self.matmul.bias
        M, K = x.shape
        N = w.shape[0]
        BM, BN, BK = 128, 128, 32
        T = triton.cdiv(N, BN)
        num_pid_m = triton.cdiv(M, BM)
        pm = torch.empty((T, M), device=x.device, dtype=torch.float32)
        ps = torch.empty((T, M), device=x.device, dtype=torch.float32)
        if self._tile_counter.numel() < num_pid_m or self._tile_counter.device != x.device:
            self._tile_counter = torch.zeros(num_pid_m, device=x.device, dtype=torch.int32)
        cnt = self._tile_counter
        out = torch.empty((M, 1), device=x.device, dtype=torch.float32)
        BT = min(64, triton.next_power_of_2(T))
        grid = (num_pid_m * T,)
        fused_linear_lse_mish_kernel[grid](
            x, w, b, pm, ps, cnt, out, M, N, K, T,
            x.stride(0), x.stride(1), w.stride(0), w.stride(1),
            float(self.scale_factor) * 2.0, float(self.clamp_min), float(self.clamp_max),
            BLOCK_M=BM, BLOCK_N=BN, BLOCK_K=BK, BLOCK_T=BT, GROUP_M=8, EVEN_K=(K % BK == 0),
            num_warps=8, num_stages=3,
        )
        return out