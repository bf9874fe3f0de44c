import torch
import torch.nn as nn
import triton
import triton.language as tl


@triton.jit
def strip_colsum_gemv_kernel(
    w_ptr, x_ptr, q_ptr,
    M, N, K,
    stride_wn, stride_xm,
    BLOCK_N: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_K: tl.constexpr,
):
    pid = tl.program_id(0)
    offs_k = pid * BLOCK_K + tl.arange(0, BLOCK_K)
    mask_k = offs_k < K

    # (a) full column sum of the W strip, kept in registers
    offs_n0 = tl.arange(0, BLOCK_N)
    acc = tl.zeros([BLOCK_N, BLOCK_K], tl.float32)
    for n0 in range(0, N, BLOCK_N):
        offs_n = n0 + offs_n0
        mask = (offs_n[:, None] < N) & mask_k[None, :]
        ptrs = w_ptr + offs_n.to(tl.int64)[:, None] * stride_wn + offs_k[None, :]
        acc += tl.load(ptrs, mask=mask, other=0.0).to(tl.float32)
    wsum = tl.sum(acc, axis=0)  # [BLOCK_K]

    # (b) reuse the strip against every row of x
    offs_m0 = tl.arange(0, BLOCK_M)
    q_row = q_ptr + pid.to(tl.int64) * M
    for m0 in range(0, M, BLOCK_M):
        rows = m0 + offs_m0
        mask_m = rows < M
        xt = tl.load(
            x_ptr + rows.to(tl.int64)[:, None] * stride_xm + offs_k[None, :],
            mask=mask_m[:, None] & mask_k[None, :], other=0.0,
        ).to(tl.float32)
        part = tl.sum(xt * wsum[None, :], axis=1)
        tl.store(q_row + rows, part, mask=mask_m)


@triton.jit
def finalize_kernel(
    q_ptr, b_ptr, out_ptr,
    M, N, KC,
    stride_om,
    BLOCK_J: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_B: tl.constexpr,
):
    pid = tl.program_id(0)
    offs_m = pid * BLOCK_M + tl.arange(0, BLOCK_M)
    mask_m = offs_m < M
    offs_j0 = tl.arange(0, BLOCK_J)
    acc = tl.zeros([BLOCK_J, BLOCK_M], tl.float32)
    for j0 in range(0, KC, BLOCK_J):
        js = j0 + offs_j0
        mask = (js[:, None] < KC) & mask_m[None, :]
        acc += tl.load(q_ptr + js.to(tl.int64)[:, None] * M + offs_m[None, :],
                       mask=mask, other=0.0)
    total = tl.sum(acc, axis=0)
    offs_b = tl.arange(0, BLOCK_B)
    bacc = tl.zeros([BLOCK_B], tl.float32)
    for n0 in range(0, N, BLOCK_B):
        ns = n0 + offs_b
        bacc += tl.load(b_ptr + ns, mask=ns < N, other=0.0).to(tl.float32)
    total = total + tl.sum(bacc, axis=0)
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

        BLOCK_K = 32
        BLOCK_N = 256
        BLOCK_M = 256
        KC = triton.cdiv(K, BLOCK_K)
        q = torch.empty((KC, M), device=dev, dtype=torch.float32)
        strip_colsum_gemv_kernel[(KC,)](
            w, x, q, M, N, K,
            w.stride(0), x.stride(0),
            BLOCK_N=BLOCK_N, BLOCK_M=BLOCK_M, BLOCK_K=BLOCK_K,
            num_warps=8,
        )

        out = torch.empty((M, 1), device=dev, dtype=torch.float32)
        BLOCK_J = 64
        BLOCK_MF = 64
        BLOCK_B = min(1024, triton.next_power_of_2(N))
        finalize_kernel[(triton.cdiv(M, BLOCK_MF),)](
            q, b, out, M, N, KC, out.stride(0),
            BLOCK_J=BLOCK_J, BLOCK_M=BLOCK_MF, BLOCK_B=BLOCK_B,
            num_warps=4,
        )
        return out