import torch
import torch.nn as nn
import triton
import triton.language as tl


@triton.jit
def ce_tshift_lastblock_kernel(pred_ptr, tgt_ptr, partial_ptr, counter_ptr, out_ptr,
                               N, C, stride_row, inv_n, num_progs, n_chunks,
                               BLOCK_R: tl.constexpr, R_ITERS: tl.constexpr,
                               BLOCK_C: tl.constexpr, SINGLE_CHUNK: tl.constexpr,
                               BLOCK_P: tl.constexpr):
    LOG2E: tl.constexpr = 1.4426950408889634
    LN2: tl.constexpr = 0.6931471805599453
    FLT_MAX: tl.constexpr = 3.4028234663852886e38
    pid = tl.program_id(0)
    offs_r = tl.arange(0, BLOCK_R)
    offs_c = tl.arange(0, BLOCK_C)

    acc = tl.zeros((BLOCK_R,), dtype=tl.float32)
    for it in range(0, R_ITERS):
        rows = (pid * R_ITERS + it) * BLOCK_R + offs_r
        row_mask = rows < N
        row_ptrs = pred_ptr + rows.to(tl.int64) * stride_row

        # target logits: the shift of the log-sum-exp
        t = tl.load(tgt_ptr + rows, mask=row_mask, other=0)
        y_t = tl.load(row_ptrs + t, mask=row_mask, other=0.0).to(tl.float32) * LOG2E

        if SINGLE_CHUNK:
            mask = row_mask[:, None] & (offs_c < C)[None, :]
            y = tl.load(row_ptrs[:, None] + offs_c[None, :], mask=mask,
                        other=float("-inf")).to(tl.float32) * LOG2E
            s = tl.sum(tl.exp2(y - y_t[:, None]), axis=1)
            s_big = tl.max(tl.where(row_mask, s, 0.0), axis=0)
            if s_big > FLT_MAX:
                # overflow somewhere in the tile: max-shifted path on the data in registers
                m = tl.max(y, axis=1)
                m_safe = tl.where(row_mask, m, 0.0)
                s2 = tl.sum(tl.exp2(y - m_safe[:, None]), axis=1)
                s2 = tl.where(row_mask, s2, 1.0)
                l2 = (m_safe - y_t) + tl.log2(s2)
            else:
                l2 = tl.log2(tl.where(row_mask, s, 1.0))
        else:
            s = tl.zeros((BLOCK_R,), dtype=tl.float32)
            for ci in range(0, n_chunks):
                cols = ci * BLOCK_C + offs_c
                mask = row_mask[:, None] & (cols < C)[None, :]
                y = tl.load(row_ptrs[:, None] + cols[None, :], mask=mask,
                            other=float("-inf")).to(tl.float32) * LOG2E
                s += tl.sum(tl.exp2(y - y_t[:, None]), axis=1)
            s_big = tl.max(tl.where(row_mask, s, 0.0), axis=0)
            if s_big > FLT_MAX:
                # overflow: re-stream the rows with an online max
                m = tl.full((BLOCK_R,), float("-inf"), tl.float32)
                s2 = tl.zeros((BLOCK_R,), dtype=tl.float32)
                for ci in range(0, n_chunks):
                    cols = ci * BLOCK_C + offs_c
                    mask = row_mask[:, None] & (cols < C)[None, :]
                    y = tl.load(row_ptrs[:, None] + cols[None, :], mask=mask,
                                other=float("-inf")).to(tl.float32) * LOG2E
                    m_new = tl.maximum(m, tl.max(y, axis=1))
                    m_new_safe = tl.where(row_mask, m_new, 0.0)
                    s2 = s2 * tl.exp2(m - m_new_safe) + tl.sum(tl.exp2(y - m_new_safe[:, None]), axis=1)
                    m = m_new
                m_safe = tl.where(row_mask, m, 0.0)
                s2 = tl.where(row_mask, s2, 1.0)
                l2 = (m_safe - y_t) + tl.log2(s2)
            else:
                l2 = tl.log2(tl.where(row_mask, s, 1.0))

        acc += tl.where(row_mask, l2 * LN2, 0.0)

    block_sum = tl.sum(acc, axis=0)

    # cross-program mean: the last-arriving program sums the partials in a fixed order
    tl.store(partial_ptr + pid, block_sum)
    prev = tl.atomic_add(counter_ptr, 1, sem="acq_rel")
    if prev == num_progs - 1:
        offs_p = tl.arange(0, BLOCK_P)
        tot = tl.zeros((BLOCK_P,), dtype=tl.float32)
        for p0 in range(0, num_progs, BLOCK_P):
            idx = p0 + offs_p
            tot += tl.load(partial_ptr + idx, mask=idx < num_progs, other=0.0)
        tl.store(out_ptr, tl.sum(tot, axis=0) * inv_n)


class ModelNew(nn.Module):
    def __init__(self):
        super(ModelNew, self).__init__()

    def forward(self, predictions, targets):
        pred = predictions.contiguous()
        tgt = targets.contiguous()
        N, C = pred.shape

        BLOCK_C = min(triton.next_power_of_2(C), 8192)
        single = C <= BLOCK_C
        n_chunks = triton.cdiv(C, BLOCK_C)
        BLOCK_R = max(1, min(16, 8192 // BLOCK_C))
        R_ITERS = 8
        rows_per_prog = BLOCK_R * R_ITERS
        num_progs = triton.cdiv(N, rows_per_prog)
        BLOCK_P = min(4096, max(16, triton.next_power_of_2(num_progs)))
        num_warps = 8 if BLOCK_R * BLOCK_C >= 4096 else 4

        partials = torch.empty((num_progs,), device=pred.device, dtype=torch.float32)
        counter = torch.zeros((1,), device=pred.device, dtype=torch.int32)
        out = torch.empty((), device=pred.device, dtype=torch.float32)

        ce_tshift_lastblock_kernel[(num_progs,)](
            pred, tgt, partials, counter, out,
            N, C, pred.stride(0), 1.0 / N, num_progs, n_chunks,
            BLOCK_R=BLOCK_R, R_ITERS=R_ITERS, BLOCK_C=BLOCK_C, SINGLE_CHUNK=single,
            BLOCK_P=BLOCK_P, num_warps=num_warps,
        )
        return out.to(predictions.dtype)