import torch
import torch.nn as nn
import triton
import triton.language as tl


@triton.jit
def persistent_linear_lse_mish_kernel(
    x_ptr, w_ptr, b_ptr, pm_ptr, ps_ptr, cnt_ptr, out_ptr,
    M, N, K, T,
    stride_xm, stride_xk,
    stride_wn, stride_wk,
    factor, cmin, cmax,
    NUM_PROGS: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
    BLOCK_T: tl.constexpr, GROUP_M: tl.constexpr,
):
    # Persistent mapping: a fixed number of programs (one per SM) walks the tile list.
    start = tl.program_id(0)
    num_pid_m = tl.cdiv(M, BLOCK_M)
    num_pid_n = T
    num_tiles = num_pid_m * num_pid_n
    num_pid_in_group = GROUP_M * num_pid_n
    offs_k = tl.arange(0, BLOCK_K)
    offs_t = tl.arange(0, BLOCK_T)

    for tile in range(start, num_tiles, NUM_PROGS):
        # grouped order: programs running at the same time share x rows and W columns in L2
        group_id = tile // num_pid_in_group
        first_pid_m = group_id * GROUP_M
        group_size_m = tl.minimum(num_pid_m - first_pid_m, GROUP_M)
        pid_m = first_pid_m + ((tile % num_pid_in_group) % group_size_m)
        pid_n = (tile % num_pid_in_group) // group_size_m

        offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
        offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
        mask_m = offs_m < M
        mask_n = offs_n < N

        x_ptrs = x_ptr + offs_m[:, None] * stride_xm + offs_k[None, :] * stride_xk
        w_ptrs = w_ptr + offs_n[:, None] * stride_wn + offs_k[None, :] * stride_wk
        acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
        for k0 in range(0, K, BLOCK_K):
            mask_k = (k0 + offs_k) < K
            a = tl.load(x_ptrs, mask=mask_m[:, None] & mask_k[None, :], other=0.0)
            w = tl.load(w_ptrs, mask=mask_n[:, None] & mask_k[None, :], other=0.0)
            acc = tl.dot(a, tl.trans(w), acc, input_precision="tf32x3")
            x_ptrs += BLOCK_K * stride_xk
            w_ptrs += BLOCK_K * stride_wk

        # epilogue in registers: bias, x*s + x*s, clamp, per-row partial logsumexp
        bias = tl.load(b_ptr + offs_n, mask=mask_n, other=0.0)
        v = (acc + bias[None, :]) * factor
        v = tl.minimum(tl.maximum(v, cmin), cmax)
        v = tl.where(mask_n[None, :], v, float("-inf"))
        tile_max = tl.max(v, axis=1)
        tile_sum = tl.sum(tl.exp(v - tile_max[:, None]), axis=1)
        tl.store(pm_ptr + offs_m * T + pid_n, tile_max, mask=mask_m)
        tl.store(ps_ptr + offs_m * T + pid_n, tile_sum, mask=mask_m)

        # the last tile of this row block to arrive merges the partials (fixed order: deterministic)
        tl.debug_barrier()
        prev = tl.atomic_add(cnt_ptr + pid_m, 1, sem="acq_rel", scope="gpu")
        if prev == T - 1:
            mrow = tl.full((BLOCK_M,), float("-inf"), dtype=tl.float32)
            srow = tl.zeros((BLOCK_M,), dtype=tl.float32)
            for t0 in range(0, T, BLOCK_T):
                tt = t0 + offs_t
                msk = mask_m[:, None] & (tt < T)[None, :]
                pmv = tl.load(pm_ptr + offs_m[:, None] * T + tt[None, :], mask=msk,
                              other=float("-inf"), cache_modifier=".cg")
                psv = tl.load(ps_ptr + offs_m[:, None] * T + tt[None, :], mask=msk,
                              other=0.0, cache_modifier=".cg")
                pmv = tl.where(mask_m[:, None], pmv, 0.0)  # rows past M stay finite
                new_m = tl.maximum(mrow, tl.max(pmv, axis=1))
                srow = srow * tl.exp(mrow - new_m) + tl.sum(psv * tl.exp(pmv - new_m[:, None]), axis=1)
                mrow = new_m
            srow = tl.where(mask_m, srow, 1.0)
            lse = mrow + tl.log(srow)
            # x * mish(x) = x^2 * tanh(softplus(x)); tanh(log(1+e^x)) = (e^2x + 2e^x) / (e^2x + 2e^x + 2)
            e = tl.exp(tl.minimum(lse, 20.0))
            num = e * (e + 2.0)
            th = tl.where(lse > 20.0, 1.0, num / (num + 2.0))
            tl.store(out_ptr + offs_m, lse * (lse * th), mask=mask_m)
            # re-arm the counter for the next launch
            tl.atomic_xchg(cnt_ptr + pid_m, 0, sem="relaxed", scope="gpu")


class ModelNew(nn.Module):
    def __init__(self, input_size, hidden_size, scale_factor, clamp_min, clamp_max):
        super().__init__()
        self.matmul = nn.Linear(input_size, hidden_size)
        self.scale_factor = scale_factor
        self.clamp_min = clamp_min
        self.clamp_max = clamp_max
        # per-row-block arrival counters, zeroed once; the kernel resets each after use
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
        num_tiles = num_pid_m * T
        if x.is_cuda:
            n_sm = torch.cuda.get_device_properties(x.device).multi_processor_count
        else:
            n_sm = 4
        nprog = max(1, min(n_sm, num_tiles))
        if self._tile_counter.numel() < num_pid_m or self._tile_counter.device != x.device:
            self._tile_counter = torch.zeros(num_pid_m, device=x.device, dtype=torch.int32)
        pm = torch.empty((M, T), device=x.device, dtype=torch.float32)
        ps = torch.empty((M, T), device=x.device, dtype=torch.float32)
        out = torch.empty((M, 1), device=x.device, dtype=torch.float32)
        BT = min(64, triton.next_power_of_2(T))
        persistent_linear_lse_mish_kernel[(nprog,)](
            x, w, b, pm, ps, self._tile_counter, out, M, N, K, T,
            x.stride(0), x.stride(1), w.stride(0), w.stride(1),
            float(self.scale_factor) * 2.0, float(self.clamp_min), float(self.clamp_max),
            NUM_PROGS=nprog, BLOCK_M=BM, BLOCK_N=BN, BLOCK_K=BK, BLOCK_T=BT, GROUP_M=8,
            num_warps=8, num_stages=3,
        )
        return out