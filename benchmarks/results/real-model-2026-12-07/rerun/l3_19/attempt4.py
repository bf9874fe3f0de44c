import torch
import torch.nn as nn
import triton
import triton.language as tl


# ----------------------------------------------------------------------------------------
# Channels-last (NHWC) pipeline. Every activation is a [pixels, channels] matrix with the
# batch folded into the pixel axis, so
#   * each 1x1 conv is one big GEMM  act[N*H*W, Cin] @ W^T[Cin, Cout]  (few, large tiles),
#   * the depthwise 3x3 conv works on [pixels, channels] tiles, contiguous along channels,
#   * BatchNorm partial statistics are per (pixel tile, channel), reduced along axis 0.
# Conv kernels store the raw (pre-BN) output and (mean, M2) partials; a finalize kernel
# turns them into per-channel scale/shift (batch statistics in training mode, running
# statistics in eval mode); the consumer applies BN + ReLU on load.
# ----------------------------------------------------------------------------------------

@triton.jit
def _stem_conv_kernel(x_ptr, w_ptr, z_ptr, pmean_ptr, pm2_ptr,
                      Cin, H, W, Cout, Ho, Wo, KTOT, MP,
                      KH: tl.constexpr, KW: tl.constexpr, STRIDE: tl.constexpr, PAD: tl.constexpr,
                      BM: tl.constexpr, BN: tl.constexpr, BK: tl.constexpr):
    # NCHW input -> NHWC output; implicit GEMM im2col[pixels, (ci,kh,kw)] @ W^T[(ci,kh,kw), Cout]
    pid_m = tl.program_id(0)
    pid_n = tl.program_id(1)
    rows = pid_m * BM + tl.arange(0, BM)
    rmask = rows < MP
    HWo = Ho * Wo
    nb = rows // HWo
    r = rows % HWo
    oh = r // Wo
    ow = r % Wo
    ih0 = oh * STRIDE - PAD
    iw0 = ow * STRIDE - PAD
    img = nb * (Cin * H * W)
    cols = pid_n * BN + tl.arange(0, BN)
    cmask = cols < Cout
    acc = tl.zeros([BM, BN], dtype=tl.float32)
    for k0 in range(0, KTOT, BK):
        ks = k0 + tl.arange(0, BK)
        kmask = ks < KTOT
        ci = ks // (KH * KW)
        rem = ks % (KH * KW)
        kh = rem // KW
        kw = rem % KW
        ih = ih0[:, None] + kh[None, :]
        iw = iw0[:, None] + kw[None, :]
        valid = rmask[:, None] & kmask[None, :] & (ih >= 0) & (ih < H) & (iw >= 0) & (iw < W)
        a = tl.load(x_ptr + img[:, None] + (ci * (H * W))[None, :] + ih * W + iw, mask=valid, other=0.0)
        b = tl.load(w_ptr + ks[:, None] * Cout + cols[None, :],
                    mask=kmask[:, None] & cmask[None, :], other=0.0)
        acc += tl.dot(a, b, input_precision="tf32x3")
    omask = rmask[:, None] & cmask[None, :]
    tl.store(z_ptr + rows[:, None] * Cout + cols[None, :], acc, mask=omask)
    cnt = tl.minimum(MP - pid_m * BM, BM).to(tl.float32)
    tmean = tl.sum(tl.where(omask, acc, 0.0), axis=0) / cnt
    d = tl.where(omask, acc - tmean[None, :], 0.0)
    tl.store(pmean_ptr + pid_m * Cout + cols, tmean, mask=cmask)
    tl.store(pm2_ptr + pid_m * Cout + cols, tl.sum(d * d, axis=0), mask=cmask)


