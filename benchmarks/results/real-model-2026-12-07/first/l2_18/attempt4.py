import torch
import torch.nn as nn
import triton
import triton.language as tl


@triton.jit
def colsum_vec_kernel(
    w_ptr, p_ptr,
    N, K,
    stride_wn,
    ROWS_PER_PROG: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_K: tl.constexpr,
):
    pid_k = tl.program_id(0)
    pid_s = tl.program_id(1)
    offs_k = pid_k * BLOCK_K + tl.arange(0, BLOCK_K)
    mask_k = offs_k < K
    offs_n0 = tl.arange(0, BLOCK_N)
    n_base = pid_s * ROWS_PER_PROG
    acc = tl.zeros([BLOCK_N, BLOCK_K], tl.float32)
    for r in range(0, ROWS_PER_PROG, BLOCK_N):
        offs_n = n_base + r + offs_n0
        mask = (offs_n[:, None] < N) & mask_k[None, :]
        ptrs = w_ptr + offs_n.to(tl.int64)[:, None] * stride_wn + offs_k[None, :]
        acc += tl.load(ptrs, mask=mask, other=0.0).to(tl.float32)
    colsum = tl.sum(acc, axis=0)
    tl.store(p_ptr + pid_s.to(tl.int64) * K + offs_k, colsum, mask=mask_k)


@triton.jit
def gemv_chunk_kernel(
    x_ptr, p_ptr, q_ptr,
    M, K, S,
    stride_xm,
    M_PER_PROG: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_K: tl.constexpr,
):
    pid_m = tl.program_id(0)
    pid_k = tl.program_id(1)
    offs_k = pid_k * BLOCK_K + tl.arange(0, BLOCK_K)
    mask_k = offs_k < K
    # wsum for this K chunk: reduce the column partials (L2-resident, contiguous)
    wv = tl.zeros([BLOCK_K], tl.float32)
    for s in range(0, S):
        wv += tl.load(p_ptr + s * K + offs_k, mask=mask_k, other=0.0)
    offs_m0 = tl.arange(0, BLOCK_M)
    m_base = pid_m * M_PER_PROG
    for mm in range(0, M_PER_PROG, BLOCK_M):
        rows = m_base + mm + offs_m0
        mask_m = rows < M
        xt = tl.load(
            x_ptr + rows.to(tl.int64)[:, None] * stride_xm + offs_k[None, :],
            mask=mask_m[:, None] & mask_k[None, :], other=0.0,
        ).to(tl.float32)
        part = tl.sum(xt * wv[None, :], axis=1)
        tl.store(q_ptr + pid_k.to(tl.int64) * M + rows, part, mask=mask_m)


@triton.jit
def finalize_kernel(
    q_ptr, b_ptr, out_ptr,
    M, N, KC,
    stride_om,
    BLOCK_M: tl.constexpr,
    BLOCK_B: tl.constexpr,
):
    pid = tl.program_id(0)
    offs_m = pid * BLOCK_M + tl.arange(0, BLOCK_M)
    mask_m = offs_m < M
    acc = tl.zeros([BLOCK_M], tl.float32)
    for j in range(0, KC):
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

        # 1) column partial sums of W: P[S, K]
        BLOCK_K = min(512, triton.next_power_of_2(K))
        BLOCK_NC = 16
        ROWS_PER_PROG = 256
        S = triton.cdiv(N, ROWS_PER_PROG)
        partial = torch.empty((S, K), device=dev, dtype=torch.float32)
        colsum_vec_kernel[(triton.cdiv(K, BLOCK_K), S)](
            w, partial, N, K, w.stride(0),
            ROWS_PER_PROG=ROWS_PER_PROG, BLOCK_N=BLOCK_NC, BLOCK_K=BLOCK_K,
            num_warps=8,
        )

        # 2) per-K-chunk GEMV partials: Q[KC, M]
        KC = triton.cdiv(K, BLOCK_K)
        BLOCK_MG = 16
        M_PER_PROG = 64
        q = torch.empty((KC, M), device=dev, dtype=torch.float32)
        gemv_chunk_kernel[(triton.cdiv(M, M_PER_PROG), KC)](
            x, partial, q, M, K, S, x.stride(0),
            M_PER_PROG=M_PER_PROG, BLOCK_M=BLOCK_MG, BLOCK_K=BLOCK_K,
            num_warps=8,
        )

        # 3) out[m] = sum_j Q[j, m] + sum(bias)
        out = torch.empty((M, 1), device=dev, dtype=torch.float32)
        BLOCK_MF = 128
        BLOCK_B = min(1024, triton.next_power_of_2(N))
        finalize_kernel[(triton.cdiv(M, BLOCK_MF),)](
            q, b, out, M, N, KC, out.stride(0),
            BLOCK_M=BLOCK_MF, BLOCK_B=BLOCK_B, num_warps=4,
        )
        return out