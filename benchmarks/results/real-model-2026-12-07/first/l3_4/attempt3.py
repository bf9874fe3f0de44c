import torch
import torch.nn as nn
import triton
import triton.language as tl


@triton.jit
def conv_relu_pool_kernel(
    x_ptr, w_ptr, b_ptr, y_ptr,
    B, C_in, H, W, C_out, PH, PW,
    KS: tl.constexpr, KTOT: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
):
    pid = tl.program_id(0)
    M = B * PH * PW
    offs_m = pid * BLOCK_M + tl.arange(0, BLOCK_M)
    m_mask = offs_m < M

    # pooled output position (n, ph, pw)
    pw = offs_m % PW
    t = offs_m // PW
    ph = t % PH
    n = t // PH
    # input offset of the top-left conv output under each pooling window
    row_base = n * (C_in * H * W) + (2 * ph) * W + 2 * pw

    offs_n = tl.arange(0, BLOCK_N)
    n_mask = offs_n < C_out

    acc00 = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    acc01 = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    acc10 = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    acc11 = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)

    for k0 in range(0, KTOT, BLOCK_K):
        kk = k0 + tl.arange(0, BLOCK_K)
        k_mask = kk < KTOT
        ci = kk // (KS * KS)
        r = kk % (KS * KS)
        kh = r // KS
        kw = r % KS
        col = ci * (H * W) + kh * W + kw

        # W^T tile [BLOCK_K, BLOCK_N]: w[co, k] with w viewed as [C_out, KTOT]
        wt = tl.load(w_ptr + offs_n[None, :] * KTOT + kk[:, None],
                     mask=k_mask[:, None] & n_mask[None, :], other=0.0)

        a_ptrs = x_ptr + row_base[:, None] + col[None, :]
        a_mask = m_mask[:, None] & k_mask[None, :]
        a = tl.load(a_ptrs, mask=a_mask, other=0.0)
        acc00 += tl.dot(a, wt, input_precision="ieee")
        a = tl.load(a_ptrs + 1, mask=a_mask, other=0.0)
        acc01 += tl.dot(a, wt, input_precision="ieee")
        a = tl.load(a_ptrs + W, mask=a_mask, other=0.0)
        acc10 += tl.dot(a, wt, input_precision="ieee")
        a = tl.load(a_ptrs + W + 1, mask=a_mask, other=0.0)
        acc11 += tl.dot(a, wt, input_precision="ieee")

    bias = tl.load(b_ptr + offs_n, mask=n_mask, other=0.0)
    res = tl.maximum(tl.maximum(acc00, acc01), tl.maximum(acc10, acc11)) + bias[None, :]
    res = tl.maximum(res, 0.0)

    # NCHW store: y[n, co, ph, pw]
    out_row = n * (C_out * PH * PW) + ph * PW + pw
    y_ptrs = y_ptr + out_row[:, None] + offs_n[None, :] * (PH * PW)
    tl.store(y_ptrs, res, mask=m_mask[:, None] & n_mask[None, :])


@triton.jit
def linear_bias_act_kernel(
    x_ptr, w_ptr, b_ptr, y_ptr,
    M, N, K,
    stride_xm, stride_xk,
    stride_wn, stride_wk,
    stride_ym, stride_yn,
    APPLY_RELU: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
):
    pid_m = tl.program_id(0)
    pid_n = tl.program_id(1)
    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    offs_k = tl.arange(0, BLOCK_K)
    m_mask = offs_m < M
    n_mask = offs_n < N

    x_ptrs = x_ptr + offs_m[:, None] * stride_xm + offs_k[None, :] * stride_xk
    w_ptrs = w_ptr + offs_k[:, None] * stride_wk + offs_n[None, :] * stride_wn

    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    for k0 in range(0, K, BLOCK_K):
        k_mask = (k0 + offs_k) < K
        a = tl.load(x_ptrs, mask=m_mask[:, None] & k_mask[None, :], other=0.0)
        b = tl.load(w_ptrs, mask=k_mask[:, None] & n_mask[None, :], other=0.0)
        acc += tl.dot(a, b, input_precision="ieee")
        x_ptrs += BLOCK_K * stride_xk
        w_ptrs += BLOCK_K * stride_wk

    bias = tl.load(b_ptr + offs_n, mask=n_mask, other=0.0)
    acc = acc + bias[None, :]
    if APPLY_RELU:
        acc = tl.maximum(acc, 0.0)
    y_ptrs = y_ptr + offs_m[:, None] * stride_ym + offs_n[None, :] * stride_yn
    tl.store(y_ptrs, acc, mask=m_mask[:, None] & n_mask[None, :])


def _conv_relu_pool(x, weight, bias, block_m, num_warps):
    x = x.contiguous()
    weight = weight.contiguous()
    B, C_in, H, W = x.shape
    C_out, _, KS, _ = weight.shape
    PH = (H - KS + 1) // 2
    PW = (W - KS + 1) // 2
    y = torch.empty((B, C_out, PH, PW), device=x.device, dtype=torch.float32)
    M = B * PH * PW
    KTOT = C_in * KS * KS
    BLOCK_N = max(16, triton.next_power_of_2(C_out))
    BLOCK_K = max(16, min(32, triton.next_power_of_2(KTOT)))
    grid = (triton.cdiv(M, block_m),)
    conv_relu_pool_kernel[grid](
        x, weight, bias, y,
        B, C_in, H, W, C_out, PH, PW,
        KS=KS, KTOT=KTOT,
        BLOCK_M=block_m, BLOCK_N=BLOCK_N, BLOCK_K=BLOCK_K,
        num_warps=num_warps, num_stages=2,
    )
    return y


def _linear(x, weight, bias, relu):
    M, K = x.shape
    N = weight.shape[0]
    y = torch.empty((M, N), device=x.device, dtype=torch.float32)
    BLOCK_M = 32
    BLOCK_N = min(128, max(16, triton.next_power_of_2(N)))
    BLOCK_K = 32
    grid = (triton.cdiv(M, BLOCK_M), triton.cdiv(N, BLOCK_N))
    linear_bias_act_kernel[grid](
        x, weight, bias, y,
        M, N, K,
        x.stride(0), x.stride(1),
        weight.stride(0), weight.stride(1),
        y.stride(0), y.stride(1),
        APPLY_RELU=relu,
        BLOCK_M=BLOCK_M, BLOCK_N=BLOCK_N, BLOCK_K=BLOCK_K,
        num_warps=4, num_stages=3,
    )
    return y


class ModelNew(nn.Module):
    def __init__(self, num_classes):
        super(ModelNew, self).__init__()
        self.conv1 = nn.Conv2d(in_channels=1, out_channels=6, kernel_size=5, stride=1)
        self.conv2 = nn.Conv2d(in_channels=6, out_channels=16, kernel_size=5, stride=1)
        self.fc1 = nn.Linear(in_features=16 * 5 * 5, out_features=120)
        self.fc2 = nn.Linear(in_features=120, out_features=84)
        self.fc3 = nn.Linear(in_features=84, out_features=num_classes)

    def forward(self, x):
        x = _conv_relu_pool(x, self.conv1.weight, self.conv1.bias, block_m=256, num_warps=8)
        x = _conv_relu_pool(x, self.conv2.weight, self.conv2.bias, block_m=128, num_warps=4)
        x = x.view(x.shape[0], -1)
        x = _linear(x, self.fc1.weight, self.fc1.bias, relu=True)
        x = _linear(x, self.fc2.weight, self.fc2.bias, relu=True)
        x = _linear(x, self.fc3.weight, self.fc3.bias, relu=False)
        return x