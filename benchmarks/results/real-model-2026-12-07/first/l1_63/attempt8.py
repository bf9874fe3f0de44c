import torch
import torch.nn as nn
import triton
import triton.language as tl


# ----------------------------------------------------------------------------------------------
# Winograd F(2x2, 3x3) for stride-1, dilation-1, 3x3, groups=1 convolutions.
#   Y = A^T [ (G g G^T) (.) (B^T d B) ] A, summed over input channels.
# 16 products per 2x2 output tile instead of 36: 2.25x fewer MACs, done as 16 small GEMMs
# (tiles x C) @ (C x OC) on tensor cores with tf32x3.
# ----------------------------------------------------------------------------------------------

@triton.jit
def _wino_store_urow(u_ptr, row: tl.constexpr, a, b, c, PLANE, off, m):
    # one row of U = t G^T, t = G g ; G^T columns give: a, (a+b+c)/2, (a-b+c)/2, c
    tl.store(u_ptr + (row * 4 + 0) * PLANE + off, a, mask=m)
    tl.store(u_ptr + (row * 4 + 1) * PLANE + off, 0.5 * (a + b + c), mask=m)
    tl.store(u_ptr + (row * 4 + 2) * PLANE + off, 0.5 * (a - b + c), mask=m)
    tl.store(u_ptr + (row * 4 + 3) * PLANE + off, c, mask=m)


@triton.jit
def _wino_weight_kernel(w_ptr, u_ptr, C, OC, BLOCK_N: tl.constexpr):
    # w: [OC, C, 3, 3]  ->  u: [16, C, OC]  (plane xi*4+nu, contiguous along OC)
    c = tl.program_id(0)
    ocb = tl.program_id(1)
    offs = ocb * BLOCK_N + tl.arange(0, BLOCK_N)
    m = offs < OC
    base = w_ptr + offs * (C * 9) + c * 9
    g00 = tl.load(base + 0, mask=m, other=0.0)
    g01 = tl.load(base + 1, mask=m, other=0.0)
    g02 = tl.load(base + 2, mask=m, other=0.0)
    g10 = tl.load(base + 3, mask=m, other=0.0)
    g11 = tl.load(base + 4, mask=m, other=0.0)
    g12 = tl.load(base + 5, mask=m, other=0.0)
    g20 = tl.load(base + 6, mask=m, other=0.0)
    g21 = tl.load(base + 7, mask=m, other=0.0)
    g22 = tl.load(base + 8, mask=m, other=0.0)
    PLANE = C * OC
    off = c * OC + offs
    # t = G g (rows): g0, (g0+g1+g2)/2, (g0-g1+g2)/2, g2
    _wino_store_urow(u_ptr, 0, g00, g01, g02, PLANE, off, m)
    _wino_store_urow(u_ptr, 1, 0.5 * (g00 + g10 + g20), 0.5 * (g01 + g11 + g21), 0.5 * (g02 + g12 + g22),
                     PLANE, off, m)
    _wino_store_urow(u_ptr, 2, 0.5 * (g00 - g10 + g20), 0.5 * (g01 - g11 + g21), 0.5 * (g02 - g12 + g22),
                     PLANE, off, m)
    _wino_store_urow(u_ptr, 3, g20, g21, g22, PLANE, off, m)


@triton.jit
def _wino_ld(cptr, ih, iw, H, W, t_ok, c_ok):
    # one element of every 4x4 input patch: [BLOCK_T, BLOCK_C], zero outside the image
    m = t_ok & (ih >= 0) & (ih < H) & (iw >= 0) & (iw < W)
    return tl.load(cptr + (ih * W + iw)[:, None], mask=m[:, None] & c_ok[None, :], other=0.0)


@triton.jit
def _wino_row(e0, e1, e2, e3, u_row_ptrs, PLANE, b_mask):
    # row xi of V = (B^T d) B : v0 = e0-e2, v1 = e1+e2, v2 = e2-e1, v3 = e1-e3
    # returns  s0 = M0+M1+M2  and  s1 = M1-M2-M3   (M_nu = V_nu @ U_nu)
    u0 = tl.load(u_row_ptrs + 0 * PLANE, mask=b_mask, other=0.0)
    u1 = tl.load(u_row_ptrs + 1 * PLANE, mask=b_mask, other=0.0)
    u2 = tl.load(u_row_ptrs + 2 * PLANE, mask=b_mask, other=0.0)
    u3 = tl.load(u_row_ptrs + 3 * PLANE, mask=b_mask, other=0.0)
    m1 = tl.dot(e1 + e2, u1, input_precision="tf32x3")
    m2 = tl.dot(e2 - e1, u2, input_precision="tf32x3")
    s0 = tl.dot(e0 - e2, u0, m1 + m2, input_precision="tf32x3")
    s1 = tl.dot(e3 - e1, u3, m1 - m2, input_precision="tf32x3")   # - (e1-e3) @ u3
    return s0, s1


