import math
import torch
import torch.nn as nn
import triton
import triton.language as tl


# ---------------------------------------------------------------------------
# Shared GEMM building blocks (tf32x3 tensor-core products, fp32 accumulation).
# a_rows: [BM, 1] row pointers of a row-major activation matrix (unit stride along K)
# w_rows: [BN, 1] row pointers of a row-major nn.Linear weight  (unit stride along K)
# ---------------------------------------------------------------------------
@triton.jit
def _mm_tile(a_rows, w_rows, K, acc, offs_k,
             EVEN_K: tl.constexpr, BLOCK_K: tl.constexpr):
    for k0 in range(0, K, BLOCK_K):
        kk = k0 + offs_k
        if EVEN_K:
            a = tl.load(a_rows + kk[None, :])
            w = tl.load(w_rows + kk[None, :])
        else:
            km = kk[None, :] < K
            a = tl.load(a_rows + kk[None, :], mask=km, other=0.0)
            w = tl.load(w_rows + kk[None, :], mask=km, other=0.0)
        acc = tl.dot(a, tl.trans(w), acc, input_precision="tf32x3")
    return acc


@triton.jit
def _mm_tile_ln(a_rows, w_rows, K, acc, offs_k, mean, rstd, lnw_ptr, lnb_ptr,
                EVEN_K: tl.constexpr, BLOCK_K: tl.constexpr):
    # same as _mm_tile, with LayerNorm applied to every A tile in registers
    for k0 in range(0, K, BLOCK_K):
        kk = k0 + offs_k
        if EVEN_K:
            a = tl.load(a_rows + kk[None, :])
            w = tl.load(w_rows + kk[None, :])
            g = tl.load(lnw_ptr + kk)
            bb = tl.load(lnb_ptr + kk)
        else:
            km = kk[None, :] < K
            a = tl.load(a_rows + kk[None, :], mask=km, other=0.0)
            w = tl.load(w_rows + kk[None, :], mask=km, other=0.0)
            g = tl.load(lnw_ptr + kk, mask=kk < K, other=0.0)
            bb = tl.load(lnb_ptr + kk, mask=kk < K, other=0.0)
        a = (a - mean[:, None]) * rstd[:, None] * g[None, :] + bb[None, :]
        acc = tl.dot(a, tl.trans(w), acc, input_precision="tf32x3")
    return acc


@triton.jit
def _row_stats(a_rows, K, eps, offs_k, BLOCK_M: tl.constexpr, BLOCK_K: tl.constexpr):
    # exact two-pass mean / rstd of BLOCK_M rows of length K, in one program
    s1 = tl.zeros((BLOCK_M, BLOCK_K), dtype=tl.float32)
    for k0 in range(0, K, BLOCK_K):
        kk = k0 + offs_k
        s1 += tl.load(a_rows + kk[None, :], mask=kk[None, :] < K, other=0.0)
    mean = tl.sum(s1, axis=1) / K
    s2 = tl.zeros((BLOCK_M, BLOCK_K), dtype=tl.float32)
    for k0 in range(0, K, BLOCK_K):
        kk = k0 + offs_k
        km = kk[None, :] < K
        xa = tl.load(a_rows + kk[None, :], mask=km, other=0.0)
        d = tl.where(km, xa - mean[:, None], 0.0)
        s2 += d * d
    var = tl.sum(s2, axis=1) / K
    rstd = 1.0 / tl.sqrt(var + eps)
    return mean, rstd


@triton.jit
def _gelu_tanh(x):
    # 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), tanh in overflow-safe exp form
    u = 0.7978845608028654 * (x + 0.044715 * x * x * x)
    t = tl.exp(-2.0 * tl.abs(u))
    th = (1.0 - t) / (1.0 + t)
    th = tl.where(u >= 0.0, th, -th)
    return 0.5 * x * (1.0 + th)


