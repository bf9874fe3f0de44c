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
def _conv_act_stats_kernel(
    x_ptr, w_ptr, b_ptr, y_ptr, psum_ptr, pm2_ptr,
    C, H, W, OC, OH, OW, T,
    N_OC_BLK, N_W_BLK,
    SH, SW, PH, PW, DH, DW,
    KH: tl.constexpr, KW: tl.constexpr,
    HAS_BIAS: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
):
    pid_m = tl.program_id(0)
    n = tl.program_id(1)
    ocb = tl.program_id(2)

    oh = pid_m // N_W_BLK
    wb = pid_m % N_W_BLK
    offs_w = wb * BLOCK_M + tl.arange(0, BLOCK_M)
    w_ok = offs_w < OW
    iw0 = offs_w * SW - PW
    ih0 = oh * SH - PH

    offs_oc = ocb * BLOCK_N + tl.arange(0, BLOCK_N)
    oc_ok = offs_oc < OC

    HW = H * W
    x_base = x_ptr + n.to(tl.int64) * C * HW
    w_rows = w_ptr + offs_oc * (C * (KH * KW))

    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    for c in range(0, C):
        x_c = x_base + c * HW
        w_c = w_rows + c * (KH * KW)
        for kh in tl.static_range(KH):
            ih = ih0 + kh * DH
            row_ok = (ih >= 0) & (ih < H)
            for kw in tl.static_range(KW):
                iw = iw0 + kw * DW
                m = w_ok & (iw >= 0) & (iw < W) & row_ok
                xv = tl.load(x_c + ih * W + iw, mask=m, other=0.0)
                wv = tl.load(w_c + (kh * KW + kw), mask=oc_ok, other=0.0)
                acc += xv[:, None] * wv[None, :]

    if HAS_BIAS:
        bias = tl.load(b_ptr + offs_oc, mask=oc_ok, other=0.0)
        acc = acc + bias[None, :]
    yv = _mish_like(acc)

    mask2 = w_ok[:, None] & oc_ok[None, :]
    OHW = OH * OW
    y_base = y_ptr + n.to(tl.int64) * OC * OHW + oh * OW
    y_ptrs = y_base + offs_oc[None, :].to(tl.int64) * OHW + offs_w[:, None]
    tl.store(y_ptrs, yv, mask=mask2)

    # per-tile, per-channel partial statistics: sum and M2 about the tile mean
    cnt = tl.sum(w_ok.to(tl.float32), axis=0)
    s = tl.sum(tl.where(mask2, yv, 0.0), axis=0)
    mu = s / cnt
    d = tl.where(mask2, yv - mu[None, :], 0.0)
    q = tl.sum(d * d, axis=0)
    tile = (n * OH + oh) * N_W_BLK + wb
    tl.store(psum_ptr + offs_oc * T + tile, s, mask=oc_ok)
    tl.store(pm2_ptr + offs_oc * T + tile, q, mask=oc_ok)


def _launch_conv(x, w, cb, has_bias, y, psum, pm2,
                 N, C, H, W, OC, OH, OW, T, KH, KW,
                 SH, SW, PH, PW, DH, DW, BLOCK_M, BLOCK_N, N_W_BLK, N_OC_BLK):
    num_warps = 8 if BLOCK_M * BLOCK_N >= 128 * 128 else 4
    grid = (OH * N_W_BLK, N, N_OC_BLK)
    _conv_act_stats_kernel[grid](
        x, w, cb, y, psum, pm2,
        C, H, W, OC, OH, OW, T,
        N_OC_BLK, N_W_BLK,
        SH, SW, PH, PW, DH, DW,
        KH=KH, KW=KW, HAS_BIAS=has_bias,
        BLOCK_M=BLOCK_M, BLOCK_N=BLOCK_N,
        num_warps=num_warps,
    )


