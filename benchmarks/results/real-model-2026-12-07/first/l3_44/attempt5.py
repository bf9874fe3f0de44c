import math
import torch
import torch.nn as nn
import triton
import triton.language as tl


# ----------------------------------------------------------------------------
# Kernels
# ----------------------------------------------------------------------------

@triton.jit
def _layernorm_kernel(x_ptr, w_ptr, b_ptr, y_ptr, M, C, eps,
                      BLOCK_R: tl.constexpr, BLOCK_C: tl.constexpr):
    pid = tl.program_id(0)
    rows = pid * BLOCK_R + tl.arange(0, BLOCK_R)
    cols = tl.arange(0, BLOCK_C)
    mr = rows < M
    mc = cols < C
    m2 = mr[:, None] & mc[None, :]
    offs = rows[:, None] * C + cols[None, :]
    x = tl.load(x_ptr + offs, mask=m2, other=0.0)
    mean = tl.sum(x, axis=1) / C
    d = tl.where(m2, x - mean[:, None], 0.0)
    var = tl.sum(d * d, axis=1) / C
    rstd = 1.0 / tl.sqrt(var + eps)
    w = tl.load(w_ptr + cols, mask=mc, other=0.0)
    b = tl.load(b_ptr + cols, mask=mc, other=0.0)
    y = d * rstd[:, None] * w[None, :] + b[None, :]
    tl.store(y_ptr + offs, y, mask=m2)


@triton.jit
def _linear_kernel(a_ptr, w_ptr, bias_ptr, res_ptr, y_ptr, M, N, K,
                   ACT_GELU: tl.constexpr, HAS_RES: tl.constexpr, EVEN_K: tl.constexpr,
                   BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
                   BLOCK_K: tl.constexpr, GROUP_M: tl.constexpr):
    # y = a @ w^T + bias (+ GELU) (+ residual);  a: [M, K], w: [N, K] (nn.Linear)
    # Both operand tiles are loaded row-major with K (the contiguous dim) fastest,
    # so each row segment is a contiguous 4*BLOCK_K-byte run (vector loads);
    # the W tile is transposed in registers/smem for the dot.
    pid = tl.program_id(0)
    num_m = tl.cdiv(M, BLOCK_M)
    num_n = tl.cdiv(N, BLOCK_N)
    group = GROUP_M * num_n
    gid = pid // group
    first_m = gid * GROUP_M
    gsize = tl.minimum(num_m - first_m, GROUP_M)
    pid_m = first_m + (pid % group) % gsize
    pid_n = (pid % group) // gsize

    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    offs_k = tl.arange(0, BLOCK_K)
    mask_m = offs_m < M
    mask_n = offs_n < N
    a_ptrs = a_ptr + offs_m[:, None] * K + offs_k[None, :]
    w_ptrs = w_ptr + offs_n[:, None] * K + offs_k[None, :]
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    for k0 in range(0, K, BLOCK_K):
        if EVEN_K:
            a = tl.load(a_ptrs, mask=mask_m[:, None], other=0.0)
            w = tl.load(w_ptrs, mask=mask_n[:, None], other=0.0)
        else:
            mask_k = (k0 + offs_k) < K
            a = tl.load(a_ptrs, mask=mask_m[:, None] & mask_k[None, :], other=0.0)
            w = tl.load(w_ptrs, mask=mask_n[:, None] & mask_k[None, :], other=0.0)
        acc += tl.dot(a, tl.trans(w), input_precision="tf32x3")
        a_ptrs += BLOCK_K
        w_ptrs += BLOCK_K

    bias = tl.load(bias_ptr + offs_n, mask=mask_n, other=0.0)
    acc += bias[None, :]
    if ACT_GELU:
        # 0.5*x*(1+tanh(sqrt(2/pi)*(x+0.044715*x^3))), tanh via exp (stable form)
        z = 0.7978845608028654 * (acc + 0.044715 * (acc * acc * acc))
        t = tl.exp(-2.0 * tl.abs(z))
        th = (1.0 - t) / (1.0 + t)
        th = tl.where(z >= 0, th, -th)
        acc = 0.5 * acc * (1.0 + th)
    mask2 = mask_m[:, None] & mask_n[None, :]
    out_offs = offs_m[:, None] * N + offs_n[None, :]
    if HAS_RES:
        r = tl.load(res_ptr + out_offs, mask=mask2, other=0.0)
        acc += r
    tl.store(y_ptr + out_offs, acc, mask=mask2)