@triton.jit
def _wino_conv_kernel(
    x_ptr, u_ptr, b_ptr, y_ptr,
    C, H, W, OC, OH, OW, TW, TW_BLK, PH, PW,
    HAS_BIAS: tl.constexpr,
    BLOCK_T: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_C: tl.constexpr,
):
    pid_s = tl.program_id(0)
    n = tl.program_id(1)
    ocb = tl.program_id(2)

    th = pid_s // TW_BLK
    twb = pid_s % TW_BLK
    offs_t = twb * BLOCK_T + tl.arange(0, BLOCK_T)            # tile columns
    t_ok = offs_t < TW
    oh0 = th * 2 + tl.zeros((BLOCK_T,), dtype=tl.int32)       # vector on purpose
    ow0 = offs_t * 2
    ih0 = oh0 - PH
    iw0 = ow0 - PW

    offs_oc = ocb * BLOCK_N + tl.arange(0, BLOCK_N)
    oc_ok = offs_oc < OC
    offs_c = tl.arange(0, BLOCK_C)

    HW = H * W
    PLANE = C * OC
    x_base = x_ptr + n.to(tl.int64) * C * HW

    acc00 = tl.zeros((BLOCK_T, BLOCK_N), dtype=tl.float32)
    acc01 = tl.zeros((BLOCK_T, BLOCK_N), dtype=tl.float32)
    acc10 = tl.zeros((BLOCK_T, BLOCK_N), dtype=tl.float32)
    acc11 = tl.zeros((BLOCK_T, BLOCK_N), dtype=tl.float32)

    for c0 in range(0, C, BLOCK_C):
        cc = c0 + offs_c
        c_ok = cc < C
        cptr = x_base + cc[None, :] * HW
        ih1 = ih0 + 1
        ih2 = ih0 + 2
        ih3 = ih0 + 3
        iw1 = iw0 + 1
        iw2 = iw0 + 2
        iw3 = iw0 + 3
        d00 = _wino_ld(cptr, ih0, iw0, H, W, t_ok, c_ok)
        d01 = _wino_ld(cptr, ih0, iw1, H, W, t_ok, c_ok)
        d02 = _wino_ld(cptr, ih0, iw2, H, W, t_ok, c_ok)
        d03 = _wino_ld(cptr, ih0, iw3, H, W, t_ok, c_ok)
        d10 = _wino_ld(cptr, ih1, iw0, H, W, t_ok, c_ok)
        d11 = _wino_ld(cptr, ih1, iw1, H, W, t_ok, c_ok)
        d12 = _wino_ld(cptr, ih1, iw2, H, W, t_ok, c_ok)
        d13 = _wino_ld(cptr, ih1, iw3, H, W, t_ok, c_ok)
        d20 = _wino_ld(cptr, ih2, iw0, H, W, t_ok, c_ok)
        d21 = _wino_ld(cptr, ih2, iw1, H, W, t_ok, c_ok)
        d22 = _wino_ld(cptr, ih2, iw2, H, W, t_ok, c_ok)
        d23 = _wino_ld(cptr, ih2, iw3, H, W, t_ok, c_ok)
        d30 = _wino_ld(cptr, ih3, iw0, H, W, t_ok, c_ok)
        d31 = _wino_ld(cptr, ih3, iw1, H, W, t_ok, c_ok)
        d32 = _wino_ld(cptr, ih3, iw2, H, W, t_ok, c_ok)
        d33 = _wino_ld(cptr, ih3, iw3, H, W, t_ok, c_ok)

        u_ptrs = u_ptr + cc[:, None] * OC + offs_oc[None, :]
        b_mask = c_ok[:, None] & oc_ok[None, :]

        # xi = 0: rows of B^T d: e0 = d0 - d2        coefficients a0=1, a1=0
        s0, s1 = _wino_row(d00 - d20, d01 - d21, d02 - d22, d03 - d23, u_ptrs + 0 * PLANE, PLANE, b_mask)
        acc00 += s0
        acc01 += s1
        # xi = 1: e1 = d1 + d2                        a0=1, a1=1
        s0, s1 = _wino_row(d10 + d20, d11 + d21, d12 + d22, d13 + d23, u_ptrs + 4 * PLANE, PLANE, b_mask)
        acc00 += s0
        acc01 += s1
        acc10 += s0
        acc11 += s1
        # xi = 2: e2 = d2 - d1                        a0=1, a1=-1
        s0, s1 = _wino_row(d20 - d10, d21 - d11, d22 - d12, d23 - d13, u_ptrs + 8 * PLANE, PLANE, b_mask)
        acc00 += s0
        acc01 += s1
        acc10 -= s0
        acc11 -= s1
        # xi = 3: e3 = d1 - d3                        a0=0, a1=-1
        s0, s1 = _wino_row(d10 - d30, d11 - d31, d12 - d32, d13 - d33, u_ptrs + 12 * PLANE, PLANE, b_mask)
        acc10 -= s0
        acc11 -= s1

    if HAS_BIAS:
        bias = tl.load(b_ptr + offs_oc, mask=oc_ok, other=0.0)
        acc00 += bias[None, :]
        acc01 += bias[None, :]
        acc10 += bias[None, :]
        acc11 += bias[None, :]

    OHW = OH * OW
    y_base = y_ptr + n.to(tl.int64) * OC * OHW
    ch = offs_oc[None, :].to(tl.int64) * OHW
    r0 = oh0 < OH
    r1 = (oh0 + 1) < OH
    q0 = t_ok & (ow0 < OW)
    q1 = t_ok & ((ow0 + 1) < OW)
    sp00 = oh0 * OW + ow0
    ocm = oc_ok[None, :]
    tl.store(y_base + ch + sp00[:, None], acc00, mask=(r0 & q0)[:, None] & ocm)
    tl.store(y_base + ch + (sp00 + 1)[:, None], acc01, mask=(r0 & q1)[:, None] & ocm)
    tl.store(y_base + ch + (sp00 + OW)[:, None], acc10, mask=(r1 & q0)[:, None] & ocm)
    tl.store(y_base + ch + (sp00 + OW + 1)[:, None], acc11, mask=(r1 & q1)[:, None] & ocm)


