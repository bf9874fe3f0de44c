import torch
import torch.nn as nn
import triton
import triton.language as tl


@triton.jit
def colsum_mma_kernel(
    w_ptr, p_ptr,
    N, K,
    stride_wn, stride_wk,
    ROWS_PER_PROG: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_K: tl.constexpr,
):
    pid_k = tl.program_id(0)
    pid_s = tl.program_id(1)
    offs_k = pid_k * BLOCK_K + tl.arange(0, BLOCK_K)
    mask_k = offs_k < K
    offs_n0 = tl.arange(0, BLOCK_N)
    ones = tl.full([16, BLOCK_N], 1.0, tl.float32)
    acc = tl.zeros([16, BLOCK_K], tl.float32)
    n_base = pid_s * ROWS_PER_PROG
    for r in range(0, ROWS_PER_PROG, BLOCK_N):
        offs_n = n_base + r + offs_n0
        mask = (offs_n[:, None] < N) & mask_k[None, :]
        ptrs = w_ptr + offs_n.to(tl.int64)[:, None] * stride_wn + offs_k[None, :] * stride_wk
        tile = tl.load(ptrs, mask=mask, other=0.0).to(tl.float32)
        acc = tl.dot(ones, tile, acc, input_precision="tf32x3")
    rows16 = tl.arange(0, 16)
    colsum = tl.sum(tl.where(rows16[:, None] == 0, acc, 0.0), axis=0)
    tl.store(p_ptr + pid_s.to(tl.int64) * K + offs_k, colsum, mask=mask_k)


@triton.jit
def reduce_partials_kernel(
    p_ptr, wsum_ptr,
    S, K,
    BLOCK_K: tl.constexpr,
):
    pid = tl.program_id(0)
    offs_k = pid * BLOCK_K + tl.arange(0, BLOCK_K)
    mask_k = offs_k < K
    acc = tl.zeros([BLOCK_K], tl.float32)
    for s in range(0, S):
        acc += tl.load(p_ptr + s * K + offs_k, mask=mask_k, other=0.0)
    tl.store(wsum_ptr + offs_k, acc, mask=mask_k)


@triton.jit
def gemv_mma_kernel(
    x_ptr, wsum_ptr, q_ptr,
    M, K,
    stride_xm, stride_xk,
    K_PER_PROG: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_K: tl.constexpr,
):
    pid_m = tl.program_id(0)
    pid_j = tl.program_id(1)
    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    mask_m = offs_m < M
    offs_k0 = tl.arange(0, BLOCK_K)
    cols16 = tl.arange(0, 16)
    acc = tl.zeros([BLOCK_M, 16], tl.float32)
    k_base = pid_j * K_PER_PROG
    for kk in range(0, K_PER_PROG, BLOCK_K):
        ks = k_base + kk + offs_k0
        mk = ks < K
        xt = tl.load(
            x_ptr + offs_m.to(tl.int64)[:, None] * stride_xm + ks[None, :] * stride_xk,
            mask=mask_m[:, None] & mk[None, :], other=0.0,
        ).to(tl.float32)
        wv = tl.load(wsum_ptr + ks, mask=mk, other=0.0)
        wmat = tl.where(cols16[None, :] == 0, wv[:, None], 0.0)
        acc = tl.dot(xt, wmat, acc, input_precision="tf32x3")
    part = tl.sum(tl.where(cols16[None, :] == 0, acc, 0.0), axis=1)
    tl.store(q_ptr + pid_j.to(tl.int64) * M + offs_m, part, mask=mask_m)


@triton.jit
def finalize_kernel(
    q_ptr, b_ptr, out_ptr,
    M, N, J,
    stride_om,
    BLOCK_M: tl.constexpr,
    BLOCK_B: tl.constexpr,
):
    pid = tl.program_id(0)
    offs_m = pid * BLOCK_M + tl.arange(0, BLOCK_M)
    mask_m = offs_m < M
    acc = tl.zeros([BLOCK_M], tl.float32)
    for j in range(0, J):
        acc += tl.load(q_ptr + j * M + offs_m, mask=mask_m, other=0.0)
    offs_b = tl.arange(0, BLOCK_B)
    bacc = tl.zeros([BLOCK_B], tl.float32)
    for n0 in range(0, N, BLOCK_B):
        ns = n0 + offs_b
        bacc += tl.load(b_ptr + ns, mask=ns < N, other=0.0).to(tl.float32)
    total = acc + tl.sum(bacc, axis=0)
    # max / mean / logsumexp / logsumexp over a size-1 dim are identities.
    tl.store(out_ptr + offs_m * stride_om, total, mask=mask_m)


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

        # 1) column sums of W via ones @ W_tile on tensor cores, partial over row chunks
        BLOCK_NC = 64
        BLOCK_KC = min(128, max(16, triton.next_power_of_2(K)))
        ROWS_PER_PROG = 256
        S = triton.cdiv(N, ROWS_PER_PROG)
        partial = torch.empty((S, K), device=dev, dtype=torch.float32)
        colsum_mma_kernel[(triton.cdiv(K, BLOCK_KC), S)](
            w, partial, N, K, w.stride(0), w.stride(1),
            ROWS_PER_PROG=ROWS_PER_PROG, BLOCK_N=BLOCK_NC, BLOCK_K=BLOCK_KC,
            num_warps=4,
        )

        # 2) wsum[K] = sum over chunks
        wsum = torch.empty((K,), device=dev, dtype=torch.float32)
        BLOCK_KR = min(1024, triton.next_power_of_2(K))
        reduce_partials_kernel[(triton.cdiv(K, BLOCK_KR),)](
            partial, wsum, S, K, BLOCK_K=BLOCK_KR, num_warps=4,
        )

        # 3) split-K GEMV x @ wsum on tensor cores -> Q[J, M]
        BLOCK_MG = 16
        BLOCK_KG = 64
        K_PER_PROG = 1024
        J = triton.cdiv(K, K_PER_PROG)
        q = torch.empty((J, M), device=dev, dtype=torch.float32)
        gemv_mma_kernel[(triton.cdiv(M, BLOCK_MG), J)](
            x, wsum, q, M, K, x.stride(0), x.stride(1),
            K_PER_PROG=K_PER_PROG, BLOCK_M=BLOCK_MG, BLOCK_K=BLOCK_KG,
            num_warps=4,
        )

        # 4) out[m] = sum_j Q[j, m] + sum(bias)
        out = torch.empty((M, 1), device=dev, dtype=torch.float32)
        BLOCK_MF = 128
        BLOCK_B = min(1024, triton.next_power_of_2(N))
        finalize_kernel[(triton.cdiv(M, BLOCK_MF),)](
            q, b, out, M, N, J, out.stride(0),
            BLOCK_M=BLOCK_MF, BLOCK_B=BLOCK_B, num_warps=4,
        )
        return out