# ---------------------------------------------------------------------------
# Launch 1: qkv = LN_1(x) @ W_attn^T + b_attn     (LayerNorm fused in the prologue)
# ---------------------------------------------------------------------------
@triton.jit
def _ln_qkv_kernel(x_ptr, w_ptr, bias_ptr, out_ptr, lnw_ptr, lnb_ptr, eps,
                   M, N, K,
                   EVEN_K: tl.constexpr,
                   BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
                   GROUP_M: tl.constexpr):
    pid = tl.program_id(0)
    num_pid_m = tl.cdiv(M, BLOCK_M)
    num_pid_n = tl.cdiv(N, BLOCK_N)
    num_pid_in_group = GROUP_M * num_pid_n
    group_id = pid // num_pid_in_group
    first_pid_m = group_id * GROUP_M
    group_size_m = tl.minimum(num_pid_m - first_pid_m, GROUP_M)
    pid_m = first_pid_m + ((pid % num_pid_in_group) % group_size_m)
    pid_n = (pid % num_pid_in_group) // group_size_m

    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    offs_k = tl.arange(0, BLOCK_K)
    rm = tl.minimum(offs_m, M - 1)
    rn = tl.minimum(offs_n, N - 1)
    x_rows = x_ptr + rm[:, None].to(tl.int64) * K
    w_rows = w_ptr + rn[:, None].to(tl.int64) * K

    mean, rstd = _row_stats(x_rows, K, eps, offs_k, BLOCK_M, BLOCK_K)
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    acc = _mm_tile_ln(x_rows, w_rows, K, acc, offs_k, mean, rstd, lnw_ptr, lnb_ptr,
                      EVEN_K, BLOCK_K)

    n_mask = offs_n < N
    acc += tl.load(bias_ptr + offs_n, mask=n_mask, other=0.0)[None, :]
    c_mask = (offs_m[:, None] < M) & n_mask[None, :]
    tl.store(out_ptr + offs_m[:, None].to(tl.int64) * N + offs_n[None, :], acc, mask=c_mask)


# ---------------------------------------------------------------------------
# Launch 3: everything after attention, one program per BLOCK_M-row block:
#   x1  = y @ Wp^T + bp + x                          (phase 1, written: needed twice)
#   f   = gelu(LN_2(x1) @ Wfc^T + bfc)                (phase 2, row-block scratch)
#   out = f @ Wp2^T + bp2 + x1                        (phase 3)
# Phases exchange data through the program's own rows in global memory (L2-resident),
# separated by CTA barriers. Rows past M are clamped to row M-1, which belongs to the
# same (last) row block, so a program only ever reads rows it wrote itself.
# ---------------------------------------------------------------------------
@triton.jit
def _block_tail_kernel(y_ptr, x_ptr, x1_ptr, f_ptr, out_ptr,
                       wp_ptr, bp_ptr, lnw_ptr, lnb_ptr, eps,
                       wfc_ptr, bfc_ptr, wp2_ptr, bp2_ptr,
                       M, C, HID,
                       EVEN_C: tl.constexpr, EVEN_HID: tl.constexpr,
                       BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr):
    pid = tl.program_id(0)
    offs_m = pid * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_bn = tl.arange(0, BLOCK_N)
    offs_k = tl.arange(0, BLOCK_K)
    rm = tl.minimum(offs_m, M - 1)
    m_mask = offs_m < M
    rm64 = rm[:, None].to(tl.int64)
    om64 = offs_m[:, None].to(tl.int64)

    y_rows = y_ptr + rm64 * C
    x1_rows = x1_ptr + rm64 * C
    f_rows = f_ptr + rm64 * HID

    # phase 1: attention output projection + bias + residual -> x1
    for n0 in range(0, C, BLOCK_N):
        offs_n = n0 + offs_bn
        n_mask = offs_n < C
        rn = tl.minimum(offs_n, C - 1)
        acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
        acc = _mm_tile(y_rows, wp_ptr + rn[:, None].to(tl.int64) * C, C, acc, offs_k,
                       EVEN_C, BLOCK_K)
        c_mask = m_mask[:, None] & n_mask[None, :]
        acc += tl.load(bp_ptr + offs_n, mask=n_mask, other=0.0)[None, :]
        acc += tl.load(x_ptr + om64 * C + offs_n[None, :], mask=c_mask, other=0.0)
        tl.store(x1_ptr + om64 * C + offs_n[None, :], acc, mask=c_mask)
    tl.debug_barrier()

    # phase 2: LN_2 statistics + c_fc + bias + GELU -> f
    mean, rstd = _row_stats(x1_rows, C, eps, offs_k, BLOCK_M, BLOCK_K)
    for j0 in range(0, HID, BLOCK_N):
        offs_j = j0 + offs_bn
        j_mask = offs_j < HID
        rj = tl.minimum(offs_j, HID - 1)
        acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
        acc = _mm_tile_ln(x1_rows, wfc_ptr + rj[:, None].to(tl.int64) * C, C, acc, offs_k,
                          mean, rstd, lnw_ptr, lnb_ptr, EVEN_C, BLOCK_K)
        acc += tl.load(bfc_ptr + offs_j, mask=j_mask, other=0.0)[None, :]
        acc = _gelu_tanh(acc)
        tl.store(f_ptr + om64 * HID + offs_j[None, :], acc, mask=m_mask[:, None] & j_mask[None, :])
    tl.debug_barrier()

    # phase 3: MLP projection + bias + residual -> out
    for n0 in range(0, C, BLOCK_N):
        offs_n = n0 + offs_bn
        n_mask = offs_n < C
        rn = tl.minimum(offs_n, C - 1)
        acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
        acc = _mm_tile(f_rows, wp2_ptr + rn[:, None].to(tl.int64) * HID, HID, acc, offs_k,
                       EVEN_HID, BLOCK_K)
        c_mask = m_mask[:, None] & n_mask[None, :]
        acc += tl.load(bp2_ptr + offs_n, mask=n_mask, other=0.0)[None, :]
        acc += tl.load(x1_ptr + om64 * C + offs_n[None, :], mask=c_mask, other=0.0)
        tl.store(out_ptr + om64 * C + offs_n[None, :], acc, mask=c_mask)


