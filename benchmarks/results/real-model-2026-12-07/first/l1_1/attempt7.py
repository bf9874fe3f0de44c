import torch
import torch.nn as nn
import triton
import triton.language as tl


@triton.jit
def matmul_vec_kernel(
    a_ptr, b_ptr, c_ptr,
    M, N, K,
    stride_am, stride_bk, stride_cm,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
    GROUP_M: tl.constexpr,
    EVEN_K: tl.constexpr, EVEN_N: tl.constexpr,
):
    # A, B, C are row-major with unit stride along the last dimension (implicit here, so the
    # compiler knows each row segment is contiguous and can use 16-byte vector accesses).
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

    a_ptrs = a_ptr + offs_m[:, None] * stride_am + offs_k[None, :]   # contiguous along K
    b_ptrs = b_ptr + offs_k[:, None] * stride_bk + offs_n[None, :]   # contiguous along N
    b_step = BLOCK_K * stride_bk

    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    for k in range(0, tl.cdiv(K, BLOCK_K)):
        # A: its mask may vary along K (its contiguous axis) only when K has a ragged edge
        if EVEN_K:
            a = tl.load(a_ptrs, mask=mask_m[:, None], other=0.0)
        else:
            a = tl.load(a_ptrs, mask=mask_m[:, None] & (offs_k[None, :] < K - k * BLOCK_K), other=0.0)
        # B: contiguous along N, so its mask must be constant along N for vector loads
        if EVEN_K:
            if EVEN_N:
                b = tl.load(b_ptrs)
            else:
                b = tl.load(b_ptrs, mask=mask_n[None, :], other=0.0)
        else:
            b = tl.load(b_ptrs, mask=(offs_k[:, None] < K - k * BLOCK_K) & mask_n[None, :], other=0.0)
        acc = tl.dot(a, b, acc, input_precision="tf32x3")
        a_ptrs += BLOCK_K
        b_ptrs += b_step

    c_ptrs = c_ptr + offs_m[:, None] * stride_cm + offs_n[None, :]
    if EVEN_N:
        tl.store(c_ptrs, acc, mask=mask_m[:, None])
    else:
        tl.store(c_ptrs, acc, mask=mask_m[:, None] & mask_n[None, :])


class ModelNew(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, A: torch.Tensor, B: torch.Tensor) -> torch.Tensor:
        # unit inner stride is required by the kernel (no-op for the usual contiguous inputs)
        A = A.contiguous()
        B = B.contiguous()
        M, K = A.shape
        K2, N = B.shape
        assert K == K2, "inner dimensions must match"
        C = torch.empty((M, N), device=A.device, dtype=torch.float32)

        if M >= 128 and N >= 128:
            BLOCK_M, BLOCK_N, BLOCK_K = 128, 128, 32
            num_warps, num_stages = 8, 4
        else:
            BLOCK_M, BLOCK_N, BLOCK_K = 64, 64, 32
            num_warps, num_stages = 4, 3

        grid = (triton.cdiv(M, BLOCK_M) * triton.cdiv(N, BLOCK_N),)
        matmul_vec_kernel[grid](
            A, B, C,
            M, N, K,
            A.stride(0), B.stride(0), C.stride(0),
            BLOCK_M=BLOCK_M, BLOCK_N=BLOCK_N, BLOCK_K=BLOCK_K,
            GROUP_M=8,
            EVEN_K=(K % BLOCK_K == 0), EVEN_N=(N % BLOCK_N == 0),
            num_warps=num_warps, num_stages=num_stages,
        )
        return C