@triton.jit
def _dw_nhwc_kernel(z_ptr, w_ptr, sc_ptr, sh_ptr, out_ptr, pmean_ptr, pm2_ptr,
                    MP, C, H, W, Ho, Wo,
                    STRIDE: tl.constexpr, BLOCK_P: tl.constexpr, BLOCK_C: tl.constexpr):
    # depthwise 3x3 / pad 1 on a [BLOCK_P output pixels, BLOCK_C channels] tile;
    # input = relu(bn(z)) on load, zero padding applied after it
    pid_p = tl.program_id(0)
    pid_c = tl.program_id(1)
    rows = pid_p * BLOCK_P + tl.arange(0, BLOCK_P)
    rmask = rows < MP
    HWo = Ho * Wo
    nb = rows // HWo
    r = rows % HWo
    oh = r // Wo
    ow = r % Wo
    cs = pid_c * BLOCK_C + tl.arange(0, BLOCK_C)
    cm = cs < C
    sc = tl.load(sc_ptr + cs, mask=cm, other=0.0)[None, :]
    sh = tl.load(sh_ptr + cs, mask=cm, other=0.0)[None, :]
    img = nb * (H * W)
    acc = tl.zeros([BLOCK_P, BLOCK_C], dtype=tl.float32)
    for kh in tl.static_range(3):
        ih = oh * STRIDE - 1 + kh
        hv = rmask & (ih >= 0) & (ih < H)
        for kw in tl.static_range(3):
            iw = ow * STRIDE - 1 + kw
            m2d = (hv & (iw >= 0) & (iw < W))[:, None] & cm[None, :]
            v = tl.load(z_ptr + ((img + ih * W + iw) * C)[:, None] + cs[None, :], mask=m2d, other=0.0)
            v = tl.where(m2d, tl.maximum(v * sc + sh, 0.0), 0.0)
            wv = tl.load(w_ptr + (kh * 3 + kw) * C + cs, mask=cm, other=0.0)
            acc += v * wv[None, :]
    omask = rmask[:, None] & cm[None, :]
    tl.store(out_ptr + (rows * C)[:, None] + cs[None, :], acc, mask=omask)
    cnt = tl.minimum(MP - pid_p * BLOCK_P, BLOCK_P).to(tl.float32)
    tmean = tl.sum(tl.where(omask, acc, 0.0), axis=0) / cnt
    d = tl.where(omask, acc - tmean[None, :], 0.0)
    tl.store(pmean_ptr + pid_p * C + cs, tmean, mask=cm)
    tl.store(pm2_ptr + pid_p * C + cs, tl.sum(d * d, axis=0), mask=cm)


@triton.jit
def _pw_gemm_kernel(z_ptr, w_ptr, sc_ptr, sh_ptr, out_ptr, pmean_ptr, pm2_ptr,
                    MP, Cin, Cout,
                    BM: tl.constexpr, BN: tl.constexpr, BK: tl.constexpr):
    # out[MP, Cout] = relu(bn(z))[MP, Cin] @ W^T[Cin, Cout]
    pid_m = tl.program_id(0)
    pid_n = tl.program_id(1)
    rows = pid_m * BM + tl.arange(0, BM)
    rmask = rows < MP
    cols = pid_n * BN + tl.arange(0, BN)
    cmask = cols < Cout
    acc = tl.zeros([BM, BN], dtype=tl.float32)
    for k0 in range(0, Cin, BK):
        ks = k0 + tl.arange(0, BK)
        kmask = ks < Cin
        sc = tl.load(sc_ptr + ks, mask=kmask, other=0.0)
        sh = tl.load(sh_ptr + ks, mask=kmask, other=0.0)
        a = tl.load(z_ptr + rows[:, None] * Cin + ks[None, :],
                    mask=rmask[:, None] & kmask[None, :], other=0.0)
        a = tl.maximum(a * sc[None, :] + sh[None, :], 0.0)
        b = tl.load(w_ptr + ks[:, None] * Cout + cols[None, :],
                    mask=kmask[:, None] & cmask[None, :], other=0.0)
        acc += tl.dot(a, b, input_precision="tf32x3")
    omask = rmask[:, None] & cmask[None, :]
    tl.store(out_ptr + rows[:, None] * Cout + cols[None, :], acc, mask=omask)
    cnt = tl.minimum(MP - pid_m * BM, BM).to(tl.float32)
    tmean = tl.sum(tl.where(omask, acc, 0.0), axis=0) / cnt
    d = tl.where(omask, acc - tmean[None, :], 0.0)
    tl.store(pmean_ptr + pid_m * Cout + cols, tmean, mask=cmask)
    tl.store(pm2_ptr + pid_m * Cout + cols, tl.sum(d * d, axis=0), mask=cmask)


