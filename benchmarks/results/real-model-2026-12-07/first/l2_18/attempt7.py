import torch
import torch.nn as nn
import triton
import triton.language as tl


@triton.jit
def colsum_bias_kernel(
    w_ptr, b_ptr, wsum_ptr, bsum_ptr,
    N, K, KC,
    stride_wn,
    BLOCK_N: tl.constexpr,
    BLOCK_K: tl.constexpr,
    BLOCK_B: tl.constexpr,
):
    pid = tl.program_id(0)
    if pid < KC:
        offs_k = pid * BLOCK_K + tl.arange(0, BLOCK_K)
        mask_k = offs_k < K
        offs_n0 = tl.arange(0, BLOCK_N)
        acc = tl.zeros([BLOCK_N, BLOCK_K], tl.float32)
        for n0 in range(0, N, BLOCK_N):
            offs_n = n0 + offs_n0
            mask = (offs_n[:, None] < N) & mask_k[None, :]
            ptrs = w_ptr + offs_n.to(tl.int64)[:, None] * stride_wn + offs_k[None, :]
            acc += tl.load(ptrs, mask=mask, other=0.0).to(tl.float32)
        tl.store(wsum_ptr + offs_k, tl.sum(acc, axis=0), mask=mask_k)
    else:
        offs_b = tl.arange(0, BLOCK_B)
        bacc = tl.zeros([BLOCK_B], tl.float32)
        for nb in range(0, N, BLOCK_B):
            ns = nb + offs_b
            bacc += tl.load(b_ptr + ns, mask=ns < N, other=0.0).to(tl.float32)
        tl.store(bsum_ptr, tl.sum(bacc, axis=0))


@triton.jit
def gemv_out_kernel(
    x_ptr, wsum_ptr, bsum_ptr, out_ptr,
    M, K,
    stride_xm, stride_om,
    BLOCK_M: tl.constexpr,
    BLOCK_K: tl.constexpr,
):
    pid = tl.program_id(0)
    rows = pid * BLOCK_M + tl.arange(0, BLOCK_M)
    mask_m = rows < M
    offs_k0 = tl.arange(0, BLOCK_K)
    acc = tl.zeros([BLOCK_M, BLOCK_K], tl.float32)
    for k0 in range(0, K, BLOCK_K):
        ks = k0 + offs_k0
        mk = ks < K
        wv = tl.load(wsum_ptr + ks, mask=mk, other=0.0)
        xt = tl.load(
            x_ptr + rows.to(tl.int64)[:, None] * stride_xm + ks[None, :],
            mask=mask_m[:, None] & mk[None, :], other=0.0,
        ).to(tl.float32)
        acc += xt * wv[None, :]
    bsum = tl.load(bsum_ptr)
    total = tl.sum(acc, axis=1) + bsum
    # max / mean / logsumexp / logsumexp over a size-1 dim are identities.
    tl.store(out_ptr + rows * stride_om, total, mask=mask_m)


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

        # 1) wsum[K] = colsum(W) (one program per 32-column strip) + bsum (extra program)
        BLOCK_KS = 32
        KC = triton.cdiv(K, BLOCK_KS)
        wsum = torch.empty((K,), device=dev, dtype=torch.float32)
        bsum = torch.empty((1,), device=dev, dtype=torch.float32)
        colsum_bias_kernel[(KC + 1,)](
            w, b, wsum, bsum, N, K, KC, w.stride(0),
            BLOCK_N=256, BLOCK_K=BLOCK_KS,
            BLOCK_B=min(1024, triton.next_power_of_2(N)),
            num_warps=8,
        )

        # 2) out[m] = x[m,:] . wsum + bsum
        out = torch.empty((M, 1), device=dev, dtype=torch.float32)
        BLOCK_MG = 4
        BLOCK_KG = min(2048, triton.next_power_of_2(K))
        gemv_out_kernel[(triton.cdiv(M, BLOCK_MG),)](
            x, wsum, bsum, out, M, K,
            x.stride(0), out.stride(0),
            BLOCK_M=BLOCK_MG, BLOCK_K=BLOCK_KG,
            num_warps=8,
        )
        return out