@triton.jit
def _bn_finalize_kernel(
    psum_ptr, pm2_ptr, gamma_ptr, beta_ptr, rmean_ptr, rvar_ptr, nbt_ptr,
    scale_ptr, shift_ptr,
    T, N_W_BLK, OW, total, eps, momentum, unbias,
    BM: tl.constexpr, BLOCK_T: tl.constexpr,
    USE_BATCH: tl.constexpr, UPDATE: tl.constexpr,
):
    c = tl.program_id(0)
    if USE_BATCH:
        offs = tl.arange(0, BLOCK_T)
        base = c * T
        # pass 1: channel mean from the per-tile sums
        acc_s = tl.zeros((BLOCK_T,), dtype=tl.float32)
        for t0 in range(0, T, BLOCK_T):
            idx = t0 + offs
            m = idx < T
            acc_s += tl.load(psum_ptr + base + idx, mask=m, other=0.0)
        mean = tl.sum(acc_s, axis=0) / total
        # pass 2: combine per-tile M2 (Chan's parallel variance formula)
        acc_q = tl.zeros((BLOCK_T,), dtype=tl.float32)
        for t0 in range(0, T, BLOCK_T):
            idx = t0 + offs
            m = idx < T
            s = tl.load(psum_ptr + base + idx, mask=m, other=0.0)
            q = tl.load(pm2_ptr + base + idx, mask=m, other=0.0)
            wb = idx % N_W_BLK
            cnt = tl.minimum(OW - wb * BM, BM).to(tl.float32)
            cnt = tl.where(m, cnt, 1.0)
            d = s / cnt - mean
            acc_q += tl.where(m, q + cnt * d * d, 0.0)
        var = tl.sum(acc_q, axis=0) / total
        var = tl.maximum(var, 0.0)
    else:
        mean = tl.load(rmean_ptr + c)
        var = tl.load(rvar_ptr + c)
    rstd = 1.0 / tl.sqrt(var + eps)
    g = tl.load(gamma_ptr + c)
    b = tl.load(beta_ptr + c)
    scale = g * rstd
    tl.store(scale_ptr + c, scale)
    tl.store(shift_ptr + c, b - mean * scale)
    if UPDATE:
        rm = tl.load(rmean_ptr + c)
        rv = tl.load(rvar_ptr + c)
        tl.store(rmean_ptr + c, (1.0 - momentum) * rm + momentum * mean)
        tl.store(rvar_ptr + c, (1.0 - momentum) * rv + momentum * (var * unbias))
        nbt = tl.load(nbt_ptr)
        tl.store(nbt_ptr, nbt + 1, mask=c == 0)


@triton.jit
def _bn_apply_kernel(y_ptr, scale_ptr, shift_ptr, OC, HWO, BLOCK: tl.constexpr):
    row = tl.program_id(0)          # n * OC + c
    pid = tl.program_id(1)
    c = row % OC
    sc = tl.load(scale_ptr + c)
    sh = tl.load(shift_ptr + c)
    offs = pid * BLOCK + tl.arange(0, BLOCK)
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
        w = conv.weight.contiguous()
        N, C, H, W = x.shape
        OC, CW, KH, KW = w.shape
        SH, SW = _pair(conv.stride)
        PH, PW = _pair(conv.padding)
        DH, DW = _pair(conv.dilation)
        OH = (H + 2 * PH - DH * (KH - 1) - 1) // SH + 1
        OW = (W + 2 * PW - DW * (KW - 1) - 1) // SW + 1
        dev = x.device

        y = torch.empty((N, OC, OH, OW), device=dev, dtype=torch.float32)

        BLOCK_M = min(128, max(16, _np2(OW)))
        BLOCK_N = min(128, max(16, _np2(OC)))
        N_W_BLK = triton.cdiv(OW, BLOCK_M)
        N_OC_BLK = triton.cdiv(OC, BLOCK_N)
        T = N * OH * N_W_BLK
        psum = torch.empty((OC, T), device=dev, dtype=torch.float32)
        pm2 = torch.empty((OC, T), device=dev, dtype=torch.float32)

        has_bias = conv.bias is not None
        cb = conv.bias.contiguous() if has_bias else w

        _launch_conv(x, w, cb, has_bias, y, psum, pm2,
                     N, C, H, W, OC, OH, OW, T, KH, KW,
                     SH, SW, PH, PW, DH, DW, BLOCK_M, BLOCK_N, N_W_BLK, N_OC_BLK)

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

        _bn_finalize_kernel[(OC,)](
            psum, pm2, gamma, beta, rmean, rvar, nbt,
            scale, shift,
            T, N_W_BLK, OW, total, float(bn.eps), momentum, unbias,
            BM=BLOCK_M, BLOCK_T=1024,
            USE_BATCH=use_batch, UPDATE=update,
            num_warps=4,
        )

        HWO = OH * OW
        BLOCK = min(2048, max(128, _np2(HWO)))
        _bn_apply_kernel[(N * OC, triton.cdiv(HWO, BLOCK))](
            y, scale, shift, OC, HWO, BLOCK=BLOCK, num_warps=4,
        )
        return y