import torch
import torch.nn as nn
import triton
import triton.language as tl


@triton.jit
def conv1_relu_pool_nhwc_kernel(
    x_ptr, w_ptr, b_ptr, y_ptr,
    M_total, C_IN, H, W, C_OUT, PH, PW, KDIM,
    KS: tl.constexpr, C_STORE: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
):
    # NCHW input -> pooled NHWC output with C_STORE (>= C_OUT, zero-padded) channels
    pid = tl.program_id(0)
    offs_m = pid * BLOCK_M + tl.arange(0, BLOCK_M)
    m_ok = offs_m < M_total
    pw = offs_m % PW
    t = offs_m // PW
    ph = t % PH
    n = t // PH
    a_base = n.to(tl.int64) * (C_IN * H * W) + (2 * ph) * W + 2 * pw

    offs_n = tl.arange(0, BLOCK_N)
    n_ok = offs_n < C_OUT
    offs_k = tl.arange(0, BLOCK_K)

    acc00 = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    acc01 = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    acc10 = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    acc11 = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    for k0 in range(0, KDIM, BLOCK_K):
        kk = k0 + offs_k
        k_ok = kk < KDIM
        ci = kk // (KS * KS)
        r = kk % (KS * KS)
        kh = r // KS
        kw = r % KS
        k_off = ci * (H * W) + kh * W + kw
        a_ptrs = x_ptr + a_base[:, None] + k_off[None, :]
        a_mask = m_ok[:, None] & k_ok[None, :]
        a00 = tl.load(a_ptrs, mask=a_mask, other=0.0)
        a01 = tl.load(a_ptrs + 1, mask=a_mask, other=0.0)
        a10 = tl.load(a_ptrs + W, mask=a_mask, other=0.0)
        a11 = tl.load(a_ptrs + W + 1, mask=a_mask, other=0.0)
        b = tl.load(w_ptr + offs_n[None, :] * KDIM + kk[:, None],
                    mask=k_ok[:, None] & n_ok[None, :], other=0.0)
        acc00 = tl.dot(a00, b, acc00, input_precision="tf32x3")
        acc01 = tl.dot(a01, b, acc01, input_precision="tf32x3")
        acc10 = tl.dot(a10, b, acc10, input_precision="tf32x3")
        acc11 = tl.dot(a11, b, acc11, input_precision="tf32x3")

    bias = tl.load(b_ptr + offs_n, mask=n_ok, other=0.0)
    v = tl.maximum(tl.maximum(acc00, acc01), tl.maximum(acc10, acc11))
    v = tl.maximum(v + bias[None, :], 0.0)          # padded channels are exactly 0
    y_ptrs = y_ptr + offs_m[:, None].to(tl.int64) * C_STORE + offs_n[None, :]
    tl.store(y_ptrs, v, mask=m_ok[:, None] & (offs_n[None, :] < C_STORE))


