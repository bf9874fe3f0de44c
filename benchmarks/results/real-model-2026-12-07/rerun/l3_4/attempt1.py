import torch
import torch.nn as nn
import triton
import triton.language as tl


@triton.jit
def conv_relu_pool_direct_kernel(
    x_ptr, w_ptr, b_ptr, y_ptr,
    P_total, C_IN, H, W, C_OUT, PH, PW,
    KS: tl.constexpr, CO_PAD: tl.constexpr, BLOCK_P: tl.constexpr,
):
    pid = tl.program_id(0)
    p = pid * BLOCK_P + tl.arange(0, BLOCK_P)
    p_ok = p < P_total
    pw = p % PW
    t = p // PW
    ph = t % PH
    n = t // PH
    x_base = n.to(tl.int64) * (C_IN * H * W) + (2 * ph) * W + 2 * pw

    co = tl.arange(0, CO_PAD)
    co_ok = co < C_OUT

    acc00 = tl.zeros((CO_PAD, BLOCK_P), dtype=tl.float32)
    acc01 = tl.zeros((CO_PAD, BLOCK_P), dtype=tl.float32)
    acc10 = tl.zeros((CO_PAD, BLOCK_P), dtype=tl.float32)
    acc11 = tl.zeros((CO_PAD, BLOCK_P), dtype=tl.float32)

    for ci in range(0, C_IN):
        for kh in tl.static_range(KS):
            for kw in tl.static_range(KS):
                wv = tl.load(w_ptr + co * (C_IN * KS * KS) + ci * (KS * KS) + kh * KS + kw,
                             mask=co_ok, other=0.0)
                src = x_ptr + x_base + ci * (H * W) + kh * W + kw
                x00 = tl.load(src, mask=p_ok, other=0.0)
                x01 = tl.load(src + 1, mask=p_ok, other=0.0)
                x10 = tl.load(src + W, mask=p_ok, other=0.0)
                x11 = tl.load(src + W + 1, mask=p_ok, other=0.0)
                wcol = wv[:, None]
                acc00 += wcol * x00[None, :]
                acc01 += wcol * x01[None, :]
                acc10 += wcol * x10[None, :]
                acc11 += wcol * x11[None, :]

    bias = tl.load(b_ptr + co, mask=co_ok, other=0.0)
    v = tl.maximum(tl.maximum(acc00, acc01), tl.maximum(acc10, acc11))
    v = tl.maximum(v + bias[:, None], 0.0)

    out_base = n.to(tl.int64) * (C_OUT * PH * PW) + ph * PW + pw
    y_ptrs = y_ptr + out_base[None, :] + co[:, None] * (PH * PW)
    tl.store(y_ptrs, v, mask=co_ok[:, None] & p_ok[None, :])


@triton.jit
def linear_kernel(
    x_ptr, w_ptr, b_ptr, y_ptr,
    M, N, K,
    stride_xm, stride_wn, stride_ym,
    APPLY_RELU: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
):
    pid_m = tl.program_id(0)
    pid_n = tl.program_id(1)
    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    offs_k = tl.arange(0, BLOCK_K)
    m_ok = offs_m < M
    n_ok = offs_n < N
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    for k0 in range(0, K, BLOCK_K):
        k = k0 + offs_k
        k_ok = k < K
        a = tl.load(x_ptr + offs_m[:, None].to(tl.int64) * stride_xm + k[None, :],
                    mask=m_ok[:, None] & k_ok[None, :], other=0.0)
        b = tl.load(w_ptr + offs_n[None, :] * stride_wn + k[:, None],
                    mask=k_ok[:, None] & n_ok[None, :], other=0.0)
        acc = tl.dot(a, b, acc, input_precision="ieee")
    bias = tl.load(b_ptr + offs_n, mask=n_ok, other=0.0)
    acc = acc + bias[None, :]
    if APPLY_RELU:
        acc = tl.maximum(acc, 0.0)
    y_ptrs = y_ptr + offs_m[:, None].to(tl.int64) * stride_ym + offs_n[None, :]
    tl.store(y_ptrs, acc, mask=m_ok[:, None] & n_ok[None, :])


def _conv_relu_pool(x, weight, bias):
    B, C_IN, H, W = x.shape
    C_OUT, _, KS, _ = weight.shape
    PH, PW = (H - KS + 1) // 2, (W - KS + 1) // 2
    y = torch.empty((B, C_OUT, PH, PW), device=x.device, dtype=torch.float32)
    P_total = B * PH * PW
    CO_PAD = max(2, triton.next_power_of_2(C_OUT))
    BLOCK_P = 128
    grid = (triton.cdiv(P_total, BLOCK_P),)
    conv_relu_pool_direct_kernel[grid](
        x, weight, bias, y,
        P_total, C_IN, H, W, C_OUT, PH, PW,
        KS=KS, CO_PAD=CO_PAD, BLOCK_P=BLOCK_P, num_warps=4,
    )
    return y


def _linear(x, weight, bias, relu):
    M, K = x.shape
    N = weight.shape[0]
    y = torch.empty((M, N), device=x.device, dtype=torch.float32)
    BLOCK_M = 64
    BLOCK_N = min(128, max(16, triton.next_power_of_2(N)))
    BLOCK_K = 32
    grid = (triton.cdiv(M, BLOCK_M), triton.cdiv(N, BLOCK_N))
    linear_kernel[grid](
        x, weight, bias, y,
        M, N, K,
        x.stride(0), weight.stride(0), y.stride(0),
        APPLY_RELU=relu, BLOCK_M=BLOCK_M, BLOCK_N=BLOCK_N, BLOCK_K=BLOCK_K,
        num_warps=4,
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
        x = x.contiguous()
        y = _conv_relu_pool(x, self.conv1.weight.contiguous(), self.conv1.bias.contiguous())
        y = _conv_relu_pool(y, self.conv2.weight.contiguous(), self.conv2.bias.contiguous())
        y = y.view(y.shape[0], -1)
        y = _linear(y, self.fc1.weight.contiguous(), self.fc1.bias.contiguous(), True)
        y = _linear(y, self.fc2.weight.contiguous(), self.fc2.bias.contiguous(), True)
        y = _linear(y, self.fc3.weight.contiguous(), self.fc3.bias.contiguous(), False)
        return y