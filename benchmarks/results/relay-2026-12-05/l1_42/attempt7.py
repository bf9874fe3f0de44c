import torch
import torch.nn as nn
import triton
import triton.language as tl


def _pair(v):
    if isinstance(v, (tuple, list)):
        return int(v[0]), int(v[1])
    return int(v), int(v)


def _next_pow2(n):
    p = 1
    while p < n:
        p *= 2
    return p


def _floor_pow2_log(n):
    # largest power of two <= n, and its log2
    p, lg = 1, 0
    while p * 2 <= n:
        p *= 2
        lg += 1
    return p, lg


@triton.jit
def _max_nan(a, b):
    return tl.maximum(a, b, propagate_nan=tl.PropagateNan.ALL)


@triton.jit
def _maxpool2d_sparse_table_kernel(
    x_ptr, out_ptr,
    H, W, OH, OW,
    n_hb, n_wb,
    KH: tl.constexpr, KW: tl.constexpr,
    SH: tl.constexpr, SW: tl.constexpr,
    PH: tl.constexpr, PW: tl.constexpr,
    DH: tl.constexpr, DW: tl.constexpr,
    R: tl.constexpr, CW: tl.constexpr,            # input tile held on chip (powers of 2)
    OUT_ROWS: tl.constexpr, OUT_COLS: tl.constexpr,  # outputs that tile fully covers
    BHO: tl.constexpr, BWO: tl.constexpr,         # pow2 >= OUT_ROWS / OUT_COLS
    PKH: tl.constexpr, LKH: tl.constexpr,         # largest pow2 <= KH and its log2
    PKW: tl.constexpr, LKW: tl.constexpr,
    H_IDENT: tl.constexpr, V_IDENT: tl.constexpr,  # final selection is the identity
):
    # max is associative AND idempotent, so a window max of length K equals
    #   max(M_P[c], M_P[c + (K-P)*D]),   P = largest power of 2 <= K,
    # where M_P (max over P taps) is built by log2(P) doublings M_2p[c] = max(M_p[c], M_p[c+p*D]).
    # For a 4x4 window: 2 doublings per axis instead of 3 maxes over 4 reloads per axis,
    # and the input tile is read from global memory exactly ONCE (no per-tap reloads);
    # all shifts are on-chip gathers.
    pid = tl.program_id(0)
    pid_w = pid % n_wb
    tmp = pid // n_wb
    pid_h = tmp % n_hb
    pid_nc = tmp // n_hb

    x_base = x_ptr + pid_nc.to(tl.int64) * H * W
    out_base = out_ptr + pid_nc.to(tl.int64) * OH * OW

    oh0 = pid_h * OUT_ROWS
    ow0 = pid_w * OUT_COLS

    # ---- single global read of the R x CW input tile (padding -> -inf)
    r = tl.arange(0, R)
    c = tl.arange(0, CW)
    ih = (oh0 * SH - PH + r)[:, None]
    iw = (ow0 * SW - PW + c)[None, :]
    m = (ih >= 0) & (ih < H) & (iw >= 0) & (iw < W)
    t = tl.load(x_base + ih * W + iw, mask=m, other=float("-inf")).to(tl.float32)

    # ---- horizontal: doublings along columns
    zc = tl.zeros([R, CW], dtype=tl.int32)
    for s in tl.static_range(LKW):
        idx = tl.minimum(c + (DW << s), CW - 1)[None, :] + zc
        t = _max_nan(t, tl.gather(t, idx, 1))
    if H_IDENT:
        hm = t
    else:
        j = tl.arange(0, BWO)
        zj = tl.zeros([R, BWO], dtype=tl.int32)
        i0 = tl.minimum(j * SW, CW - 1)[None, :] + zj
        i1 = tl.minimum(j * SW + (KW - PKW) * DW, CW - 1)[None, :] + zj
        hm = _max_nan(tl.gather(t, i0, 1), tl.gather(t, i1, 1))   # [R, BWO]

    # ---- vertical: doublings along rows
    zr = tl.zeros([R, BWO], dtype=tl.int32)
    for s in tl.static_range(LKH):
        idx = tl.minimum(r + (DH << s), R - 1)[:, None] + zr
        hm = _max_nan(hm, tl.gather(hm, idx, 0))
    if V_IDENT:
        res = hm
    else:
        i = tl.arange(0, BHO)
        zi = tl.zeros([BHO, BWO], dtype=tl.int32)
        k0 = tl.minimum(i * SH, R - 1)[:, None] + zi
        k1 = tl.minimum(i * SH + (KH - PKH) * DH, R - 1)[:, None] + zi
        res = _max_nan(tl.gather(hm, k0, 0), tl.gather(hm, k1, 0))  # [BHO, BWO]

    # ---- store the fully covered outputs
    orow = tl.arange(0, BHO)[:, None]
    ocol = tl.arange(0, BWO)[None, :]
    oh = oh0 + orow
    ow = ow0 + ocol
    om = (orow < OUT_ROWS) & (ocol < OUT_COLS) & (oh < OH) & (ow < OW)
    tl.store(out_base + oh * OW + ow, res, mask=om)


