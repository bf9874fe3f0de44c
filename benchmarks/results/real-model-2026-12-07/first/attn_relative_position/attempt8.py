import math

import torch
import torch.nn as nn
import triton
import triton.language as tl

# Keys scoring more than T = SKIP_BASE + ln(kv_len) (natural units) below their row's max are not visited: together
# they weigh at most kv_len * e^-T = e^-32 (1.3e-14) of the row's softmax mass, so an output moves by at most
# 2.6e-14 * max|v|, invisible at fp32 and bf16.
SKIP_BASE = 32.0


@triton.jit
def _tile(acc, l_i, m_i, q, k_base, v_base, start_n, stride_kn, stride_kd, stride_vn, stride_vd,
          offs_d, d_ok, kv_len, qk_scale,
          BLOCK_N: tl.constexpr, PRECISION: tl.constexpr):
    offs_n = start_n + tl.arange(0, BLOCK_N)
    n_ok = offs_n < kv_len
    kT = tl.load(k_base + offs_n[None, :] * stride_kn + offs_d[:, None] * stride_kd,
                 mask=n_ok[None, :] & d_ok[:, None], other=0.0)
    v = tl.load(v_base + offs_n[:, None] * stride_vn + offs_d[None, :] * stride_vd,
                mask=n_ok[:, None] & d_ok[None, :], other=0.0)
    s = tl.dot(q, kT, input_precision=PRECISION)
    s = s * qk_scale - offs_n.to(tl.float32)[None, :] * 1.4426950408889634  # log2 units, q_idx dropped
    s = tl.where(n_ok[None, :], s, -float("inf"))
    m_new = tl.maximum(m_i, tl.max(s, 1))
    p = tl.exp2(s - m_new[:, None])
    alpha = tl.exp2(m_i - m_new)
    l_i = l_i * alpha + tl.sum(p, 1)
    acc = acc * alpha[:, None] + tl.dot(p.to(v.dtype), v, input_precision=PRECISION)
    return acc, l_i, m_new


@triton.jit
def _rel_pos_attn_fused(Q, K, V, O, Claim, Done, KnSq, sm_scale,
                        stride_qb, stride_qh, stride_qm, stride_qd,
                        stride_kb, stride_kh, stride_kn, stride_kd,
                        stride_vb, stride_vh, stride_vn, stride_vd,
                        stride_ob, stride_oh, stride_om, stride_od,
                        heads, group, q_len, kv_len, head_dim, n_chunks, skip_nat,
                        BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, HEAD_DIM: tl.constexpr,
                        CHUNK: tl.constexpr, BLOCK_R: tl.constexpr, PRECISION: tl.constexpr):
    pid_m = tl.program_id(0)
    bh = tl.program_id(1)
    b = bh // heads
    h = bh % heads
    hk = h // group
    offs_d = tl.arange(0, HEAD_DIM)
    d_ok = offs_d < head_dim
    k_base = K + b * stride_kb + hk * stride_kh
    v_base = V + b * stride_vb + hk * stride_vh

    # 0) the query tile first: its load is in flight during the ticket round trips below; per-row |q|^2 for the
    #    cut-off
    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    row_ok = offs_m < q_len
    q = tl.load(Q + b * stride_qb + h * stride_qh + offs_m[:, None] * stride_qm + offs_d[None, :] * stride_qd,
                mask=row_ok[:, None] & d_ok[None, :], other=0.0)
    qf = q.to(tl.float32)
    qsq = tl.sum(qf * qf, 1)
    qsq = tl.where(qsq == qsq, qsq, float("inf"))

    # 1) share the head's key-norm pass: claim chunks until none are left
    c = tl.atomic_add(Claim + bh, 1)
    while c < n_chunks:
        best = tl.zeros([BLOCK_R], dtype=tl.float32)
        for r0 in tl.range(0, CHUNK, BLOCK_R):
            offs_r = c * CHUNK + r0 + tl.arange(0, BLOCK_R)
            kc = tl.load(k_base + offs_r[:, None] * stride_kn + offs_d[None, :] * stride_kd,
                         mask=(offs_r[:, None] < kv_len) & d_ok[None, :], other=0.0).to(tl.float32)
            sq = tl.sum(kc * kc, 1)
            sq = tl.where(sq == sq, sq, float("inf"))  # NaN keys: no bound, walk everything
            best = tl.maximum(best, sq)
        tl.atomic_max(KnSq + bh, tl.max(best, 0))
        tl.atomic_add(Done + bh, 1)  # release: the maximum above is visible first
        c = tl.atomic_add(Claim + bh, 1)

    # 2) kv tile 0 (each row's largest bias) while the other chunks finish
    qk_scale = sm_scale * 1.4426950408889634
    m_i = tl.full([BLOCK_M], -float("inf"), dtype=tl.float32)
    l_i = tl.zeros([BLOCK_M], dtype=tl.float32)
    acc = tl.zeros([BLOCK_M, HEAD_DIM], dtype=tl.float32)
    acc, l_i, m_i = _tile(acc, l_i, m_i, q, k_base, v_base, 0, stride_kn, stride_kd, stride_vn, stride_vd,
                          offs_d, d_ok, kv_len, qk_scale, BLOCK_N, PRECISION)

    # 3) the head's max key norm: every missing chunk is held by a running program
    done = tl.atomic_add(Done + bh, 0)
    while done < n_chunks:
        done = tl.atomic_add(Done + bh, 0)
    kn = tl.sqrt(tl.atomic_max(KnSq + bh, 0.0))  # coherent read of the finished maximum

    # 4) cut-off: key x scores at most |q_r| |k|max scale - x; past `need` the keys weigh < e^-32 in all
    reach = tl.sqrt(qsq) * kn * sm_scale * 1.001 + 1e-3 - m_i * 0.6931471805599453
    reach = tl.where(row_ok, reach, -float("inf"))
    need = tl.max(reach, 0) + skip_nat
    kv_f = kv_len * 1.0
    need = tl.where(need < kv_f, need, kv_f)  # inf / NaN -> every key
    n_end = tl.minimum(need.to(tl.int32) + 1, kv_len)
    for start_n in tl.range(BLOCK_N, n_end, BLOCK_N):
        acc, l_i, m_i = _tile(acc, l_i, m_i, q, k_base, v_base, start_n, stride_kn, stride_kd, stride_vn,
                              stride_vd, offs_d, d_ok, kv_len, qk_scale, BLOCK_N, PRECISION)

    l_safe = tl.where(l_i == 0.0, 1.0, l_i)
    out = acc / l_safe[:, None]
    tl.store(O + b * stride_ob + h * stride_oh + offs_m[:, None] * stride_om + offs_d[None, :] * stride_od,
             out.to(O.dtype.element_ty), mask=row_ok[:, None] & d_ok[None, :])


