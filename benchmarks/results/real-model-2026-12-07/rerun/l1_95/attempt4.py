import torch
import torch.nn as nn
import triton
import triton.language as tl


@triton.jit
def ce_exp2_kernel(pred_ptr, tgt_ptr, out_ptr, N, C, stride_row, inv_n,
                   ROWS: tl.constexpr, BLOCK_C: tl.constexpr):
    LOG2E: tl.constexpr = 1.4426950408889634
    LN2: tl.constexpr = 0.6931471805599453
    pid = tl.program_id(0)
    offs = tl.arange(0, BLOCK_C)
    total = 0.0
    for i in range(0, ROWS):
        row = pid * ROWS + i
        row_ok = row < N
        row_c = tl.minimum(row, N - 1)
        row_ptr = pred_ptr + row_c.to(tl.int64) * stride_row

        # target logit (base-2 scaled), issued before the row stream
        t = tl.load(tgt_ptr + row_c)
        y_t = tl.load(row_ptr + t).to(tl.float32) * LOG2E

        m = float("-inf")
        s = 0.0
        for c0 in range(0, C, BLOCK_C):
            cols = c0 + offs
            mask = cols < C
            y = tl.load(row_ptr + cols, mask=mask, other=float("-inf")).to(tl.float32) * LOG2E
            m_new = tl.maximum(m, tl.max(y, axis=0))
            s = s * tl.exp2(m - m_new) + tl.sum(tl.exp2(y - m_new), axis=0)
            m = m_new

        loss_row = ((m - y_t) + tl.log2(s)) * LN2
        total += tl.where(row_ok, loss_row, 0.0)

    tl.atomic_add(out_ptr, total * inv_n)


class ModelNew(nn.Module):
    def __init__(self):
        super(ModelNew, self).__init__()

    def forward(self, predictions, targets):
        pred = predictions.contiguous()
        tgt = targets.contiguous()
        N, C = pred.shape

        out = torch.zeros((), device=pred.device, dtype=torch.float32)

        BLOCK_C = min(triton.next_power_of_2(C), 8192)
        num_warps = 8 if BLOCK_C >= 2048 else 4
        ROWS = 8
        grid = (triton.cdiv(N, ROWS),)
        ce_exp2_kernel[grid](pred, tgt, out, N, C, pred.stride(0), 1.0 / N,
                             ROWS=ROWS, BLOCK_C=BLOCK_C, num_warps=num_warps)
        return out.to(predictions.dtype)