class ModelNew(nn.Module):
    def __init__(self, kernel_size: int, stride: int, padding: int, dilation: int):
        super().__init__()
        self.kh, self.kw = _pair(kernel_size)
        if stride is None:
            stride = kernel_size
        self.sh, self.sw = _pair(stride)
        self.ph, self.pw = _pair(padding)
        self.dh, self.dw = _pair(dilation)
        # ---- everything below depends only on the parameters: computed once
        span_h = (self.kh - 1) * self.dh + 1
        span_w = (self.kw - 1) * self.dw + 1
        self.R = max(32, _next_pow2(span_h + 3 * self.sh))
        self.CW = max(64, _next_pow2(span_w + 3 * self.sw))
        self.out_rows = (self.R - span_h) // self.sh + 1
        self.out_cols = (self.CW - span_w) // self.sw + 1
        self.BHO = _next_pow2(self.out_rows)
        self.BWO = _next_pow2(self.out_cols)
        self.PKH, self.LKH = _floor_pow2_log(self.kh)
        self.PKW, self.LKW = _floor_pow2_log(self.kw)
        self.h_ident = (self.sw == 1 and self.kw == self.PKW and self.BWO == self.CW)
        self.v_ident = (self.sh == 1 and self.kh == self.PKH and self.BHO == self.R)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.contiguous()
        N, C, H, W = x.shape
        OH = (H + 2 * self.ph - self.dh * (self.kh - 1) - 1) // self.sh + 1
        OW = (W + 2 * self.pw - self.dw * (self.kw - 1) - 1) // self.sw + 1
        out = torch.empty((N, C, OH, OW), device=x.device, dtype=x.dtype)
        NC = N * C
        if NC == 0 or OH <= 0 or OW <= 0:
            return out
        n_hb = triton.cdiv(OH, self.out_rows)
        n_wb = triton.cdiv(OW, self.out_cols)
        grid = (NC * n_hb * n_wb,)
        _maxpool2d_sparse_table_kernel[grid](
            x, out, H, W, OH, OW,
            n_hb, n_wb,
            KH=self.kh, KW=self.kw,
            SH=self.sh, SW=self.sw,
            PH=self.ph, PW=self.pw,
            DH=self.dh, DW=self.dw,
            R=self.R, CW=self.CW,
            OUT_ROWS=self.out_rows, OUT_COLS=self.out_cols,
            BHO=self.BHO, BWO=self.BWO,
            PKH=self.PKH, LKH=self.LKH, PKW=self.PKW, LKW=self.LKW,
            H_IDENT=self.h_ident, V_IDENT=self.v_ident,
            num_warps=4,
        )
        return out