@triton.jit
def conv_relu_pool_nhwc_kernel(
    x_ptr, w_ptr, b_ptr, y_ptr,
    M_total, H, W, C_OUT, PH, PW,
    KS: tl.constexpr, CP: tl.constexpr, C_STORE: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
    BK_A: tl.constexpr, BK_B: tl.constexpr, HAS_REM: tl.constexpr,
):
    # NHWC input with CP channels; weights [C_OUT, KS, KS*CP] (kw, ci contiguous)
    ROW: tl.constexpr = KS * CP
    pid = tl.program_id(0)
    offs_m = pid * BLOCK_M + tl.arange(0, BLOCK_M)
    m_ok = offs_m < M_total
    pw = offs_m % PW
    t = offs_m // PW
    ph = t % PH
    n = t // PH
    row_base = ((n.to(tl.int64) * H + 2 * ph) * W + 2 * pw) * CP
    dW = W * CP

    offs_n = tl.arange(0, BLOCK_N)
    n_ok = offs_n < C_OUT
    ja = tl.arange(0, BK_A)
    jb = BK_A + tl.arange(0, BK_B)
    jb_ok = jb < ROW

    acc00 = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    acc01 = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    acc10 = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    acc11 = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    for kh in range(0, KS):
        base = x_ptr + row_base[:, None] + kh * dW
        w_base = w_ptr + offs_n[None, :] * (KS * ROW) + kh * ROW
        # contiguous slab 1: j in [0, BK_A)
        pa = base + ja[None, :]
        ma = m_ok[:, None] & (ja[None, :] < ROW)
        a00 = tl.load(pa, mask=ma, other=0.0)
        a01 = tl.load(pa + CP, mask=ma, other=0.0)
        a10 = tl.load(pa + dW, mask=ma, other=0.0)
        a11 = tl.load(pa + dW + CP, mask=ma, other=0.0)
        wa = tl.load(w_base + ja[:, None], mask=(ja[:, None] < ROW) & n_ok[None, :], other=0.0)
        acc00 = tl.dot(a00, wa, acc00, input_precision="tf32x3")
        acc01 = tl.dot(a01, wa, acc01, input_precision="tf32x3")
        acc10 = tl.dot(a10, wa, acc10, input_precision="tf32x3")
        acc11 = tl.dot(a11, wa, acc11, input_precision="tf32x3")
        if HAS_REM:
            # contiguous slab 2: j in [BK_A, ROW)
            pb = base + jb[None, :]
            mb = m_ok[:, None] & jb_ok[None, :]
            b00 = tl.load(pb, mask=mb, other=0.0)
            b01 = tl.load(pb + CP, mask=mb, other=0.0)
            b10 = tl.load(pb + dW, mask=mb, other=0.0)
            b11 = tl.load(pb + dW + CP, mask=mb, other=0.0)
            wb = tl.load(w_base + jb[:, None], mask=jb_ok[:, None] & n_ok[None, :], other=0.0)
            acc00 = tl.dot(b00, wb, acc00, input_precision="tf32x3")
            acc01 = tl.dot(b01, wb, acc01, input_precision="tf32x3")
            acc10 = tl.dot(b10, wb, acc10, input_precision="tf32x3")
            acc11 = tl.dot(b11, wb, acc11, input_precision="tf32x3")

    bias = tl.load(b_ptr + offs_n, mask=n_ok, other=0.0)
    v = tl.maximum(tl.maximum(acc00, acc01), tl.maximum(acc10, acc11))
    v = tl.maximum(v + bias[None, :], 0.0)
    y_ptrs = y_ptr + offs_m[:, None].to(tl.int64) * C_STORE + offs_n[None, :]
    tl.store(y_ptrs, v, mask=m_ok[:, None] & (offs_n[None, :] < C_STORE))


@triton.jit
def mlp3_kernel(
    x_ptr, w1_ptr, b1_ptr, w2_ptr, b2_ptr, w3_ptr, b3_ptr, out_ptr,
    B, K1, N1, N2, N3,
    stride_xm, stride_om,
    BLOCK_M: tl.constexpr, BLOCK_K1: tl.constexpr, N1_PAD: tl.constexpr,
    BLOCK_N2: tl.constexpr, N3_PAD: tl.constexpr,
):
    pid = tl.program_id(0)
    offs_m = pid * BLOCK_M + tl.arange(0, BLOCK_M)
    m_ok = offs_m < B
    rows64 = offs_m.to(tl.int64)

    n1 = tl.arange(0, N1_PAD)
    n1_ok = n1 < N1
    kk = tl.arange(0, BLOCK_K1)
    acc1 = tl.zeros((BLOCK_M, N1_PAD), dtype=tl.float32)
    for k0 in range(0, K1, BLOCK_K1):
        k = k0 + kk
        k_ok = k < K1
        a = tl.load(x_ptr + rows64[:, None] * stride_xm + k[None, :],
                    mask=m_ok[:, None] & k_ok[None, :], other=0.0)
        w1 = tl.load(w1_ptr + n1[None, :] * K1 + k[:, None],
                     mask=k_ok[:, None] & n1_ok[None, :], other=0.0)
        acc1 = tl.dot(a, w1, acc1, input_precision="tf32x3")
    b1 = tl.load(b1_ptr + n1, mask=n1_ok, other=0.0)
    h1 = tl.maximum(acc1 + b1[None, :], 0.0)

    n3 = tl.arange(0, N3_PAD)
    n3_ok = n3 < N3
    j = tl.arange(0, BLOCK_N2)
    acc3 = tl.zeros((BLOCK_M, N3_PAD), dtype=tl.float32)
    for n0 in range(0, N2, BLOCK_N2):
        n2 = n0 + j
        n2_ok = n2 < N2
        w2 = tl.load(w2_ptr + n2[None, :] * N1 + n1[:, None],
                     mask=n1_ok[:, None] & n2_ok[None, :], other=0.0)
        b2 = tl.load(b2_ptr + n2, mask=n2_ok, other=0.0)
        h2 = tl.dot(h1, w2, input_precision="tf32x3")
        h2 = tl.maximum(h2 + b2[None, :], 0.0)
        w3 = tl.load(w3_ptr + n3[None, :] * N2 + n2[:, None],
                     mask=n2_ok[:, None] & n3_ok[None, :], other=0.0)
        acc3 = tl.dot(h2, w3, acc3, input_precision="tf32x3")

    b3 = tl.load(b3_ptr + n3, mask=n3_ok, other=0.0)
    out = acc3 + b3[None, :]
    o_ptrs = out_ptr + rows64[:, None] * stride_om + n3[None, :]
    tl.store(o_ptrs, out, mask=m_ok[:, None] & n3_ok[None, :])