# ---------------------------------------------------------------------------
# Causal flash attention reading q/k/v straight out of the fused qkv buffer.
# qkv: [B, T, 3C]; y: [B, T, C] with heads side by side (the transpose-back is free)
# scores, mask, softmax and P@V stay in registers.
# ---------------------------------------------------------------------------
@triton.jit
def _causal_attn_kernel(qkv_ptr, y_ptr, T, H, HS, C,
                        stride_qkv_b, stride_qkv_t, stride_y_b, stride_y_t,
                        scale, NUM_M_BLOCKS,
                        BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr):
    pid_bh = tl.program_id(0)
    pid_m = NUM_M_BLOCKS - 1 - tl.program_id(1)      # longest rows first
    b = pid_bh // H
    h = pid_bh % H

    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_nb = tl.arange(0, BLOCK_N)
    offs_d = tl.arange(0, BLOCK_D)
    d_mask = offs_d < HS
    m_mask = offs_m < T

    q_base = qkv_ptr + b.to(tl.int64) * stride_qkv_b + h * HS
    k_base = q_base + C
    v_base = q_base + 2 * C

    q = tl.load(q_base + offs_m[:, None] * stride_qkv_t + offs_d[None, :],
                mask=m_mask[:, None] & d_mask[None, :], other=0.0)

    m_i = tl.full((BLOCK_M,), float("-inf"), dtype=tl.float32)
    l_i = tl.zeros((BLOCK_M,), dtype=tl.float32)
    acc = tl.zeros((BLOCK_M, BLOCK_D), dtype=tl.float32)

    hi = tl.minimum((pid_m + 1) * BLOCK_M, T)
    for start_n in range(0, hi, BLOCK_N):
        offs_n = start_n + offs_nb
        n_mask = offs_n < T
        kt = tl.load(k_base + offs_n[None, :] * stride_qkv_t + offs_d[:, None],
                     mask=d_mask[:, None] & n_mask[None, :], other=0.0)
        s = tl.dot(q, kt, input_precision="tf32x3") * scale
        valid = (offs_m[:, None] >= offs_n[None, :]) & n_mask[None, :]
        s = tl.where(valid, s, float("-inf"))
        m_new = tl.maximum(m_i, tl.max(s, axis=1))
        alpha = tl.exp(m_i - m_new)
        p = tl.exp(s - m_new[:, None])
        l_i = l_i * alpha + tl.sum(p, axis=1)
        v = tl.load(v_base + offs_n[:, None] * stride_qkv_t + offs_d[None, :],
                    mask=n_mask[:, None] & d_mask[None, :], other=0.0)
        acc = acc * alpha[:, None] + tl.dot(p, v, input_precision="tf32x3")
        m_i = m_new

    acc = acc / l_i[:, None]
    y_ptrs = y_ptr + b.to(tl.int64) * stride_y_b + offs_m[:, None] * stride_y_t + h * HS + offs_d[None, :]
    tl.store(y_ptrs, acc, mask=m_mask[:, None] & d_mask[None, :])


