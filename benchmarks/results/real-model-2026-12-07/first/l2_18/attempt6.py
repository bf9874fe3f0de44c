import torch
import torch.nn as nn
import triton
import triton.language as tl


@triton.jit
def fused_linear_sum_kernel(
    w_ptr, x_ptr, b_ptr,
    q_ptr, q2_ptr, cnt_ptr, out_ptr,
    M, N, K, KC, NG,
    stride_wn, stride_xm, stride_om,
    BLOCK_N: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_K: tl.constexpr,
    GROUP: tl.constexpr,
    BLOCK_MF: tl.constexpr,
    BLOCK_G: tl.constexpr,
    BLOCK_B: tl.constexpr,
):
    pid = tl.program_id(0)
    offs_k = pid * BLOCK_K + tl.arange(0, BLOCK_K)
    mask_k = offs_k < K

    # ---- complete column sum of this W strip, in registers ----
    offs_n0 = tl.arange(0, BLOCK_N)
    acc = tl.zeros([BLOCK_N, BLOCK_K], tl.float32)
    for n0 in range(0, N, BLOCK_N):
        offs_n = n0 + offs_n0
        mask = (offs_n[:, None] < N) & mask_k[None, :]
        ptrs = w_ptr + offs_n.to(tl.int64)[:, None] * stride_wn + offs_k[None, :]
        acc += tl.load(ptrs, mask=mask, other=0.0).to(tl.float32)
    wsum = tl.sum(acc, axis=0)

    # ---- partial dot products of every x row with this strip ----
    offs_m0 = tl.arange(0, BLOCK_M)
    q_row = q_ptr + pid.to(tl.int64) * M
    for m0 in range(0, M, BLOCK_M):
        rows = m0 + offs_m0
        mask_m = rows < M
        xt = tl.load(
            x_ptr + rows.to(tl.int64)[:, None] * stride_xm + offs_k[None, :],
            mask=mask_m[:, None] & mask_k[None, :], other=0.0,
        ).to(tl.float32)
        tl.store(q_row + rows, tl.sum(xt * wsum[None, :], axis=1), mask=mask_m)

    # ---- level 1: last program of the group reduces the group's partials ----
    tl.debug_barrier()
    grp = pid // GROUP
    g_start = grp * GROUP
    g_count = tl.minimum(KC - g_start, GROUP)
    c = tl.atomic_add(cnt_ptr + 1 + grp, 1, sem="acq_rel")
    if c == g_count - 1:
        offs_g = tl.arange(0, GROUP)
        js = g_start + offs_g
        mask_j = offs_g < g_count
        for m0 in range(0, M, BLOCK_MF):
            rows = m0 + tl.arange(0, BLOCK_MF)
            mm = rows < M
            tile = tl.load(q_ptr + js.to(tl.int64)[:, None] * M + rows[None, :],
                           mask=mask_j[:, None] & mm[None, :], other=0.0)
            tl.store(q2_ptr + grp.to(tl.int64) * M + rows, tl.sum(tile, axis=0), mask=mm)

        # ---- level 2: last group finalizer produces the output ----
        tl.debug_barrier()
        c2 = tl.atomic_add(cnt_ptr, 1, sem="acq_rel")
        if c2 == NG - 1:
            offs_b = tl.arange(0, BLOCK_B)
            bacc = tl.zeros([BLOCK_B], tl.float32)
            for nb in range(0, N, BLOCK_B):
                ns = nb + offs_b
                bacc += tl.load(b_ptr + ns, mask=ns < N, other=0.0).to(tl.float32)
            bsum = tl.sum(bacc, axis=0)
            offs_gg = tl.arange(0, BLOCK_G)
            for m0 in range(0, M, BLOCK_MF):
                rows = m0 + tl.arange(0, BLOCK_MF)
                mm = rows < M
                acc2 = tl.zeros([BLOCK_G, BLOCK_MF], tl.float32)
                for g0 in range(0, NG, BLOCK_G):
                    gs = g0 + offs_gg
                    acc2 += tl.load(q2_ptr + gs.to(tl.int64)[:, None] * M + rows[None, :],
                                    mask=(gs[:, None] < NG) & mm[None, :], other=0.0)
                total = tl.sum(acc2, axis=0) + bsum
                # max / mean / logsumexp / logsumexp over a size-1 dim are identities.
                tl.store(out_ptr + rows * stride_om, total, mask=mm)


class ModelNew(nn.Module):
    def __init__(self, in_features, out_features):
        super(ModelNew, self).__init__()
        self.linear = nn.Linear(in_features, out_features)

    def forward(self, x):
        x = x.contiguous()
        w = self.linear.weight.contiguous()
        b = self.linear.bias.contiguous()
        M, K = x.shape
        N = w.shape[0]
        dev = x.device

        BLOCK_K = 32
        BLOCK_N = 256
        BLOCK_M = 256
        GROUP = 16
        KC = triton.cdiv(K, BLOCK_K)
        NG = triton.cdiv(KC, GROUP)
        q = torch.empty((KC, M), device=dev, dtype=torch.float32)
        q2 = torch.empty((NG, M), device=dev, dtype=torch.float32)
        cnt = torch.zeros((NG + 1,), device=dev, dtype=torch.int32)
        out = torch.empty((M, 1), device=dev, dtype=torch.float32)
        fused_linear_sum_kernel[(KC,)](
            w, x, b, q, q2, cnt, out,
            M, N, K, KC, NG,
            w.stride(0), x.stride(0), out.stride(0),
            BLOCK_N=BLOCK_N, BLOCK_M=BLOCK_M, BLOCK_K=BLOCK_K,
            GROUP=GROUP, BLOCK_MF=256, BLOCK_G=16,
            BLOCK_B=min(1024, triton.next_power_of_2(N)),
            num_warps=8,
        )
        return out