# generic implicit-GEMM path (any stride / dilation / groups / kernel size)
@triton.jit
def _conv2d_tile2d_kernel(
    x_ptr, w_ptr, b_ptr, y_ptr,
    C, H, W, OC, OH, OW,
    CG, OCG, N_OC_BLK, N_TW, N_C_BLK,
    SH, SW, PH, PW, DH, DW,
    KH: tl.constexpr, KW: tl.constexpr,
    HAS_BIAS: tl.constexpr,
    BLOCK_OH: tl.constexpr, BLOCK_OW: tl.constexpr,
    BLOCK_N: tl.constexpr, BLOCK_C: tl.constexpr,
):
    BLOCK_M: tl.constexpr = BLOCK_OH * BLOCK_OW
    pid_s = tl.program_id(0)
    n = tl.program_id(1)
    pid_g = tl.program_id(2)

    # 2-D spatial tile: tile row th, tile column tw
    th = pid_s // N_TW
    tw = pid_s % N_TW
    g = pid_g // N_OC_BLK
    ocb = pid_g % N_OC_BLK

    offs_m = tl.arange(0, BLOCK_M)
    oh = th * BLOCK_OH + offs_m // BLOCK_OW          # [BM]
    ow = tw * BLOCK_OW + offs_m % BLOCK_OW           # [BM]
    m_ok = (oh < OH) & (ow < OW)
    ih0 = oh * SH - PH
    iw0 = ow * SW - PW

    offs_ocg = ocb * BLOCK_N + tl.arange(0, BLOCK_N)
    oc_ok = offs_ocg < OCG
    offs_oc = g * OCG + offs_ocg

    offs_c = tl.arange(0, BLOCK_C)
    HW = H * W
    x_base = x_ptr + (n.to(tl.int64) * C + g * CG) * HW
    w_rows = offs_oc * (CG * (KH * KW))

    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    n_iter = (KH * KW) * N_C_BLK
    for it in range(0, n_iter):
        tap = it // N_C_BLK
        cb = it % N_C_BLK
        kh = tap // KW
        kw = tap % KW
        ih = ih0 + kh * DH
        iw = iw0 + kw * DW
        sp_ok = m_ok & (ih >= 0) & (ih < H) & (iw >= 0) & (iw < W)
        cc = cb * BLOCK_C + offs_c
        c_ok = cc < CG
        # A tile [BLOCK_M, BLOCK_C]: shifted input window of this tap
        a_ptrs = x_base + cc[None, :] * HW + (ih * W + iw)[:, None]
        a = tl.load(a_ptrs, mask=sp_ok[:, None] & c_ok[None, :], other=0.0)
        # B tile [BLOCK_C, BLOCK_N]: weight[oc, c, kh, kw], reused by the whole 2-D tile
        b_ptrs = w_ptr + w_rows[None, :] + cc[:, None] * (KH * KW) + tap
        b = tl.load(b_ptrs, mask=c_ok[:, None] & oc_ok[None, :], other=0.0)
        acc = tl.dot(a, b, acc, input_precision="tf32x3")

    if HAS_BIAS:
        bias = tl.load(b_ptr + offs_oc, mask=oc_ok, other=0.0)
        acc = acc + bias[None, :]

    OHW = OH * OW
    y_base = y_ptr + n.to(tl.int64) * OC * OHW
    y_ptrs = y_base + offs_oc[None, :].to(tl.int64) * OHW + (oh * OW + ow)[:, None]
    tl.store(y_ptrs, acc, mask=m_ok[:, None] & oc_ok[None, :])



