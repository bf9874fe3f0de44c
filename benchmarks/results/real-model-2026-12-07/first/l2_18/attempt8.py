import torch
import torch.nn as nn
import triton
import triton.language as tl


@triton.jit
def fused_vec_kernel(
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
    mask_k2 = mask_k[None, :]

    # ---- W strip column sums: pointer walk, unmasked rows in the main loop ----
    offs_n0 = tl.arange(0, BLOCK_N)
    n_main = (N // BLOCK_N) * BLOCK_N
    wp = w_ptr + offs_n0.to(tl.int64)[:, None] * stride_wn + offs_k[None, :]
    w_step = BLOCK_N * stride_wn
    acc = tl.zeros([BLOCK_N, BLOCK_K], tl.float32)
    for n0 in range(0, n_main, BLOCK_N):
        acc += tl.load(wp, mask=mask_k2, other=0.0).to(tl.float32)
        wp += w_step
    for n0 in range(n_main, N, BLOCK_N):
        rmask = (n0 + offs_n0) < N
        acc += tl.load(wp, mask=rmask[:, None] & mask_k2, other=0.0).to(tl.float32)
    wsum = tl.sum(acc, axis=0)

    # ---- x strip dot products, same access pattern ----
    offs_m0 = tl.arange(0, BLOCK_M)
    m_main = (M // BLOCK_M) * BLOCK_M
    xp = x_ptr + offs_m0.to(tl.int64)[:, None] * stride_xm + offs_k[None, :]
    x_step = BLOCK_M * stride_xm
    qp = q_ptr + pid.to(tl.int64) * M + offs_m0
    for m0 in range(0, m_main, BLOCK_M):
        xt = tl.load(xp, mask=mask_k2, other=0.0).to(tl.float32)
        tl.store(qp, tl.sum(xt * wsum[None, :], axis=1))
        xp += x_step
        qp += BLOCK_M
    for m0 in range(m_main, M, BLOCK_M):
        rm = (m0 + offs_m0) < M
        xt = tl.load(xp, mask=rm[:, None] & mask_k2, other=0.0).to(tl.float32)
        tl.store(qp, tl.sum(xt * wsum[None, :], axis=1), mask=rm)

    # ---- level 1: last program of each group reduces the group's partials ----
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

        # ---- level 2: last group finalizer writes the output ----
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
        BLOCK_N = min(256, max(16, triton.next_power_of_2(N) // 2))
        BLOCK_M = min(256, max(16, triton.next_power_of_2(M) // 2))
        GROUP = 16
        KC = triton.cdiv(K, BLOCK_K)
        NG = triton.cdiv(KC, GROUP)
        q = torch.empty((KC, M), device=dev, dtype=torch.float32)
        q2 = torch.empty((NG, M), device=dev, dtype=torch.float32)
        cnt = torch.zeros((NG + 1,), device=dev, dtype=torch.int32)
        out = torch.empty((M, 1), device=dev, dtype=torch.float32)
        fused_vec_kernel[(KC,)](
            w, x, b, q, q2, cnt, out,
            M, N, K, KC, NG,
            w.stride(0), x.stride(0), out.stride(0),
            BLOCK_N=BLOCK_N, BLOCK_M=BLOCK_M, BLOCK_K=BLOCK_K,
            GROUP=GROUP, BLOCK_MF=256, BLOCK_G=16,
            BLOCK_B=min(1024, triton.next_power_of_2(N)),
            num_warps=8,
        )
        return out