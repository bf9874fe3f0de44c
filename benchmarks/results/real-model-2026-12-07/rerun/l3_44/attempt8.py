import math
import torch
import torch.nn as nn
import triton
import triton.language as tl


# ---------------------------------------------------------------------------
# Algebraic rewrite of LayerNorm followed by a Linear layer:
#   LN(x) W^T + b = rstd * (x (W*gamma)^T - mean * rowsum(W*gamma)) + (W beta + b)
# - per row only mean and rstd are needed (2 floats instead of a full normalised row),
# - W*gamma, rowsum(W*gamma) and W beta + b depend only on parameters: computed once
#   per call by a small kernel,
# - the GEMM then reads the raw activations and applies the correction in its epilogue.
# ---------------------------------------------------------------------------
@triton.jit
def _ln_stats_kernel(x_ptr, mean_ptr, rstd_ptr, N_ROWS, N_COLS, eps,
                     BLOCK_ROWS: tl.constexpr, BLOCK_C: tl.constexpr):
    pid = tl.program_id(0)
    rows = pid * BLOCK_ROWS + tl.arange(0, BLOCK_ROWS)
    cols = tl.arange(0, BLOCK_C)
    row_mask = rows < N_ROWS
    col_mask = cols < N_COLS
    mask = row_mask[:, None] & col_mask[None, :]
    x = tl.load(x_ptr + rows[:, None].to(tl.int64) * N_COLS + cols[None, :],
                mask=mask, other=0.0).to(tl.float32)
    mean = tl.sum(x, axis=1) / N_COLS
    xc = tl.where(mask, x - mean[:, None], 0.0)
    var = tl.sum(xc * xc, axis=1) / N_COLS
    rstd = 1.0 / tl.sqrt(var + eps)
    tl.store(mean_ptr + rows, mean, mask=row_mask)
    tl.store(rstd_ptr + rows, rstd, mask=row_mask)


@triton.jit
def _ln_fold_weight_kernel(w_ptr, g_ptr, be_ptr, b_ptr, wf_ptr, wsum_ptr, bf_ptr, N, K,
                           BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr):
    # wf = W * gamma (column scale), wsum = rowsum(wf), bf = b + W @ beta
    pid = tl.program_id(0)
    rows = pid * BLOCK_N + tl.arange(0, BLOCK_N)
    row_mask = rows < N
    cols = tl.arange(0, BLOCK_K)
    row_off = rows[:, None].to(tl.int64) * K
    wsum = tl.zeros((BLOCK_N,), dtype=tl.float32)
    wbeta = tl.zeros((BLOCK_N,), dtype=tl.float32)
    for k0 in range(0, K, BLOCK_K):
        kk = k0 + cols
        km = kk < K
        m = row_mask[:, None] & km[None, :]
        w = tl.load(w_ptr + row_off + kk[None, :], mask=m, other=0.0)
        g = tl.load(g_ptr + kk, mask=km, other=0.0)
        be = tl.load(be_ptr + kk, mask=km, other=0.0)
        wg = w * g[None, :]
        tl.store(wf_ptr + row_off + kk[None, :], wg, mask=m)
        wsum += tl.sum(wg, axis=1)
        wbeta += tl.sum(w * be[None, :], axis=1)
    b = tl.load(b_ptr + rows, mask=row_mask, other=0.0)
    tl.store(wsum_ptr + rows, wsum, mask=row_mask)
    tl.store(bf_ptr + rows, b + wbeta, mask=row_mask)