def _pair(v):
    if isinstance(v, (tuple, list)):
        return int(v[0]), int(v[1])
    return int(v), int(v)


def _np2(v):
    return triton.next_power_of_2(max(int(v), 1))


class ModelNew(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
                 padding: int = 0, dilation: int = 1, groups: int = 1, bias: bool = False):
        super(ModelNew, self).__init__()
        self.conv2d = nn.Conv2d(in_channels, out_channels, (kernel_size, kernel_size), stride=stride,
                                padding=padding, dilation=dilation, groups=groups, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        conv = self.conv2d
        x = x.contiguous()
        w = conv.weight.contiguous()
        N, C, H, W = x.shape
        OC, CG, KH, KW = w.shape
        G = conv.groups
        OCG = OC // G
        SH, SW = _pair(conv.stride)
        DH, DW = _pair(conv.dilation)
        if isinstance(conv.padding, str):
            if conv.padding == "valid":
                PH = PW = 0
                tot_h = tot_w = 0
            else:  # 'same' (stride 1): extra pad goes bottom/right
                tot_h = DH * (KH - 1)
                tot_w = DW * (KW - 1)
                PH, PW = tot_h // 2, tot_w // 2
        else:
            PH, PW = _pair(conv.padding)
            tot_h, tot_w = 2 * PH, 2 * PW
        OH = (H + tot_h - DH * (KH - 1) - 1) // SH + 1
        OW = (W + tot_w - DW * (KW - 1) - 1) // SW + 1

        y = torch.empty((N, OC, OH, OW), device=x.device, dtype=x.dtype)
        if y.numel() == 0:
            return y

        has_bias = conv.bias is not None
        b = conv.bias.contiguous() if has_bias else w

        if KH == 3 and KW == 3 and SH == 1 and SW == 1 and DH == 1 and DW == 1 and G == 1:
            # --- Winograd F(2x2,3x3) path ---
            BLOCK_N = min(128, max(16, _np2(OC)))
            N_OC_BLK = triton.cdiv(OC, BLOCK_N)
            # weight transform (depends only on the weights; recomputed every call, it is tiny)
            u = torch.empty((16, C, OC), device=x.device, dtype=torch.float32)
            _wino_weight_kernel[(C, N_OC_BLK)](w, u, C, OC, BLOCK_N=BLOCK_N, num_warps=4)

            TH = triton.cdiv(OH, 2)
            TW = triton.cdiv(OW, 2)
            BLOCK_T = min(32, max(16, _np2(TW)))
            BLOCK_C = min(32, max(16, _np2(C)))
            TW_BLK = triton.cdiv(TW, BLOCK_T)
            num_warps = 8 if BLOCK_T * BLOCK_N >= 32 * 128 else 4
            grid = (TH * TW_BLK, N, N_OC_BLK)
            _wino_conv_kernel[grid](
                x, u, b, y,
                C, H, W, OC, OH, OW, TW, TW_BLK, PH, PW,
                HAS_BIAS=has_bias,
                BLOCK_T=BLOCK_T, BLOCK_N=BLOCK_N, BLOCK_C=BLOCK_C,
                num_warps=num_warps, num_stages=2,
            )
            return y

        # --- generic implicit-GEMM path ---
        BLOCK_OW = min(64, max(16, _np2(OW)))
        BLOCK_OH = max(1, 128 // BLOCK_OW)
        BLOCK_N = min(128, max(16, _np2(OCG)))
        BLOCK_C = min(32, max(16, _np2(CG)))
        N_TW = triton.cdiv(OW, BLOCK_OW)
        N_TH = triton.cdiv(OH, BLOCK_OH)
        N_OC_BLK = triton.cdiv(OCG, BLOCK_N)
        N_C_BLK = triton.cdiv(CG, BLOCK_C)
        num_warps = 8 if BLOCK_OH * BLOCK_OW * BLOCK_N >= 128 * 128 else 4
        grid = (N_TH * N_TW, N, G * N_OC_BLK)
        _conv2d_tile2d_kernel[grid](
            x, w, b, y,
            C, H, W, OC, OH, OW,
            CG, OCG, N_OC_BLK, N_TW, N_C_BLK,
            SH, SW, PH, PW, DH, DW,
            KH=KH, KW=KW, HAS_BIAS=has_bias,
            BLOCK_OH=BLOCK_OH, BLOCK_OW=BLOCK_OW,
            BLOCK_N=BLOCK_N, BLOCK_C=BLOCK_C,
            num_warps=num_warps, num_stages=3,
        )
        return y