@triton.jit
def _bn_finalize_kernel(pmean_ptr, pm2_ptr, gamma_ptr, beta_ptr, rmean_ptr, rvar_ptr,
                        sc_ptr, sh_ptr, C, T, MP, TILE, count, eps,
                        BLOCK_T: tl.constexpr, BLOCK_C: tl.constexpr, TRAINING: tl.constexpr):
    # partials [T, C]; tile t covers min(TILE, MP - t*TILE) pixels; Chan merge per channel
    cs = tl.program_id(0) * BLOCK_C + tl.arange(0, BLOCK_C)
    cm = cs < C
    g = tl.load(gamma_ptr + cs, mask=cm, other=1.0)
    bt = tl.load(beta_ptr + cs, mask=cm, other=0.0)
    if TRAINING:
        acc = tl.zeros([BLOCK_T, BLOCK_C], dtype=tl.float32)
        for t0 in range(0, T, BLOCK_T):
            ti = t0 + tl.arange(0, BLOCK_T)
            tm = ti < T
            msk = tm[:, None] & cm[None, :]
            mt = tl.load(pmean_ptr + (ti * C)[:, None] + cs[None, :], mask=msk, other=0.0)
            ct = tl.where(tm, tl.minimum(MP - ti * TILE, TILE).to(tl.float32), 0.0)
            acc += ct[:, None] * mt
        mean = tl.sum(acc, axis=0) / count
        acc2 = tl.zeros([BLOCK_T, BLOCK_C], dtype=tl.float32)
        for t0 in range(0, T, BLOCK_T):
            ti = t0 + tl.arange(0, BLOCK_T)
            tm = ti < T
            msk = tm[:, None] & cm[None, :]
            mt = tl.load(pmean_ptr + (ti * C)[:, None] + cs[None, :], mask=msk, other=0.0)
            m2 = tl.load(pm2_ptr + (ti * C)[:, None] + cs[None, :], mask=msk, other=0.0)
            ct = tl.where(tm, tl.minimum(MP - ti * TILE, TILE).to(tl.float32), 0.0)
            dm = mt - mean[None, :]
            acc2 += tl.where(msk, m2 + ct[:, None] * dm * dm, 0.0)
        var = tl.sum(acc2, axis=0) / count
    else:
        mean = tl.load(rmean_ptr + cs, mask=cm, other=0.0)
        var = tl.load(rvar_ptr + cs, mask=cm, other=1.0)
    s = g / tl.sqrt(var + eps)
    tl.store(sc_ptr + cs, s, mask=cm)
    tl.store(sh_ptr + cs, bt - mean * s, mask=cm)


@triton.jit
def _pool_nhwc_kernel(z_ptr, sc_ptr, sh_ptr, out_ptr, C, H, W,
                      KP: tl.constexpr, BLOCK_P: tl.constexpr, BLOCK_C: tl.constexpr):
    # AvgPool2d(KP) -> 1x1 over relu(bn(z)) (top-left KP x KP window of each image)
    n = tl.program_id(0)
    pid_c = tl.program_id(1)
    ps = tl.arange(0, BLOCK_P)
    pmask = ps < KP * KP
    ph = ps // KP
    pw = ps % KP
    cs = pid_c * BLOCK_C + tl.arange(0, BLOCK_C)
    cm = cs < C
    sc = tl.load(sc_ptr + cs, mask=cm, other=0.0)
    sh = tl.load(sh_ptr + cs, mask=cm, other=0.0)
    msk = pmask[:, None] & cm[None, :]
    v = tl.load(z_ptr + ((n * (H * W) + ph * W + pw) * C)[:, None] + cs[None, :], mask=msk, other=0.0)
    v = tl.where(msk, tl.maximum(v * sc[None, :] + sh[None, :], 0.0), 0.0)
    tl.store(out_ptr + n * C + cs, tl.sum(v, axis=0) / (KP * KP), mask=cm)


@triton.jit
def _linear_kernel(a_ptr, w_ptr, b_ptr, out_ptr, M, N, K,
                   BM: tl.constexpr, BN: tl.constexpr, BK: tl.constexpr):
    pid_m = tl.program_id(0)
    pid_n = tl.program_id(1)
    offs_m = pid_m * BM + tl.arange(0, BM)
    offs_n = pid_n * BN + tl.arange(0, BN)
    m_mask = offs_m < M
    n_mask = offs_n < N
    acc = tl.zeros([BM, BN], dtype=tl.float32)
    for k0 in range(0, K, BK):
        ks = k0 + tl.arange(0, BK)
        k_mask = ks < K
        a = tl.load(a_ptr + offs_m[:, None] * K + ks[None, :],
                    mask=m_mask[:, None] & k_mask[None, :], other=0.0)
        b = tl.load(w_ptr + offs_n[None, :] * K + ks[:, None],
                    mask=k_mask[:, None] & n_mask[None, :], other=0.0)
        acc += tl.dot(a, b, input_precision="tf32x3")
    bias = tl.load(b_ptr + offs_n, mask=n_mask, other=0.0)
    tl.store(out_ptr + offs_m[:, None] * N + offs_n[None, :], acc + bias[None, :],
             mask=m_mask[:, None] & n_mask[None, :])