@triton.jit
def _causal_attn_kernel(qkv_ptr, y_ptr, T, C, NH, HS, qk_scale,
                        BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
                        D0: tl.constexpr, D1: tl.constexpr, HAS_D1: tl.constexpr):
    # qkv: [B*T, 3C] (q | k | v, head h at columns h*HS..), y: [B*T, C]
    # One program = BLOCK_M queries of one (batch, head); every K/V tile loaded
    # from memory is reused by all BLOCK_M queries. The head dim is covered by
    # two power-of-two chunks [0, D0) and [D0, D0+D1) (e.g. 96 = 64 + 32) so no
    # registers / MMA work are wasted on padding to 128.
    # qk_scale = log2(e)/sqrt(HS): softmax is computed with exp2.
    pid_m = tl.program_id(0)
    bh = tl.program_id(1)
    b = bh // NH
    h = bh % NH
    rs = 3 * C
    base = qkv_ptr + b * T * rs + h * HS

    q_start = pid_m * BLOCK_M
    offs_m = q_start + tl.arange(0, BLOCK_M)
    offs_j = tl.arange(0, BLOCK_N)
    mask_m = offs_m < T

    d0 = tl.arange(0, D0)
    md0 = d0 < HS
    q0 = tl.load(base + offs_m[:, None] * rs + d0[None, :],
                 mask=mask_m[:, None] & md0[None, :], other=0.0)
    k0_ptrs = base + C + offs_j[:, None] * rs + d0[None, :]
    v0_ptrs = base + 2 * C + offs_j[:, None] * rs + d0[None, :]
    acc0 = tl.zeros((BLOCK_M, D0), dtype=tl.float32)
    if HAS_D1:
        d1 = D0 + tl.arange(0, D1)
        md1 = d1 < HS
        q1 = tl.load(base + offs_m[:, None] * rs + d1[None, :],
                     mask=mask_m[:, None] & md1[None, :], other=0.0)
        k1_ptrs = base + C + offs_j[:, None] * rs + d1[None, :]
        v1_ptrs = base + 2 * C + offs_j[:, None] * rs + d1[None, :]
        acc1 = tl.zeros((BLOCK_M, D1), dtype=tl.float32)

    m_i = tl.full((BLOCK_M,), -1.0e30, dtype=tl.float32)
    l_i = tl.zeros((BLOCK_M,), dtype=tl.float32)

    # key blocks entirely before this query block: fully visible, all < T
    for start_n in range(0, q_start, BLOCK_N):
        k0 = tl.load(k0_ptrs + start_n * rs, mask=md0[None, :], other=0.0)
        s = tl.dot(q0, tl.trans(k0), input_precision="tf32x3")
        if HAS_D1:
            k1 = tl.load(k1_ptrs + start_n * rs, mask=md1[None, :], other=0.0)
            s += tl.dot(q1, tl.trans(k1), input_precision="tf32x3")
        s = s * qk_scale
        m_new = tl.maximum(m_i, tl.max(s, axis=1))
        alpha = tl.exp2(m_i - m_new)
        p = tl.exp2(s - m_new[:, None])
        l_i = l_i * alpha + tl.sum(p, axis=1)
        v0 = tl.load(v0_ptrs + start_n * rs, mask=md0[None, :], other=0.0)
        acc0 = acc0 * alpha[:, None] + tl.dot(p, v0, input_precision="tf32x3")
        if HAS_D1:
            v1 = tl.load(v1_ptrs + start_n * rs, mask=md1[None, :], other=0.0)
            acc1 = acc1 * alpha[:, None] + tl.dot(p, v1, input_precision="tf32x3")
        m_i = m_new

    # diagonal region: causal mask and sequence-end mask
    hi = tl.minimum(q_start + BLOCK_M, T)
    for start_n in range(q_start, hi, BLOCK_N):
        offs_n = start_n + offs_j
        mask_n = offs_n < T
        k0 = tl.load(k0_ptrs + start_n * rs, mask=mask_n[:, None] & md0[None, :], other=0.0)
        s = tl.dot(q0, tl.trans(k0), input_precision="tf32x3")
        if HAS_D1:
            k1 = tl.load(k1_ptrs + start_n * rs, mask=mask_n[:, None] & md1[None, :], other=0.0)
            s += tl.dot(q1, tl.trans(k1), input_precision="tf32x3")
        valid = (offs_n[None, :] <= offs_m[:, None]) & mask_n[None, :]
        s = tl.where(valid, s * qk_scale, -1.0e30)
        m_new = tl.maximum(m_i, tl.max(s, axis=1))
        alpha = tl.exp2(m_i - m_new)
        p = tl.exp2(s - m_new[:, None])
        p = tl.where(valid, p, 0.0)
        l_i = l_i * alpha + tl.sum(p, axis=1)
        v0 = tl.load(v0_ptrs + start_n * rs, mask=mask_n[:, None] & md0[None, :], other=0.0)
        acc0 = acc0 * alpha[:, None] + tl.dot(p, v0, input_precision="tf32x3")
        if HAS_D1:
            v1 = tl.load(v1_ptrs + start_n * rs, mask=mask_n[:, None] & md1[None, :], other=0.0)
            acc1 = acc1 * alpha[:, None] + tl.dot(p, v1, input_precision="tf32x3")
        m_i = m_new

    l_safe = tl.where(l_i > 0.0, l_i, 1.0)
    inv_l = 1.0 / l_safe
    y_row = y_ptr + (b * T + offs_m)[:, None] * C + h * HS
    tl.store(y_row + d0[None, :], acc0 * inv_l[:, None], mask=mask_m[:, None] & md0[None, :])
    if HAS_D1:
        tl.store(y_row + d1[None, :], acc1 * inv_l[:, None],
                 mask=mask_m[:, None] & md1[None, :])