def _prev_pow2(v):
    p = 1
    while p * 2 <= v:
        p *= 2
    return p


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
        B, C0, H0, W0 = x.shape
        dev = x.device

        # ---- conv1 + relu + pool: NCHW in, NHWC (channels padded to 8) out ----
        w1c = self.conv1.weight.contiguous()
        C1, _, KS1, _ = w1c.shape
        PH1, PW1 = (H0 - KS1 + 1) // 2, (W0 - KS1 + 1) // 2
        CP1 = ((C1 + 7) // 8) * 8
        y1 = torch.empty((B, PH1, PW1, CP1), device=dev, dtype=torch.float32)
        M1 = B * PH1 * PW1
        KD1 = C0 * KS1 * KS1
        BN1 = max(16, triton.next_power_of_2(CP1))
        conv1_relu_pool_nhwc_kernel[(triton.cdiv(M1, 128),)](
            x, w1c, self.conv1.bias.contiguous(), y1,
            M1, C0, H0, W0, C1, PH1, PW1, KD1,
            KS=KS1, C_STORE=CP1, BLOCK_M=128, BLOCK_N=BN1,
            BLOCK_K=max(16, min(32, triton.next_power_of_2(KD1))),
            num_warps=4, num_stages=2,
        )

        # ---- conv2 + relu + pool: NHWC in, NHWC out ----
        w2c = self.conv2.weight
        C2, C1w, KS2, _ = w2c.shape
        w2p = torch.zeros((C2, KS2, KS2, CP1), device=dev, dtype=torch.float32)
        w2p[:, :, :, :C1w] = w2c.permute(0, 2, 3, 1)
        w2p = w2p.reshape(C2, KS2, KS2 * CP1)
        PH2, PW2 = (PH1 - KS2 + 1) // 2, (PW1 - KS2 + 1) // 2
        y2 = torch.empty((B, PH2, PW2, C2), device=dev, dtype=torch.float32)
        M2 = B * PH2 * PW2
        ROW = KS2 * CP1
        BK_A = _prev_pow2(ROW)
        REM = ROW - BK_A
        HAS_REM = REM > 0
        BK_B = max(16, triton.next_power_of_2(REM)) if HAS_REM else 16
        conv_relu_pool_nhwc_kernel[(triton.cdiv(M2, 128),)](
            y1, w2p, self.conv2.bias.contiguous(), y2,
            M2, PH1, PW1, C2, PH2, PW2,
            KS=KS2, CP=CP1, C_STORE=C2, BLOCK_M=128,
            BLOCK_N=max(16, triton.next_power_of_2(C2)),
            BK_A=max(16, BK_A), BK_B=BK_B, HAS_REM=HAS_REM,
            num_warps=4, num_stages=2,
        )

        # ---- fused fc1 -> relu -> fc2 -> relu -> fc3 on NHWC-flattened rows ----
        flat = y2.view(B, -1)
        K1 = flat.shape[1]
        wf1 = self.fc1.weight
        N1 = wf1.shape[0]
        # reorder fc1 columns from (c, h, w) to (h, w, c) to match the NHWC flatten
        wf1p = wf1.view(N1, C2, PH2, PW2).permute(0, 2, 3, 1).reshape(N1, K1).contiguous()
        wf2 = self.fc2.weight.contiguous()
        wf3 = self.fc3.weight.contiguous()
        N2, N3 = wf2.shape[0], wf3.shape[0]
        out = torch.empty((B, N3), device=dev, dtype=torch.float32)
        BLOCK_M = 32
        mlp3_kernel[(triton.cdiv(B, BLOCK_M),)](
            flat, wf1p, self.fc1.bias.contiguous(), wf2, self.fc2.bias.contiguous(),
            wf3, self.fc3.bias.contiguous(), out,
            B, K1, N1, N2, N3,
            flat.stride(0), out.stride(0),
            BLOCK_M=BLOCK_M, BLOCK_K1=32,
            N1_PAD=max(16, triton.next_power_of_2(N1)),
            BLOCK_N2=32,
            N3_PAD=max(16, triton.next_power_of_2(N3)),
            num_warps=4, num_stages=2,
        )
        return out