class ModelNew(nn.Module):
    def __init__(self, *captures):
        super().__init__()

    def forward(self, q, k, v):
        batch, heads, q_len, head_dim = q.shape
        kv_heads, kv_len = k.shape[1], k.shape[2]
        sm_scale = 1.0 / math.sqrt(head_dim)
        padded = max(16, triton.next_power_of_2(head_dim))
        precision = "ieee" if q.dtype == torch.float32 else "tf32"
        if q.is_cuda:
            # Per program: a 128 x D query tile in registers (fp32 accumulator 128 x D: 64 registers a thread at
            # 8 warps for D = 128, 4 warps for D = 64), one 64-key K/V tile in shared memory per step (2 stages,
            # 32-64 KB), usually a single step: the kernel streams Q in and O out. Norm chunks of 256 keys read
            # 64 rows at a time (16-32 KB per load in flight).
            block_m, block_n = 128, 64
            num_warps = 8 if padded >= 128 else 4
            num_stages = 2
            chunk, block_r = 256, 64 if padded <= 128 else 32
        else:
            block_m, block_n, num_warps, num_stages = 64, 64, 4, 1
            chunk, block_r = 64, 64
        n_bh = batch * heads
        n_chunks = triton.cdiv(kv_len, chunk)
        # Claim, Done (int32) and the max squared key norm (float32; zero bits are 0.0), zeroed per call
        state = torch.zeros(3 * n_bh, device=q.device, dtype=torch.int32)
        claim, done = state[:n_bh], state[n_bh:2 * n_bh]
        kn_sq = state[2 * n_bh:].view(torch.float32)
        out = torch.empty_like(q)
        grid = (triton.cdiv(q_len, block_m), n_bh)
        _rel_pos_attn_fused[grid](
            q, k, v, out, claim, done, kn_sq, sm_scale,
            *q.stride(), *k.stride(), *v.stride(), *out.stride(),
            heads, heads // kv_heads, q_len, kv_len, head_dim, n_chunks, SKIP_BASE + math.log(kv_len),
            BLOCK_M=block_m, BLOCK_N=block_n, HEAD_DIM=padded, CHUNK=chunk, BLOCK_R=block_r,
            PRECISION=precision, num_warps=num_warps, num_stages=num_stages)
        return out