import torch
import torch.nn as nn
import triton
import triton.language as tl


@triton.jit
def _mish_like(v):
    # x * tanh(softplus(x)), softplus with PyTorch's threshold 20.
    # tanh(log(1 + e)) = e (e + 2) / (e (e + 2) + 2)  with e = exp(x)
    xc = tl.minimum(v, 20.0)
    e = tl.exp(xc)
    num = e * (e + 2.0)
    t = num / (num + 2.0)
    t = tl.where(v > 20.0, 1.0, t)
    return v * t


@triton.jit
def _conv_act_stats_im2col_kernel(
    x_ptr, wt_ptr, b_ptr, y_ptr, psum_ptr, pm2_ptr,
    C, H, W, OC, OH, OW, K,
    N_OC_BLK, N_W_BLK,
    SH, SW, PH, PW, DH, DW,
    KH: tl.constexpr, KW: tl.constexpr,
    HAS_BIAS: tl.constexpr, NO_PAD: tl.constexpr, EVEN_K: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
):
    pid_m = tl.program_id(0)
    n = tl.program_id(1)
    ocb = tl.program_id(2)

    oh = pid_m // N_W_BLK
    wb = pid_m % N_W_BLK
    offs_w = wb * BLOCK_M + tl.arange(0, BLOCK_M)
    w_ok = offs_w < OW
    iw0 = offs_w * SW - PW
    ih0 = (oh * SH - PH) + tl.zeros((BLOCK_M,), dtype=tl.int32)   # vector on purpose
    base_m = ih0 * W + iw0                                         # [BM]

    offs_oc = ocb * BLOCK_N + tl.arange(0, BLOCK_N)
    oc_ok = offs_oc < OC
    offs_k = tl.arange(0, BLOCK_K)

    HW = H * W
    x_base = x_ptr + n.to(tl.int64) * C * HW

    # implicit GEMM over the flattened im2col reduction K = C*KH*KW (order c, kh, kw),
    # BLOCK_K = 64 at the original sizes (K = 576 -> 9 big tensor-core steps)
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    for k0 in range(0, K, BLOCK_K):
        kk = k0 + offs_k
        c = kk // (KH * KW)
        r = kk % (KH * KW)
        dh = (r // KW) * DH
        dw = (r % KW) * DW
        koff = c * HW + dh * W + dw                                # [BK]
        a_ptrs = x_base + base_m[:, None] + koff[None, :]
        b_ptrs = wt_ptr + kk[:, None] * OC + offs_oc[None, :]      # wt: [K, OC], contiguous along OC
        if NO_PAD:
            if EVEN_K:
                a_mask = w_ok[:, None] & (offs_k < BLOCK_K)[None, :]
                b_mask = (offs_k < BLOCK_K)[:, None] & oc_ok[None, :]
            else:
                k_ok = kk < K
                a_mask = w_ok[:, None] & k_ok[None, :]
                b_mask = k_ok[:, None] & oc_ok[None, :]
        else:
            k_ok = kk < K
            ih = ih0[:, None] + dh[None, :]
            iw = iw0[:, None] + dw[None, :]
            a_mask = (w_ok[:, None] & k_ok[None, :]) & ((ih >= 0) & (ih < H)) & ((iw >= 0) & (iw < W))
            b_mask = k_ok[:, None] & oc_ok[None, :]
        a = tl.load(a_ptrs, mask=a_mask, other=0.0)
        b = tl.load(b_ptrs, mask=b_mask, other=0.0)
        acc = tl.dot(a, b, acc, input_precision="tf32x3")

    if HAS_BIAS:
        bias = tl.load(b_ptr + offs_oc, mask=oc_ok, other=0.0)
        acc = acc + bias[None, :]
    yv = _mish_like(acc)

    mask2 = w_ok[:, None] & oc_ok[None, :]
    OHW = OH * OW
    y_base = y_ptr + n.to(tl.int64) * OC * OHW + oh * OW
    y_ptrs = y_base + offs_oc[None, :].to(tl.int64) * OHW + offs_w[:, None]
    tl.store(y_ptrs, yv, mask=mask2)

    # per-tile partial statistics (sum, M2 about the tile mean), one [OC] row per tile
    cnt = tl.sum(w_ok.to(tl.float32), axis=0)
    s = tl.sum(tl.where(mask2, yv, 0.0), axis=0)
    mu = s / cnt
    d = tl.where(mask2, yv - mu[None, :], 0.0)
    q = tl.sum(d * d, axis=0)
    tile = (n * OH + oh) * N_W_BLK + wb
    row = tile.to(tl.int64) * OC
    tl.store(psum_ptr + row + offs_oc, s, mask=oc_ok)
    tl.store(pm2_ptr + row + offs_oc, q, mask=oc_ok)


@triton.jit
def _bn_finalize_vec_kernel(
    psum_ptr, pm2_ptr, gamma_ptr, beta_ptr, rmean_ptr, rvar_ptr, nbt_ptr,
    scale_ptr, shift_ptr,
    T, OC, N_W_BLK, OW, total, eps, momentum, unbias,
    BM: tl.constexpr, BLOCK_T: tl.constexpr, BLOCK_CH: tl.constexpr,
    USE_BATCH: tl.constexpr, UPDATE: tl.constexpr,
):
    pid = tl.program_id(0)
    offs_ch = pid * BLOCK_CH + tl.arange(0, BLOCK_CH)
    ch_ok = offs_ch < OC
    if USE_BATCH:
        offs_t = tl.arange(0, BLOCK_T)
        # pass 1: mean from the per-tile sums; [BLOCK_T, BLOCK_CH] tiles, rows contiguous
        acc_s = tl.zeros((BLOCK_T, BLOCK_CH), dtype=tl.float32)
        for t0 in range(0, T, BLOCK_T):
            idx = t0 + offs_t
            m = (idx < T)[:, None] & ch_ok[None, :]
            ptrs = idx.to(tl.int64)[:, None] * OC + offs_ch[None, :]
            acc_s += tl.load(psum_ptr + ptrs, mask=m, other=0.0)
        mean = tl.sum(acc_s, axis=0) / total
        # pass 2: Chan merge of per-tile M2
        acc_q = tl.zeros((BLOCK_T, BLOCK_CH), dtype=tl.float32)
        for t0 in range(0, T, BLOCK_T):
            idx = t0 + offs_t
            t_ok = idx < T
            m = t_ok[:, None] & ch_ok[None, :]
            ptrs = idx.to(tl.int64)[:, None] * OC + offs_ch[None, :]
            s = tl.load(psum_ptr + ptrs, mask=m, other=0.0)
            q = tl.load(pm2_ptr + ptrs, mask=m, other=0.0)
            wb = idx % N_W_BLK
            cnt = tl.minimum(OW - wb * BM, BM).to(tl.float32)
            cnt = tl.where(t_ok, cnt, 1.0)
            d = s / cnt[:, None] - mean[None, :]
            acc_q += tl.where(m, q + cnt[:, None] * d * d, 0.0)
        var = tl.sum(acc_q, axis=0) / total
        var = tl.maximum(var, 0.0)
    else:
        mean = tl.load(rmean_ptr + offs_ch, mask=ch_ok, other=0.0)
        var = tl.load(rvar_ptr + offs_ch, mask=ch_ok, other=1.0)
    rstd = 1.0 / tl.sqrt(var + eps)
    g = tl.load(gamma_ptr + offs_ch, mask=ch_ok, other=1.0)
    b = tl.load(beta_ptr + offs_ch, mask=ch_ok, other=0.0)
    scale = g * rstd
    tl.store(scale_ptr + offs_ch, scale, mask=ch_ok)
    tl.store(shift_ptr + offs_ch, b - mean * scale, mask=ch_ok)
    if UPDATE:
        rm = tl.load(rmean_ptr + offs_ch, mask=ch_ok, other=0.0)
        rv = tl.load(rvar_ptr + offs_ch, mask=ch_ok, other=0.0)
        tl.store(rmean_ptr + offs_ch, (1.0 - momentum) * rm + momentum * mean, mask=ch_ok)
        tl.store(rvar_ptr + offs_ch, (1.0 - momentum) * rv + momentum * (var * unbias), mask=ch_ok)
        # num_batches_tracked += 1, by program 0 only (vector mask of length 1)
        o1 = tl.arange(0, 1)
        nbt = tl.load(nbt_ptr + o1)
        tl.store(nbt_ptr + o1, nbt + 1, mask=(o1 + pid) == 0)


@triton.jit
def _bn_apply_kernel(y_ptr, scale_ptr, shift_ptr, OC, HWO, BLOCK: tl.constexpr):
    # one (n, c) plane per row of the grid: contiguous, no per-element index math
    row = tl.program_id(0)          # n * OC + c
    pid = tl.program_id(1)
    c = row % OC
    sc = tl.load(scale_ptr + c)
    sh = tl.load(shift_ptr + c)
    offs = pid * BLOCK + tl.arange(0, BLOCK)
    offs = tl.max_contiguous(tl.multiple_of(offs, BLOCK), BLOCK)
    m = offs < HWO
    ptrs = y_ptr + row.to(tl.int64) * HWO + offs
    v = tl.load(ptrs, mask=m, other=0.0)
    tl.store(ptrs, v * sc + sh, mask=m)


def _pair(v):
    if isinstance(v, (tuple, list)):
        return int(v[0]), int(v[1])
    return int(v), int(v)


def _np2(v):
    return triton.next_power_of_2(max(int(v), 1))


class ModelNew(nn.Module):
    def __init__(self, in_channels, out_channels, kernel_size, eps=1e-5, momentum=0.1):
        super(ModelNew, self).__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size)
        self.bn = nn.BatchNorm2d(out_channels, eps=eps, momentum=momentum)

    def forward(self, x):
        conv, bn = self.conv, self.bn
        x = x.contiguous()
        w = conv.weight
        N, C, H, W = x.shape
        OC, CW, KH, KW = w.shape
        SH, SW = _pair(conv.stride)
        PH, PW = _pair(conv.padding)
        DH, DW = _pair(conv.dilation)
        OH = (H + 2 * PH - DH * (KH - 1) - 1) // SH + 1
        OW = (W + 2 * PW - DW * (KW - 1) - 1) // SW + 1
        dev = x.device

        # [OC, C, KH, KW] -> [K, OC] with K = C*KH*KW (row k = (c*KH + kh)*KW + kw), contiguous along OC
        K = C * KH * KW
        wt = w.reshape(OC, K).t().contiguous()

        y = torch.empty((N, OC, OH, OW), device=dev, dtype=torch.float32)

        BLOCK_M = min(128, max(16, _np2(OW)))
        BLOCK_N = min(128, max(16, _np2(OC)))
        if K % 64 == 0:
            BLOCK_K = 64
        elif K % 32 == 0:
            BLOCK_K = 32
        else:
            BLOCK_K = 16
        N_W_BLK = triton.cdiv(OW, BLOCK_M)
        N_OC_BLK = triton.cdiv(OC, BLOCK_N)
        T = N * OH * N_W_BLK
        psum = torch.empty((T, OC), device=dev, dtype=torch.float32)
        pm2 = torch.empty((T, OC), device=dev, dtype=torch.float32)

        has_bias = conv.bias is not None
        cb = conv.bias.contiguous() if has_bias else wt
        no_pad = (PH == 0 and PW == 0)
        even_k = (K % BLOCK_K == 0)
        num_warps = 8 if BLOCK_M * BLOCK_N >= 128 * 128 else 4
        _conv_act_stats_im2col_kernel[(OH * N_W_BLK, N, N_OC_BLK)](
            x, wt, cb, y, psum, pm2,
            C, H, W, OC, OH, OW, K,
            N_OC_BLK, N_W_BLK,
            SH, SW, PH, PW, DH, DW,
            KH=KH, KW=KW, HAS_BIAS=has_bias, NO_PAD=no_pad, EVEN_K=even_k,
            BLOCK_M=BLOCK_M, BLOCK_N=BLOCK_N, BLOCK_K=BLOCK_K,
            num_warps=num_warps, num_stages=2 if BLOCK_K >= 64 else 3,
        )

        tracking = bn.running_mean is not None and bn.running_var is not None
        use_batch = bn.training or not tracking
        update = bn.training and tracking
        if update and bn.momentum is None:
            momentum = 1.0 / (float(bn.num_batches_tracked.item()) + 1.0)
        else:
            momentum = float(bn.momentum) if bn.momentum is not None else 0.0
        total = float(N * OH * OW)
        unbias = total / max(total - 1.0, 1.0)

        if bn.weight is not None:
            gamma = bn.weight.contiguous()
            beta = bn.bias.contiguous()
        else:
            gamma = torch.full((OC,), 1.0, device=dev, dtype=torch.float32)
            beta = torch.full((OC,), 0.0, device=dev, dtype=torch.float32)

        scale = torch.empty((OC,), device=dev, dtype=torch.float32)
        shift = torch.empty((OC,), device=dev, dtype=torch.float32)
        rmean = bn.running_mean if tracking else scale
        rvar = bn.running_var if tracking else scale
        nbt = bn.num_batches_tracked if (tracking and bn.num_batches_tracked is not None) else psum

        BLOCK_CH = min(8, _np2(OC))
        _bn_finalize_vec_kernel[(triton.cdiv(OC, BLOCK_CH),)](
            psum, pm2, gamma, beta, rmean, rvar, nbt,
            scale, shift,
            T, OC, N_W_BLK, OW, total, float(bn.eps), momentum, unbias,
            BM=BLOCK_M, BLOCK_T=256, BLOCK_CH=BLOCK_CH,
            USE_BATCH=use_batch, UPDATE=update,
            num_warps=4,
        )

        HWO = OH * OW
        BLOCK = min(4096, max(128, _np2(HWO)))
        _bn_apply_kernel[(N * OC, triton.cdiv(HWO, BLOCK))](
            y, scale, shift, OC, HWO, BLOCK=BLOCK, num_warps=8 if BLOCK >= 4096 else 4,
        )
        return y