# ---------------------------------------------------------------------------
# Linear: C = act(corr(A @ W^T) + bias) (+ residual)
#   HAS_LN: corr(acc) = rstd[m] * (acc - mean[m] * wsum[n])   (folded LayerNorm)
#   ACT 1: GELU written as x * sigmoid(2u) == 0.5 x (1 + tanh(u)), u = sqrt(2/pi)(x + 0.044715 x^3)
# ---------------------------------------------------------------------------
@triton.jit
def _linear_lnfold_kernel(a_ptr, w_ptr, bias_ptr, res_ptr, c_ptr,
                          mean_ptr, rstd_ptr, wsum_ptr,
                          M, N, K,
                          stride_am, stride_wn, stride_rm, stride_cm,
                          HAS_LN: tl.constexpr, ACT: tl.constexpr, HAS_RES: tl.constexpr,
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
    rm = offs_m % M
    rn = offs_n % N

    a_ptrs = a_ptr + rm[:, None].to(tl.int64) * stride_am + offs_k[None, :]
    w_ptrs = w_ptr + rn[:, None].to(tl.int64) * stride_wn + offs_k[None, :]

    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    for k0 in range(0, K, BLOCK_K):
        if EVEN_K:
            a = tl.load(a_ptrs)
            w = tl.load(w_ptrs)
        else:
            k_mask = offs_k[None, :] < K - k0
            a = tl.load(a_ptrs, mask=k_mask, other=0.0)
            w = tl.load(w_ptrs, mask=k_mask, other=0.0)
        acc = tl.dot(a, tl.trans(w), acc, input_precision='tf32x3')
        a_ptrs += BLOCK_K
        w_ptrs += BLOCK_K

    m_mask = offs_m < M
    n_mask = offs_n < N
    if HAS_LN:
        mu = tl.load(mean_ptr + offs_m, mask=m_mask, other=0.0)
        rs = tl.load(rstd_ptr + offs_m, mask=m_mask, other=0.0)
        ws = tl.load(wsum_ptr + offs_n, mask=n_mask, other=0.0)
        acc = rs[:, None] * (acc - mu[:, None] * ws[None, :])
    bias = tl.load(bias_ptr + offs_n, mask=n_mask, other=0.0)
    acc = acc + bias[None, :]
    if ACT == 1:
        u = 0.7978845608028654 * (acc + 0.044715 * acc * acc * acc)
        acc = acc / (1.0 + tl.exp(-2.0 * u))
    c_mask = m_mask[:, None] & n_mask[None, :]
    if HAS_RES:
        r = tl.load(res_ptr + offs_m[:, None].to(tl.int64) * stride_rm + offs_n[None, :],
                    mask=c_mask, other=0.0)
        acc = acc + r
    tl.store(c_ptr + offs_m[:, None].to(tl.int64) * stride_cm + offs_n[None, :], acc, mask=c_mask)


# ---------------------------------------------------------------------------
# Causal flash attention (tiled: 128 queries per program, head dim as D1 + D2 chunks).
#  - BLOCK_M = 128 queries per program: every K/V tile brought on chip is reused by
#    128 query rows (twice the previous 64).
#  - The head dim is covered by two power-of-two chunks D1 + D2 (96 = 64 + 32) instead
#    of one padded chunk (96 -> 128), so no registers, shared memory or MMA work are
#    spent on padding columns.
# qkv: [B, T, 3C]; y: [B, T, C] (heads side by side)
# ---------------------------------------------------------------------------
@triton.jit
def _causal_attn_split_kernel(qkv_ptr, y_ptr, T, H, HS, C,
                              stride_qkv_b, stride_qkv_t, stride_y_b, stride_y_t,
                              qk_scale, NUM_M_BLOCKS,
                              BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
                              D1: tl.constexpr, D2: tl.constexpr, HAS_D2: tl.constexpr):
    pid_bh = tl.program_id(0)
    pid_m = NUM_M_BLOCKS - 1 - tl.program_id(1)      # longest causal rows first
    b = pid_bh // H
    h = pid_bh % H

    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_nb = tl.arange(0, BLOCK_N)
    m_mask = offs_m < T

    q_base = qkv_ptr + b.to(tl.int64) * stride_qkv_b + h * HS
    k_base = q_base + C
    v_base = q_base + 2 * C
    y_base = y_ptr + b.to(tl.int64) * stride_y_b + h * HS

    # chunk 1 of the head dim: columns [0, D1)
    offs_d1 = tl.arange(0, D1)
    d1_mask = offs_d1 < HS
    q1 = tl.load(q_base + offs_m[:, None] * stride_qkv_t + offs_d1[None, :],
                 mask=m_mask[:, None] & d1_mask[None, :], other=0.0)
    q1 = q1 * qk_scale
    kv1_offs = offs_nb[:, None] * stride_qkv_t + offs_d1[None, :]
    acc1 = tl.zeros((BLOCK_M, D1), dtype=tl.float32)
    if HAS_D2:
        # chunk 2 of the head dim: columns [D1, D1 + D2)
        offs_d2 = D1 + tl.arange(0, D2)
        d2_mask = offs_d2 < HS
        q2 = tl.load(q_base + offs_m[:, None] * stride_qkv_t + offs_d2[None, :],
                     mask=m_mask[:, None] & d2_mask[None, :], other=0.0)
        q2 = q2 * qk_scale
        kv2_offs = offs_nb[:, None] * stride_qkv_t + offs_d2[None, :]
        acc2 = tl.zeros((BLOCK_M, D2), dtype=tl.float32)

    m_i = tl.full((BLOCK_M,), float("-inf"), dtype=tl.float32)
    l_i = tl.zeros((BLOCK_M,), dtype=tl.float32)

    # (a) key blocks strictly below the diagonal block: every key index < pid_m*BLOCK_M
    #     <= every query index and < T, so the causal/length mask changes nothing there
    #     and is dropped (only the head-dim mask of the loads remains)
    lo_diag = pid_m * BLOCK_M
    for start_n in range(0, lo_diag, BLOCK_N):
        row_off = start_n * stride_qkv_t
        k1 = tl.load(k_base + row_off + kv1_offs, mask=d1_mask[None, :], other=0.0)
        s = tl.dot(q1, tl.trans(k1), input_precision='tf32x3')
        if HAS_D2:
            k2 = tl.load(k_base + row_off + kv2_offs, mask=d2_mask[None, :], other=0.0)
            s = tl.dot(q2, tl.trans(k2), s, input_precision='tf32x3')
        m_new = tl.maximum(m_i, tl.max(s, axis=1))
        alpha = tl.exp2(m_i - m_new)
        p = tl.exp2(s - m_new[:, None])
        l_i = l_i * alpha + tl.sum(p, axis=1)
        v1 = tl.load(v_base + row_off + kv1_offs, mask=d1_mask[None, :], other=0.0)
        acc1 = acc1 * alpha[:, None] + tl.dot(p, v1, input_precision='tf32x3')
        if HAS_D2:
            v2 = tl.load(v_base + row_off + kv2_offs, mask=d2_mask[None, :], other=0.0)
            acc2 = acc2 * alpha[:, None] + tl.dot(p, v2, input_precision='tf32x3')
        m_i = m_new

    # (b) the diagonal block(s): causal + sequence-length mask
    hi = tl.minimum((pid_m + 1) * BLOCK_M, T)
    for start_n in range(lo_diag, hi, BLOCK_N):
        offs_n = start_n + offs_nb
        n_mask = offs_n < T
        row_off = start_n * stride_qkv_t
        k1 = tl.load(k_base + row_off + kv1_offs, mask=n_mask[:, None] & d1_mask[None, :], other=0.0)
        s = tl.dot(q1, tl.trans(k1), input_precision='tf32x3')
        if HAS_D2:
            k2 = tl.load(k_base + row_off + kv2_offs, mask=n_mask[:, None] & d2_mask[None, :], other=0.0)
            s = tl.dot(q2, tl.trans(k2), s, input_precision='tf32x3')
        valid = (offs_m[:, None] >= offs_n[None, :]) & n_mask[None, :]
        s = tl.where(valid, s, float("-inf"))
        m_new = tl.maximum(m_i, tl.max(s, axis=1))
        alpha = tl.exp2(m_i - m_new)
        p = tl.exp2(s - m_new[:, None])
        l_i = l_i * alpha + tl.sum(p, axis=1)
        v1 = tl.load(v_base + row_off + kv1_offs, mask=n_mask[:, None] & d1_mask[None, :], other=0.0)
        acc1 = acc1 * alpha[:, None] + tl.dot(p, v1, input_precision='tf32x3')
        if HAS_D2:
            v2 = tl.load(v_base + row_off + kv2_offs, mask=n_mask[:, None] & d2_mask[None, :], other=0.0)
            acc2 = acc2 * alpha[:, None] + tl.dot(p, v2, input_precision='tf32x3')
        m_i = m_new

    inv_l = 1.0 / l_i
    tl.store(y_base + offs_m[:, None] * stride_y_t + offs_d1[None, :], acc1 * inv_l[:, None],
             mask=m_mask[:, None] & d1_mask[None, :])
    if HAS_D2:
        tl.store(y_base + offs_m[:, None] * stride_y_t + offs_d2[None, :], acc2 * inv_l[:, None],
                 mask=m_mask[:, None] & d2_mask[None, :])


# ---------------------------------------------------------------------------
# Modules (same parameter names / creation order as the reference)
# ---------------------------------------------------------------------------
class NewGELU(nn.Module):
    # no parameters; the activation itself is fused into the c_fc Triton kernel epilogue
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


def _ln_stats(x2d, ln):
    M, C = x2d.shape
    mean = torch.empty((M,), device=x2d.device, dtype=torch.float32)
    rstd = torch.empty((M,), device=x2d.device, dtype=torch.float32)
    BLOCK_C = triton.next_power_of_2(C)
    BLOCK_ROWS = max(2, min(8, 8192 // BLOCK_C))
    _ln_stats_kernel[(triton.cdiv(M, BLOCK_ROWS),)](
        x2d, mean, rstd, M, C, ln.eps,
        BLOCK_ROWS=BLOCK_ROWS, BLOCK_C=BLOCK_C, num_warps=8)
    return mean, rstd


def _ln_fold(lin, ln):
    w = lin.weight
    N, K = w.shape
    wf = torch.empty_like(w)
    wsum = torch.empty((N,), device=w.device, dtype=torch.float32)
    bf = torch.empty((N,), device=w.device, dtype=torch.float32)
    BLOCK_N, BLOCK_K = 32, 128
    _ln_fold_weight_kernel[(triton.cdiv(N, BLOCK_N),)](
        w, ln.weight, ln.bias, lin.bias, wf, wsum, bf, N, K,
        BLOCK_N=BLOCK_N, BLOCK_K=BLOCK_K, num_warps=4)
    return wf, wsum, bf


def _linear(a, w, bias, ln_fold=None, act=0, res=None):
    M, K = a.shape
    N = w.shape[0]
    out = torch.empty((M, N), device=a.device, dtype=a.dtype)
    if triton.cdiv(M, 128) * triton.cdiv(N, 128) >= 132:
        BLOCK_M, BLOCK_N, BLOCK_K, warps = 128, 128, 32, 8
    else:
        BLOCK_M, BLOCK_N, BLOCK_K, warps = 64, 64, 32, 4
    grid = (triton.cdiv(M, BLOCK_M) * triton.cdiv(N, BLOCK_N),)
    res_t = res if res is not None else out
    if ln_fold is not None:
        mean, rstd, wsum = ln_fold
    else:
        mean, rstd, wsum = bias, bias, bias      # unused
    _linear_lnfold_kernel[grid](
        a, w, bias, res_t, out,
        mean, rstd, wsum,
        M, N, K,
        a.stride(0), w.stride(0), res_t.stride(0), out.stride(0),
        HAS_LN=ln_fold is not None, ACT=act, HAS_RES=res is not None,
        EVEN_K=(K % BLOCK_K == 0),
        BLOCK_M=BLOCK_M, BLOCK_N=BLOCK_N, BLOCK_K=BLOCK_K, GROUP_M=8,
        num_warps=warps, num_stages=3,
    )
    return out


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

        # attention branch: LN_1 folded into the qkv projection
        mean1, rstd1 = _ln_stats(x2, self.ln_1)
        wf1, wsum1, bf1 = _ln_fold(self.attn.c_attn, self.ln_1)
        qkv = _linear(x2, wf1, bf1, ln_fold=(mean1, rstd1, wsum1))          # [M, 3C]
        y = torch.empty((M, C), device=x.device, dtype=x.dtype)
        # head dim as D1 (largest power of two <= HS, >= 16) + D2 (power of two >= 16 or none)
        D1 = max(16, triton.next_power_of_2(HS))
        if D1 > HS and D1 // 2 >= 16:
            D1 //= 2
        rem = HS - D1
        HAS_D2 = rem > 0
        D2 = max(16, triton.next_power_of_2(rem)) if HAS_D2 else 16
        if HAS_D2 and D1 + D2 >= triton.next_power_of_2(HS):
            # splitting saves nothing: one padded chunk
            D1, D2, HAS_D2 = max(16, triton.next_power_of_2(HS)), 16, False
        if T >= 128 and B * H * triton.cdiv(T, 128) >= 132:
            BLOCK_M, BLOCK_N, warps = 128, 64, 8
        else:
            BLOCK_M, BLOCK_N, warps = 64, 32, 4
        num_m = triton.cdiv(T, BLOCK_M)
        grid = (B * H, num_m)
        _causal_attn_split_kernel[grid](
            qkv, y, T, H, HS, C,
            T * 3 * C, 3 * C, T * C, C,
            1.4426950408889634 / math.sqrt(HS), num_m,
            BLOCK_M=BLOCK_M, BLOCK_N=BLOCK_N, D1=D1, D2=D2, HAS_D2=HAS_D2,
            num_warps=warps, num_stages=2,
        )
        x1 = _linear(y, self.attn.c_proj.weight, self.attn.c_proj.bias, res=x2)   # x + attn(ln_1(x))

        # MLP branch: LN_2 folded into c_fc
        mean2, rstd2 = _ln_stats(x1, self.ln_2)
        wf2, wsum2, bf2 = _ln_fold(self.mlp.c_fc, self.ln_2)
        f = _linear(x1, wf2, bf2, ln_fold=(mean2, rstd2, wsum2), act=1)      # gelu(c_fc(ln_2(x1)))
        out = _linear(f, self.mlp.c_proj.weight, self.mlp.c_proj.bias, res=x1)  # x1 + mlp(.)
        return out.view(B, T, C)