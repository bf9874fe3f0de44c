import torch
import torch.nn as nn
import triton
import triton.language as tl


@triton.jit
def colsum_partial_kernel(
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
    n_base = pid_s * ROWS_PER_PROG
    acc = tl.zeros([BLOCK_K], tl.float32)
    for r in range(0, ROWS_PER_PROG, BLOCK_N):
        offs_n = n_base + r + offs_n0
        mask = (offs_n[:, None] < N) & mask_k[None, :]
        ptrs = w_ptr + offs_n.to(tl.int64)[:, None] * stride_wn + offs_k[None, :] * stride_wk
        tile = tl.load(ptrs, mask=mask, other=0.0).to(tl.float32)
        acc += tl.sum(tile, axis=0)
    tl.store(p_ptr + pid_s.to(tl.int64) * K + offs_k, acc, mask=mask_k)


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
def gemv_bias_kernel(
    x_ptr, wsum_ptr, b_ptr, out_ptr,
    K, N,
    stride_xm, stride_xk,
    stride_om,
    BLOCK_K: tl.constexpr,
    BLOCK_B: tl.constexpr,
):
    row = tl.program_id(0).to(tl.int64)
    offs = tl.arange(0, BLOCK_K)
    acc = tl.zeros([BLOCK_K], tl.float32)
    for k0 in range(0, K, BLOCK_K):
        ks = k0 + offs
        mk = ks < K
        xv = tl.load(x_ptr + row * stride_xm + ks * stride_xk, mask=mk, other=0.0).to(tl.float32)
        wv = tl.load(wsum_ptr + ks, mask=mk, other=0.0)
        acc += xv * wv
    offs_b = tl.arange(0, BLOCK_B)
    bacc = tl.zeros([BLOCK_B], tl.float32)
    for n0 in range(0, N, BLOCK_B):
        ns = n0 + offs_b
        bacc += tl.load(b_ptr + ns, mask=ns < N, other=0.0).to(tl.float32)
    total = tl.sum(acc, axis=0) + tl.sum(bacc, axis=0)
    tl.store(out_ptr + row * stride_om, total)


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

        # 1) column sums of W (over out_features), in partial chunks.
        BLOCK_KC = min(256, triton.next_power_of_2(K))
        BLOCK_NC = 32
        ROWS_PER_PROG = 256
        S = triton.cdiv(N, ROWS_PER_PROG)
        partial = torch.empty((S, K), device=dev, dtype=torch.float32)
        grid1 = (triton.cdiv(K, BLOCK_KC), S)
        colsum_partial_kernel[grid1](
            w, partial, N, K,
            w.stride(0), w.stride(1),
            ROWS_PER_PROG=ROWS_PER_PROG, BLOCK_N=BLOCK_NC, BLOCK_K=BLOCK_KC,
            num_warps=8,
        )

        # 2) reduce partials -> wsum[K]
        wsum = torch.empty((K,), device=dev, dtype=torch.float32)
        BLOCK_KR = min(1024, triton.next_power_of_2(K))
        reduce_partials_kernel[(triton.cdiv(K, BLOCK_KR),)](
            partial, wsum, S, K, BLOCK_K=BLOCK_KR, num_warps=4,
        )

        # 3) out[m] = x[m,:] . wsum + sum(bias)
        #    (sum over dim 1, then max/mean/logsumexp/logsumexp over a size-1 dim are identities)
        out = torch.empty((M, 1), device=dev, dtype=torch.float32)
        BLOCK_KG = min(2048, triton.next_power_of_2(K))
        BLOCK_B = min(2048, triton.next_power_of_2(N))
        gemv_bias_kernel[(M,)](
            x, wsum, b, out, K, N,
            x.stride(0), x.stride(1), out.stride(0),
            BLOCK_K=BLOCK_KG, BLOCK_B=BLOCK_B, num_warps=4,
        )
        return out