# ---------------------------------------------------------------------------
# Modules (same parameter names / creation order as the reference)
# ---------------------------------------------------------------------------
class NewGELU(nn.Module):
    # no parameters; the activation is fused into the c_fc kernel epilogue
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
        self.n_head = n_head
        self.n_embd = n_embd

    def forward(self, x):
        B, T, C = x.shape
        H = self.n_head
        HS = C // H
        M = B * T
        x2 = x.reshape(M, C).contiguous()
        dev, dt = x.device, x.dtype
        BLOCK_K = 32

        # launch 1: LN_1 + qkv projection
        N3 = 3 * C
        qkv = torch.empty((M, N3), device=dev, dtype=dt)
        if triton.cdiv(M, 128) * triton.cdiv(N3, 128) >= 132:
            BM, BN, warps = 128, 128, 8
        else:
            BM, BN, warps = 64, 64, 4
        grid = (triton.cdiv(M, BM) * triton.cdiv(N3, BN),)
        _ln_qkv_kernel[grid](
            x2, self.attn.c_attn.weight, self.attn.c_attn.bias, qkv,
            self.ln_1.weight, self.ln_1.bias, self.ln_1.eps,
            M, N3, C,
            EVEN_K=(C % BLOCK_K == 0),
            BLOCK_M=BM, BLOCK_N=BN, BLOCK_K=BLOCK_K, GROUP_M=8,
            num_warps=warps, num_stages=3,
        )

        # launch 2: causal flash attention, y in [B, T, C] layout
        y = torch.empty((M, C), device=dev, dtype=dt)
        A_BM, A_BN = 64, 32
        BLOCK_D = max(16, triton.next_power_of_2(HS))
        num_m = triton.cdiv(T, A_BM)
        _causal_attn_kernel[(B * H, num_m)](
            qkv, y, T, H, HS, C,
            T * 3 * C, 3 * C, T * C, C,
            1.0 / math.sqrt(HS), num_m,
            BLOCK_M=A_BM, BLOCK_N=A_BN, BLOCK_D=BLOCK_D,
            num_warps=4, num_stages=2,
        )

        # launch 3: c_proj + residual, LN_2 + c_fc + GELU, c_proj + residual
        HID = self.mlp.c_fc.weight.shape[0]
        x1 = torch.empty((M, C), device=dev, dtype=dt)
        f = torch.empty((M, HID), device=dev, dtype=dt)
        out = torch.empty((M, C), device=dev, dtype=dt)
        if triton.cdiv(M, 128) >= 2 * 132:
            TBM, TBN, twarps = 128, 128, 8
        else:
            TBM, TBN, twarps = 64, 64, 4
        _block_tail_kernel[(triton.cdiv(M, TBM),)](
            y, x2, x1, f, out,
            self.attn.c_proj.weight, self.attn.c_proj.bias,
            self.ln_2.weight, self.ln_2.bias, self.ln_2.eps,
            self.mlp.c_fc.weight, self.mlp.c_fc.bias,
            self.mlp.c_proj.weight, self.mlp.c_proj.bias,
            M, C, HID,
            EVEN_C=(C % BLOCK_K == 0), EVEN_HID=(HID % BLOCK_K == 0),
            BLOCK_M=TBM, BLOCK_N=TBN, BLOCK_K=BLOCK_K,
            num_warps=twarps, num_stages=3,
        )
        return out.view(B, T, C)