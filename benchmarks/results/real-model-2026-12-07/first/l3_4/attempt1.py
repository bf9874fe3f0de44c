import torch
import torch.nn as nn
import triton
import triton.language as tl


@triton.jit
def conv_relu_pool_kernel(
    x_ptr, w_ptr, b_ptr, y_ptr,
    total, C_in, H, W, C_out, PH, PW,
    KS: tl.constexpr, BLOCK: tl.constexpr,
):
    pid = tl.program_id(0)
    offs = pid * BLOCK + tl.arange(0, BLOCK)
    mask = offs < total

    # offs -> (n, co, ph, pw) in NCHW order of the pooled output
    pw = offs % PW
    t = offs // PW
    ph = t % PH
    t = t // PH
    co = t % C_out
    n = t // C_out

    oh = ph * 2
    ow = pw * 2

    acc00 = tl.zeros((BLOCK,), dtype=tl.float32)
    acc01 = tl.zeros((BLOCK,), dtype=tl.float32)
    acc10 = tl.zeros((BLOCK,), dtype=tl.float32)
    acc11 = tl.zeros((BLOCK,), dtype=tl.float32)

    for ci in range(0, C_in):
        x_base = ((n * C_in + ci) * H + oh) * W + ow
        w_base = (co * C_in + ci) * (KS * KS)
        for kh in tl.static_range(KS):
            for kw in tl.static_range(KS):
                wv = tl.load(w_ptr + w_base + kh * KS + kw, mask=mask, other=0.0)
                p = x_ptr + x_base + kh * W + kw
                x00 = tl.load(p, mask=mask, other=0.0)
                x01 = tl.load(p + 1, mask=mask, other=0.0)
                x10 = tl.load(p + W, mask=mask, other=0.0)
                x11 = tl.load(p + W + 1, mask=mask, other=0.0)
                acc00 += x00 * wv
                acc01 += x01 * wv
                acc10 += x10 * wv
                acc11 += x11 * wv

    bias = tl.load(b_ptr + co, mask=mask, other=0.0)
    m = tl.maximum(tl.maximum(acc00, acc01), tl.maximum(acc10, acc11)) + bias
    m = tl.maximum(m, 0.0)
    tl.store(y_ptr + offs, m, mask=mask)


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


def _conv_relu_pool(x, weight, bias):
    x = x.contiguous()
    weight = weight.contiguous()
    B, C_in, H, W = x.shape
    C_out, _, KS, _ = weight.shape
    OH = H - KS + 1
    OW = W - KS + 1
    PH = OH // 2
    PW = OW // 2
    y = torch.empty((B, C_out, PH, PW), device=x.device, dtype=torch.float32)
    total = y.numel()
    BLOCK = 256
    grid = (triton.cdiv(total, BLOCK),)
    conv_relu_pool_kernel[grid](
        x, weight, bias, y,
        total, C_in, H, W, C_out, PH, PW,
        KS=KS, BLOCK=BLOCK, num_warps=4,
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
        x = _conv_relu_pool(x, self.conv1.weight, self.conv1.bias)
        x = _conv_relu_pool(x, self.conv2.weight, self.conv2.bias)
        x = x.view(x.shape[0], -1)
        x = _linear(x, self.fc1.weight, self.fc1.bias, relu=True)
        x = _linear(x, self.fc2.weight, self.fc2.bias, relu=True)
        x = _linear(x, self.fc3.weight, self.fc3.bias, relu=False)
        return x