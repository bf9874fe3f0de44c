import torch
import torch.nn as nn
import triton
import triton.language as tl


@triton.jit
def _gemm_bias_relu_bigtile_kernel(
    a_ptr, w_ptr, bias_ptr, c_ptr,
    M, N, K,
    stride_am, stride_wn, stride_cm,
    EVEN_K: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
    GROUP_M: tl.constexpr,
):
    # A: [M, K] row-major, W: [N, K] row-major (both unit stride along K)
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
    rm = offs_m % M
    rn = offs_n % N

    a_ptrs = a_ptr + rm[:, None].to(tl.int64) * stride_am + offs_k[None, :]
    w_ptrs = w_ptr + rn[:, None].to(tl.int64) * stride_wn + offs_k[None, :]

    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    for k0 in range(0, K, BLOCK_K):
        if EVEN_K:
            a = tl.load(a_ptrs)
            w = tl.load(w_ptrs)
        else:
            k_mask = offs_k[None, :] < K - k0
            a = tl.load(a_ptrs, mask=k_mask, other=0.0)
            w = tl.load(w_ptrs, mask=k_mask, other=0.0)
        acc = tl.dot(a, tl.trans(w), acc, input_precision="tf32x3")
        a_ptrs += BLOCK_K
        w_ptrs += BLOCK_K

    n_mask = offs_n < N
    bias = tl.load(bias_ptr + offs_n, mask=n_mask, other=0.0)
    acc = tl.maximum(acc + bias[None, :], 0.0)

    c_ptrs = c_ptr + offs_m[:, None].to(tl.int64) * stride_cm + offs_n[None, :]
    c_mask = (offs_m[:, None] < M) & n_mask[None, :]
    tl.store(c_ptrs, acc, mask=c_mask)


class ModelNew(nn.Module):
    def __init__(self, in_features, out_features, bias_shape):
        super(ModelNew, self).__init__()
        self.gemm = nn.Linear(in_features, out_features, bias=False)
        self.bias = nn.Parameter(torch.randn(bias_shape))

    def forward(self, x):
        orig_shape = x.shape
        a = x.reshape(-1, orig_shape[-1]).contiguous()
        w = self.gemm.weight.contiguous()
        bias = self.bias.reshape(-1).contiguous()
        M, K = a.shape
        N = w.shape[0]
        out = torch.empty((M, N), device=x.device, dtype=x.dtype)

        # big tiles when they still fill the GPU (132 SMs), smaller otherwise
        if triton.cdiv(M, 128) * triton.cdiv(N, 256) >= 132:
            BLOCK_M, BLOCK_N, BLOCK_K, warps, stages = 128, 256, 32, 8, 3
        else:
            BLOCK_M, BLOCK_N, BLOCK_K, warps, stages = 64, 128, 32, 4, 3
        GROUP_M = 8
        grid = (triton.cdiv(M, BLOCK_M) * triton.cdiv(N, BLOCK_N),)
        _gemm_bias_relu_bigtile_kernel[grid](
            a, w, bias, out,
            M, N, K,
            a.stride(0), w.stride(0), out.stride(0),
            EVEN_K=(K % BLOCK_K == 0),
            BLOCK_M=BLOCK_M, BLOCK_N=BLOCK_N, BLOCK_K=BLOCK_K,
            GROUP_M=GROUP_M,
            num_warps=warps, num_stages=stages,
        )
        return out.reshape(*orig_shape[:-1], N)