def _p2(v):
    return triton.next_power_of_2(int(v))


class ModelNew(nn.Module):
    def __init__(self, num_classes=1000, input_channels=3, alpha=1.0):
        super(ModelNew, self).__init__()

        def conv_bn(inp, oup, stride):
            return nn.Sequential(
                nn.Conv2d(inp, oup, 3, stride, 1, bias=False),
                nn.BatchNorm2d(oup),
                nn.ReLU(inplace=True)
            )

        def conv_dw(inp, oup, stride):
            return nn.Sequential(
                nn.Conv2d(inp, inp, 3, stride, 1, groups=inp, bias=False),
                nn.BatchNorm2d(inp),
                nn.ReLU(inplace=True),

                nn.Conv2d(inp, oup, 1, 1, 0, bias=False),
                nn.BatchNorm2d(oup),
                nn.ReLU(inplace=True),
            )

        self.model = nn.Sequential(
            conv_bn(input_channels, int(32 * alpha), 2),
            conv_dw(int(32 * alpha), int(64 * alpha), 1),
            conv_dw(int(64 * alpha), int(128 * alpha), 2),
            conv_dw(int(128 * alpha), int(128 * alpha), 1),
            conv_dw(int(128 * alpha), int(256 * alpha), 2),
            conv_dw(int(256 * alpha), int(256 * alpha), 1),
            conv_dw(int(256 * alpha), int(512 * alpha), 2),
            conv_dw(int(512 * alpha), int(512 * alpha), 1),
            conv_dw(int(512 * alpha), int(512 * alpha), 1),
            conv_dw(int(512 * alpha), int(512 * alpha), 1),
            conv_dw(int(512 * alpha), int(512 * alpha), 1),
            conv_dw(int(512 * alpha), int(512 * alpha), 1),
            conv_dw(int(512 * alpha), int(1024 * alpha), 2),
            conv_dw(int(1024 * alpha), int(1024 * alpha), 1),
            nn.AvgPool2d(7),
        )
        self.fc = nn.Linear(int(1024 * alpha), num_classes)

    # --- helpers -------------------------------------------------------------------------
    def _finalize(self, bn, pmean, pm2, T, MP, TILE):
        C = bn.num_features
        dev = pmean.device
        sc = torch.empty(C, device=dev, dtype=torch.float32)
        sh = torch.empty(C, device=dev, dtype=torch.float32)
        training = bn.training or bn.running_mean is None
        rmean = bn.running_mean if bn.running_mean is not None else sc
        rvar = bn.running_var if bn.running_var is not None else sc
        gamma = bn.weight if bn.weight is not None else torch.ones(C, device=dev, dtype=torch.float32)
        beta = bn.bias if bn.bias is not None else torch.zeros(C, device=dev, dtype=torch.float32)
        BLOCK_C = max(16, min(64, _p2(C)))
        _bn_finalize_kernel[(triton.cdiv(C, BLOCK_C),)](
            pmean, pm2, gamma, beta, rmean, rvar, sc, sh,
            C, T, MP, TILE, float(MP), float(bn.eps),
            BLOCK_T=min(64, _p2(T)), BLOCK_C=BLOCK_C, TRAINING=training, num_warps=4)
        return sc, sh

    def _stem(self, x, conv, bn):
        Nb, Cin, H, W = x.shape
        Cout, _, KH, KW = conv.weight.shape
        stride = conv.stride[0]
        pad = conv.padding[0]
        Ho = (H + 2 * pad - KH) // stride + 1
        Wo = (W + 2 * pad - KW) // stride + 1
        MP = Nb * Ho * Wo
        KTOT = Cin * KH * KW
        wT = conv.weight.reshape(Cout, KTOT).t().contiguous()        # [KTOT, Cout]
        BM = 128
        BN = max(16, min(64, _p2(Cout)))
        BK = max(16, min(32, _p2(KTOT)))
        T = triton.cdiv(MP, BM)
        dev = x.device
        z = torch.empty((Nb, Ho, Wo, Cout), device=dev, dtype=torch.float32)
        pmean = torch.empty((T, Cout), device=dev, dtype=torch.float32)
        pm2 = torch.empty((T, Cout), device=dev, dtype=torch.float32)
        _stem_conv_kernel[(T, triton.cdiv(Cout, BN))](
            x, wT, z, pmean, pm2, Cin, H, W, Cout, Ho, Wo, KTOT, MP,
            KH=KH, KW=KW, STRIDE=stride, PAD=pad, BM=BM, BN=BN, BK=BK, num_warps=4)
        sc, sh = self._finalize(bn, pmean, pm2, T, MP, BM)
        return z, Cout, Ho, Wo, sc, sh

    def _dw(self, z, C, H, W, sc, sh, conv, bn):
        Nb = z.shape[0]
        stride = conv.stride[0]
        Ho = (H + 2 - 3) // stride + 1
        Wo = (W + 2 - 3) // stride + 1
        MP = Nb * Ho * Wo
        wT = conv.weight.reshape(C, 9).t().contiguous()              # [9, C]
        BLOCK_C = max(16, min(64, _p2(C)))
        BLOCK_P = max(32, min(512, 16384 // BLOCK_C, _p2(MP)))
        T = triton.cdiv(MP, BLOCK_P)
        dev = z.device
        out = torch.empty((Nb, Ho, Wo, C), device=dev, dtype=torch.float32)
        pmean = torch.empty((T, C), device=dev, dtype=torch.float32)
        pm2 = torch.empty((T, C), device=dev, dtype=torch.float32)
        _dw_nhwc_kernel[(T, triton.cdiv(C, BLOCK_C))](
            z, wT, sc, sh, out, pmean, pm2, MP, C, H, W, Ho, Wo,
            STRIDE=stride, BLOCK_P=BLOCK_P, BLOCK_C=BLOCK_C, num_warps=8)
        sc2, sh2 = self._finalize(bn, pmean, pm2, T, MP, BLOCK_P)
        return out, Ho, Wo, sc2, sh2

    def _pw(self, z, Cin, H, W, sc, sh, conv, bn):
        Nb = z.shape[0]
        Cout = conv.weight.shape[0]
        MP = Nb * H * W
        wT = conv.weight.reshape(Cout, Cin).t().contiguous()         # [Cin, Cout]
        BN = max(16, min(128, _p2(Cout)))
        BM = 128
        if triton.cdiv(MP, BM) * triton.cdiv(Cout, BN) < 132:
            BM = 64                                                  # small late layers: more programs
        BK = 64 if Cin >= 64 else max(16, _p2(Cin))
        T = triton.cdiv(MP, BM)
        dev = z.device
        out = torch.empty((Nb, H, W, Cout), device=dev, dtype=torch.float32)
        pmean = torch.empty((T, Cout), device=dev, dtype=torch.float32)
        pm2 = torch.empty((T, Cout), device=dev, dtype=torch.float32)
        _pw_gemm_kernel[(T, triton.cdiv(Cout, BN))](
            z, wT, sc, sh, out, pmean, pm2, MP, Cin, Cout,
            BM=BM, BN=BN, BK=BK, num_warps=8 if BM * BN >= 16384 else 4, num_stages=3)
        sc2, sh2 = self._finalize(bn, pmean, pm2, T, MP, BM)
        return out, Cout, sc2, sh2

    def forward(self, x):
        x = x.contiguous()
        blocks = list(self.model)
        first = blocks[0]
        z, C, H, W, sc, sh = self._stem(x, first[0], first[1])
        for blk in blocks[1:-1]:
            z, H, W, sc, sh = self._dw(z, C, H, W, sc, sh, blk[0], blk[1])
            z, C, sc, sh = self._pw(z, C, H, W, sc, sh, blk[3], blk[4])

        pool = blocks[-1]
        kp = pool.kernel_size if isinstance(pool.kernel_size, int) else pool.kernel_size[0]
        Nb = z.shape[0]
        dev = z.device
        pooled = torch.empty((Nb, C), device=dev, dtype=torch.float32)
        BLOCK_C = 64
        _pool_nhwc_kernel[(Nb, triton.cdiv(C, BLOCK_C))](
            z, sc, sh, pooled, C, H, W, KP=kp, BLOCK_P=_p2(kp * kp), BLOCK_C=BLOCK_C, num_warps=4)

        fw = self.fc.weight.contiguous()
        NC = fw.shape[0]
        out = torch.empty((Nb, NC), device=dev, dtype=torch.float32)
        BM = max(16, min(64, _p2(Nb)))
        BN = max(16, min(64, _p2(NC)))
        _linear_kernel[(triton.cdiv(Nb, BM), triton.cdiv(NC, BN))](
            pooled, fw, self.fc.bias, out, Nb, NC, C, BM=BM, BN=BN, BK=64, num_warps=4)
        return out