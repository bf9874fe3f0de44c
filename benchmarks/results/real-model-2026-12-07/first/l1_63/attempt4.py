import torch
import torch.nn as nn
import triton
import triton.language as tl


@triton.jit
def _conv2d_direct_kernel(
    x_ptr, w_ptr, b_ptr, y_ptr,
    C, H, W, OC, OH, OW,
    CG, OCG, N_OC_BLK, N_W_BLK,
    SH, SW, PH, PW, DH, DW,
    KH: tl.constexpr, KW: tl.constexpr,
    HAS_BIAS: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
):
    pid_m = tl.program_id(0)
    n = tl.program_id(1)
    pid_g = tl.program_id(2)

    oh = pid_m // N_W_BLK
    wb = pid_m % N_W_BLK
    g = pid_g // N_OC_BLK
    ocb = pid_g % N_OC_BLK

    offs_w = wb * BLOCK_M + tl.arange(0, BLOCK_M)
    w_ok = offs_w < OW
    iw0 = offs_w * SW - PW
    # keep the row index a vector so every mask below is a vector (no scalar & vector)
    ih0 = (oh * SH - PH) + tl.zeros((BLOCK_M,), dtype=tl.int32)

    offs_ocg = ocb * BLOCK_N + tl.arange(0, BLOCK_N)
    oc_ok = offs_ocg < OCG
    offs_oc = g * OCG + offs_ocg

    HW = H * W
    x_base = x_ptr + (n.to(tl.int64) * C + g * CG) * HW
    w_rows = w_ptr + offs_oc * (CG * (KH * KW))

    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    for c in range(0, CG):
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

    OHW = OH * OW
    y_base = y_ptr + n.to(tl.int64) * OC * OHW + oh * OW
    y_ptrs = y_base + offs_oc[None, :].to(tl.int64) * OHW + offs_w[:, None]
    tl.store(y_ptrs, acc, mask=w_ok[:, None] & oc_ok[None, :])


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

        BLOCK_M = min(128, max(16, _np2(OW)))
        BLOCK_N = min(128, max(16, _np2(OCG)))
        N_W_BLK = triton.cdiv(OW, BLOCK_M)
        N_OC_BLK = triton.cdiv(OCG, BLOCK_N)
        num_warps = 8 if BLOCK_M * BLOCK_N >= 128 * 128 else 4

        has_bias = conv.bias is not None
        b = conv.bias.contiguous() if has_bias else w

        grid = (OH * N_W_BLK, N, G * N_OC_BLK)
        _conv2d_direct_kernel[grid](
            x, w, b, y,
            C, H, W, OC, OH, OW,
            CG, OCG, N_OC_BLK, N_W_BLK,
            SH, SW, PH, PW, DH, DW,
            KH=KH, KW=KW, HAS_BIAS=has_bias,
            BLOCK_M=BLOCK_M, BLOCK_N=BLOCK_N,
            num_warps=num_warps,
        )
        return y