# ----------------------------------------------------------------------------
# Launch helpers
# ----------------------------------------------------------------------------

def _np2(x):
    return triton.next_power_of_2(max(int(x), 1))


def _layernorm(x2, ln):
    M, C = x2.shape
    y = torch.empty_like(x2)
    BLOCK_C = _np2(C)
    BLOCK_R = max(1, min(16, 4096 // BLOCK_C))
    grid = (triton.cdiv(M, BLOCK_R),)
    _layernorm_kernel[grid](x2, ln.weight, ln.bias, y, M, C, float(ln.eps),
                            BLOCK_R=BLOCK_R, BLOCK_C=BLOCK_C, num_warps=4)
    return y


def _linear(a, lin, gelu=False, res=None):
    M, K = a.shape
    N = lin.out_features
    w = lin.weight
    y = torch.empty((M, N), device=a.device, dtype=torch.float32)
    BM = 128 if M >= 128 else max(16, _np2(M))
    BN = 128 if N >= 128 else max(16, _np2(N))
    BK = 32
    nw = 8 if BM * BN >= 128 * 128 else 4
    grid = (triton.cdiv(M, BM) * triton.cdiv(N, BN),)
    _linear_kernel[grid](a, w, lin.bias, res if res is not None else y, y, M, N, K,
                         ACT_GELU=gelu, HAS_RES=res is not None, EVEN_K=(K % BK == 0),
                         BLOCK_M=BM, BLOCK_N=BN, BLOCK_K=BK, GROUP_M=8,
                         num_warps=nw, num_stages=4 if BM * BN >= 128 * 128 else 3)
    return y


# ----------------------------------------------------------------------------
# Modules (same structure / parameter names as the reference)
# ----------------------------------------------------------------------------

class NewGELU(nn.Module):
    def __init__(self):
        super(NewGELU, self).__init__()


class CausalSelfAttention(nn.Module):
    def __init__(self, n_embd, n_head, attn_pdrop, resid_pdrop, max_seqlen):
        super().__init__()
        assert n_embd % n_head == 0
        self.c_attn = nn.Linear(n_embd, 3 * n_embd)
        self.c_proj = nn.Linear(n_embd, n_embd)
        self.attn_dropout = nn.Dropout(attn_pdrop)
        self.resid_dropout = nn.Dropout(resid_pdrop)
        self.register_buffer("bias", torch.tril(torch.ones(max_seqlen, max_seqlen))
                             .view(1, 1, max_seqlen, max_seqlen))
        self.n_head = n_head
        self.n_embd = n_embd


class ModelNew(nn.Module):
    def __init__(self, n_embd, n_head, attn_pdrop, resid_pdrop, max_seqlen):
        super().__init__()
        self.ln_1 = nn.LayerNorm(n_embd)
        self.attn = CausalSelfAttention(n_embd, n_head, attn_pdrop, resid_pdrop, max_seqlen)
        self.ln_2 = nn.LayerNorm(n_embd)
        self.mlp = nn.ModuleDict(dict(
            c_fc=nn.Linear(n_embd, 4 * n_embd),
            c_proj=nn.Linear(4 * n_embd, n_embd),
            act=NewGELU(),
            dropout=nn.Dropout(resid_pdrop),
        ))

    def forward(self, x):
        B, T, C = x.shape
        nh = self.attn.n_head
        hs = C // nh
        M = B * T
        x2 = x.contiguous().view(M, C)

        # --- attention branch ---
        h1 = _layernorm(x2, self.ln_1)
        qkv = _linear(h1, self.attn.c_attn)                    # [M, 3C]
        y = torch.empty((M, C), device=x.device, dtype=torch.float32)
        # head-dim split into power-of-two chunks (>= 16 for tl.dot)
        if hs <= 16 or (hs & (hs - 1)) == 0:
            D0, D1, HAS_D1 = max(16, _np2(hs)), 16, False
        else:
            D0 = 1 << (hs.bit_length() - 1)          # largest power of two <= hs
            D1 = max(16, _np2(hs - D0))
            HAS_D1 = True
        BLOCK_M = 128 if T >= 128 else max(16, _np2(T))
        BLOCK_N = min(64, BLOCK_M)
        nw = 8 if BLOCK_M >= 128 else 4
        grid = (triton.cdiv(T, BLOCK_M), B * nh)
        qk_scale = (1.0 / math.sqrt(hs)) * 1.4426950408889634  # log2(e)/sqrt(hs)
        _causal_attn_kernel[grid](qkv, y, T, C, nh, hs, qk_scale,
                                  BLOCK_M=BLOCK_M, BLOCK_N=BLOCK_N,
                                  D0=D0, D1=D1, HAS_D1=HAS_D1,
                                  num_warps=nw, num_stages=2)
        x1 = _linear(y, self.attn.c_proj, res=x2)               # x + attn(ln_1(x))

        # --- MLP branch ---
        h2 = _layernorm(x1, self.ln_2)
        f = _linear(h2, self.mlp.c_fc, gelu=True)               # [M, 4C]
        out = _linear(f, self.mlp.c_proj, res=x1)               # x + mlp(ln_2(x))
        return out.view(B, T, C)