import math

import torch
import torch.nn as nn
import triton
import triton.language as tl

# Keys whose score is more than T = SKIP_BASE + ln(kv_len) (natural units) below the row max are dropped: together
# they weigh less than kv_len * e^-T = e^-32 (1.3e-14) of the row's softmax mass, so each output moves by at most
# 2.6e-14 * max|v|, far inside every tolerance (fp32 1e-4).
SKIP_BASE = 32.0


@triton.jit
def _key_norm_kernel(K, KN, stride_kb, stride_kh, stride_kn, stride_kd, kv_heads, kv_len, head_dim, n_chunks,
                     CHUNK: tl.constexpr, BLOCK_R: tl.constexpr, HEAD_DIM: tl.constexpr):
    """KN[b*kv_heads + h, chunk] = max ||k||_2 over the chunk's keys (inf where a key has inf/NaN)."""
    pid_c = tl.program_id(0)
    bh = tl.program_id(1)
    b = bh // kv_heads
    h = bh % kv_heads
    offs_d = tl.arange(0, HEAD_DIM)
    base = K + b * stride_kb + h * stride_kh
    best = tl.zeros([BLOCK_R], dtype=tl.float32)
    for r0 in tl.range(0, CHUNK, BLOCK_R):
        offs_r = pid_c * CHUNK + r0 + tl.arange(0, BLOCK_R)
        k = tl.load(base + offs_r[:, None] * stride_kn + offs_d[None, :] * stride_kd,
                    mask=(offs_r[:, None] < kv_len) & (offs_d[None, :] < head_dim), other=0.0).to(tl.float32)
        sq = tl.sum(k * k, 1)
        sq = tl.where(sq == sq, sq, float("inf"))
        best = tl.maximum(best, sq)
    tl.store(KN + bh * n_chunks + pid_c, tl.sqrt(tl.max(best, 0)))


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
def _rel_pos_attn_fwd(Q, K, V, O, KN, sm_scale,
                      stride_qb, stride_qh, stride_qm, stride_qd,
                      stride_kb, stride_kh, stride_kn, stride_kd,
                      stride_vb, stride_vh, stride_vn, stride_vd,
                      stride_ob, stride_oh, stride_om, stride_od,
                      heads, kv_heads, group, q_len, kv_len, head_dim, n_chunks, skip_nat,
                      BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, HEAD_DIM: tl.constexpr,
                      NC: tl.constexpr, PRECISION: tl.constexpr):
    pid_m = tl.program_id(0)
    bh = tl.program_id(1)
    b = bh // heads
    h = bh % heads
    hk = h // group
    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_d = tl.arange(0, HEAD_DIM)
    d_ok = offs_d < head_dim
    row_ok = offs_m < q_len
    q = tl.load(Q + b * stride_qb + h * stride_qh + offs_m[:, None] * stride_qm + offs_d[None, :] * stride_qd,
                mask=row_ok[:, None] & d_ok[None, :], other=0.0)
    k_base = K + b * stride_kb + hk * stride_kh
    v_base = V + b * stride_vb + hk * stride_vh
    qk_scale = sm_scale * 1.4426950408889634

    m_i = tl.full([BLOCK_M], -float("inf"), dtype=tl.float32)
    l_i = tl.zeros([BLOCK_M], dtype=tl.float32)
    acc = tl.zeros([BLOCK_M, HEAD_DIM], dtype=tl.float32)
    # the first kv tile always (it holds each row's largest bias)
    acc, l_i, m_i = _tile(acc, l_i, m_i, q, k_base, v_base, 0, stride_kn, stride_kd, stride_vn, stride_vd,
                          offs_d, d_ok, kv_len, qk_scale, BLOCK_N, PRECISION)

    # exact cut-off from the running max: key x scores at most |q_r| |k|max scale - x (natural units)
    qf = q.to(tl.float32)
    qsq = tl.sum(qf * qf, 1)
    qsq = tl.where(qsq == qsq, qsq, float("inf"))
    offs_c = tl.arange(0, NC)
    kn = tl.max(tl.load(KN + (b * kv_heads + hk) * n_chunks + offs_c, mask=offs_c < n_chunks, other=0.0), 0)
    reach = tl.sqrt(qsq) * kn * sm_scale * 1.001 + 1e-3 - m_i * 0.6931471805599453
    reach = tl.where(row_ok, reach, -float("inf"))
    need = tl.max(reach, 0) + skip_nat
    kv_f = kv_len * 1.0
    need = tl.where(need < kv_f, need, kv_f)  # inf / NaN -> everything
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
            # Norm pass: a pure stream over K. About 512 programs (~4 per SM on 132 SMs), each walking its chunk
            # 64 rows (<= 16 KB) per step with 3 loads in flight.
            block_r = 64 if padded <= 128 else 32
            want = triton.cdiv(kv_len * batch * kv_heads, 512)
            chunk = min(4096, max(block_r, triton.next_power_of_2(want)))
            norm_warps, norm_stages = 4, 3
            # Attention: after the cut-off a query tile usually needs one 64-key K/V tile, so this kernel streams
            # Q in and O out; 128-row tiles give 32 KB (D=128) per load, the accumulator is 64 fp32 registers a
            # thread (8 warps at D=128, 4 at D=64), and 2048 programs at the H100 sizes fill the GPU many times.
            block_m, block_n = 128, 64
            num_warps = 8 if padded >= 128 else 4
            num_stages = 2
        else:
            chunk, block_r, norm_warps, norm_stages = 64, 64, 4, 1
            block_m, block_n, num_warps, num_stages = 64, 64, 4, 1

        n_chunks = triton.cdiv(kv_len, chunk)
        kn = torch.empty((batch * kv_heads, n_chunks), device=q.device, dtype=torch.float32)
        _key_norm_kernel[(n_chunks, batch * kv_heads)](
            k, kn, *k.stride(), kv_heads, kv_len, head_dim, n_chunks,
            CHUNK=chunk, BLOCK_R=block_r, HEAD_DIM=padded, num_warps=norm_warps, num_stages=norm_stages)

        out = torch.empty_like(q)
        grid = (triton.cdiv(q_len, block_m), batch * heads)
        _rel_pos_attn_fwd[grid](
            q, k, v, out, kn, sm_scale,
            *q.stride(), *k.stride(), *v.stride(), *out.stride(),
            heads, kv_heads, heads // kv_heads, q_len, kv_len, head_dim, n_chunks, SKIP_BASE + math.log(kv_len),
            BLOCK_M=block_m, BLOCK_N=block_n, HEAD_DIM=padded, NC=max(2, triton.next_power_of_2(n_chunks)),
            PRECISION=precision, num_warps=num_warps, num_stages=num_stages)
        return out