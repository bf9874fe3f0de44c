import torch
import torch.nn as nn
import triton
import triton.language as tl


@triton.jit
def gemm_leaky_big_tile_kernel(
    x_ptr, w_ptr, b_ptr, y_ptr,
    M, N, K,
    stride_xm, stride_wn, stride_ym,
    multiplier, negative_slope,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
    GROUP_M: tl.constexpr,
    EVEN_K: tl.constexpr, EVEN_N: tl.constexpr,
):
    # x, W and y are contiguous along their last dimension (unit stride is implicit, so
    # the compiler sees contiguous runs along K / N and can issue 16-byte vector accesses).
    pid = tl.program_id(0)
    num_pid_m = tl.cdiv(M, BLOCK_M)
    num_pid_n = tl.cdiv(N, BLOCK_N)
    num_pid_in_group = GROUP_M * num_pid_n
    group_id = pid // num_pid_in_group
    first_pid_m = group_id * GROUP_M
    group_size_m = tl.minimum(num_pid_m - first_pid_m, GROUP_M)
    pid_in_group = pid % num_pid_in_group
    pid_m = first_pid_m + (pid_in_group % group_size_m)
    pid_n = pid_in_group // group_size_m

    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    offs_k = tl.arange(0, BLOCK_K)
    mask_m = offs_m < M
    mask_n = offs_n < N

    # row pointers computed once; inside the loop only a scalar offset advances
    x_ptrs = x_ptr + offs_m[:, None] * stride_xm + offs_k[None, :]
    w_ptrs = w_ptr + offs_n[:, None] * stride_wn + offs_k[None, :]

    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    for k in range(0, tl.cdiv(K, BLOCK_K)):
        if EVEN_K:
            # no edge along K: masks are constant along the contiguous dimension,
            # so each thread loads 4 consecutive floats with one 128-bit access
            a = tl.load(x_ptrs, mask=mask_m[:, None], other=0.0)
            w = tl.load(w_ptrs, mask=mask_n[:, None], other=0.0)
        else:
            k_rem = K - k * BLOCK_K
            mask_k = offs_k < k_rem
            a = tl.load(x_ptrs, mask=mask_m[:, None] & mask_k[None, :], other=0.0)
            w = tl.load(w_ptrs, mask=mask_n[:, None] & mask_k[None, :], other=0.0)
        acc = tl.dot(a, tl.trans(w), acc, input_precision="tf32x3")
        x_ptrs += BLOCK_K
        w_ptrs += BLOCK_K

    # epilogue in registers: (acc + b) * m = acc * m + (b * m), then LeakyReLU
    bias = tl.load(b_ptr + offs_n, mask=mask_n, other=0.0)
    t = acc * multiplier + (bias * multiplier)[None, :]
    acc = t * tl.where(t > 0, 1.0, negative_slope)

    y_ptrs = y_ptr + offs_m[:, None] * stride_ym + offs_n[None, :]
    if EVEN_N:
        tl.store(y_ptrs, acc, mask=mask_m[:, None])
    else:
        tl.store(y_ptrs, acc, mask=mask_m[:, None] & mask_n[None, :])


class ModelNew(nn.Module):
    def __init__(self, in_features, out_features, multiplier, negative_slope):
        super().__init__()
        self.gemm = nn.Linear(in_features, out_features)
        self.multiplier = multiplier
        self.negative_slope = negative_slope

    def forward(self, x):
        # unit stride along the last dim is required by the kernel (no-op for the usual inputs)
        x = x.contiguous()
        w = self.gemm.weight.contiguous()
        b = self.gemm.bias.contiguous()
        M, K = x.shape
        N = w.shape[0]
        y = torch.empty((M, N), device=x.device, dtype=torch.float32)

        if M >= 128 and N >= 256:
            # 128x256 tile: accumulator 128 fp32 regs/thread (8 warps = 2 warpgroups of 64x256);
            # staged operands (128 + 256) x 32 fp32 = 48 KB per stage, 3 stages = 144 KB smem
            BLOCK_M, BLOCK_N, BLOCK_K = 128, 256, 32
            num_warps, num_stages = 8, 3
        elif M >= 128 and N >= 128:
            BLOCK_M, BLOCK_N, BLOCK_K = 128, 128, 32
            num_warps, num_stages = 8, 4
        else:
            BLOCK_M, BLOCK_N, BLOCK_K = 64, 64, 32
            num_warps, num_stages = 4, 3

        grid = (triton.cdiv(M, BLOCK_M) * triton.cdiv(N, BLOCK_N),)
        gemm_leaky_big_tile_kernel[grid](
            x, w, b, y,
            M, N, K,
            x.stride(0), w.stride(0), y.stride(0),
            float(self.multiplier), float(self.negative_slope),
            BLOCK_M=BLOCK_M, BLOCK_N=BLOCK_N, BLOCK_K=BLOCK_K,
            GROUP_M=8,
            EVEN_K=(K % BLOCK_K == 0), EVEN_N=(N % BLOCK_N == 0),
            num_warps=num_warps, num_stages=num_stages,
        )
        return y