import torch
import torch.nn as nn
import triton
import triton.language as tl


@triton.jit
def linear_rowsum_kernel(
    x_ptr, w_ptr, b_ptr, part_ptr,
    M, N, K,
    stride_xm, stride_xk,
    stride_wn, stride_wk,
    stride_pm, stride_pn,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_K: tl.constexpr,
    GROUP_M: tl.constexpr,
):
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

    x_ptrs = x_ptr + offs_m.to(tl.int64)[:, None] * stride_xm + offs_k[None, :] * stride_xk
    # B tile [BLOCK_K, BLOCK_N] with B[k, n] = W[n, k]
    w_ptrs = w_ptr + offs_k[:, None] * stride_wk + offs_n.to(tl.int64)[None, :] * stride_wn

    acc = tl.zeros([BLOCK_M, BLOCK_N], dtype=tl.float32)
    for k0 in range(0, K, BLOCK_K):
        k_mask = (k0 + offs_k) < K
        a = tl.load(x_ptrs, mask=mask_m[:, None] & k_mask[None, :], other=0.0)
        bt = tl.load(w_ptrs, mask=k_mask[:, None] & mask_n[None, :], other=0.0)
        acc = tl.dot(a, bt, acc, input_precision="tf32x3")
        x_ptrs += BLOCK_K * stride_xk
        w_ptrs += BLOCK_K * stride_wk

    bias = tl.load(b_ptr + offs_n, mask=mask_n, other=0.0).to(tl.float32)
    acc = acc + bias[None, :]
    acc = tl.where(mask_n[None, :], acc, 0.0)
    row_part = tl.sum(acc, axis=1)
    tl.store(part_ptr + offs_m.to(tl.int64) * stride_pm + pid_n * stride_pn, row_part, mask=mask_m)


@triton.jit
def sum_partials_kernel(
    part_ptr, out_ptr,
    M, T,
    stride_pm, stride_pn,
    stride_om,
    BLOCK_M: tl.constexpr,
    BLOCK_T: tl.constexpr,
):
    pid = tl.program_id(0)
    offs_m = pid * BLOCK_M + tl.arange(0, BLOCK_M)
    mask_m = offs_m < M
    offs_t = tl.arange(0, BLOCK_T)
    acc = tl.zeros([BLOCK_M, BLOCK_T], tl.float32)
    for t0 in range(0, T, BLOCK_T):
        ts = t0 + offs_t
        mask = mask_m[:, None] & (ts[None, :] < T)
        acc += tl.load(part_ptr + offs_m[:, None] * stride_pm + ts[None, :] * stride_pn,
                       mask=mask, other=0.0)
    total = tl.sum(acc, axis=1)
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

        BLOCK_M = 128 if M >= 128 else max(16, triton.next_power_of_2(M))
        BLOCK_N = 128 if N >= 128 else max(16, triton.next_power_of_2(N))
        BLOCK_K = 32
        GROUP_M = 8
        num_pid_m = triton.cdiv(M, BLOCK_M)
        num_pid_n = triton.cdiv(N, BLOCK_N)

        partial = torch.empty((M, num_pid_n), device=x.device, dtype=torch.float32)
        linear_rowsum_kernel[(num_pid_m * num_pid_n,)](
            x, w, b, partial,
            M, N, K,
            x.stride(0), x.stride(1),
            w.stride(0), w.stride(1),
            partial.stride(0), partial.stride(1),
            BLOCK_M=BLOCK_M, BLOCK_N=BLOCK_N, BLOCK_K=BLOCK_K, GROUP_M=GROUP_M,
            num_warps=8, num_stages=3,
        )

        out = torch.empty((M, 1), device=x.device, dtype=torch.float32)
        BLOCK_MR = 64
        BLOCK_T = min(64, triton.next_power_of_2(num_pid_n))
        sum_partials_kernel[(triton.cdiv(M, BLOCK_MR),)](
            partial, out, M, num_pid_n,
            partial.stride(0), partial.stride(1),
            out.stride(0),
            BLOCK_M=BLOCK_MR, BLOCK_T=BLOCK_T, num_warps=4,
        )
        return out