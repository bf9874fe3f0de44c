import torch
import torch.nn as nn
import triton
import triton.language as tl


@triton.jit
def ce_persistent_exp2_kernel(pred_ptr, tgt_ptr, acc_ptr, cnt_ptr, ticket_ptr, out_ptr,
                              N, C, stride_row, ignore_index,
                              BLOCK_C: tl.constexpr):
    LOG2E: tl.constexpr = 1.4426950408889634
    LN2: tl.constexpr = 0.6931471805599453
    pid = tl.program_id(0)
    nprog = tl.num_programs(0)
    offs = tl.arange(0, BLOCK_C)
    zero_vec = tl.zeros([BLOCK_C], dtype=tl.float32)
    loss_acc = tl.sum(zero_vec, axis=0)
    cnt_acc = tl.sum(zero_vec, axis=0)
    for row in range(pid, N, nprog):
        row_ptr = pred_ptr + row.to(tl.int64) * stride_row
        t = tl.load(tgt_ptr + row).to(tl.int32)

        mask = offs < C
        x = tl.load(row_ptr + offs, mask=mask, other=float("-inf")).to(tl.float32)
        x_t = tl.sum(tl.where(offs == t, x, 0.0), axis=0)
        y = x * LOG2E
        m = tl.max(y, axis=0)
        s = tl.sum(tl.exp2(y - m), axis=0)
        for start in range(BLOCK_C, C, BLOCK_C):
            cols = start + offs
            mask = cols < C
            x = tl.load(row_ptr + cols, mask=mask, other=float("-inf")).to(tl.float32)
            x_t += tl.sum(tl.where(cols == t, x, 0.0), axis=0)
            y = x * LOG2E
            m_new = tl.maximum(m, tl.max(y, axis=0))
            s = s * tl.exp2(m - m_new) + tl.sum(tl.exp2(y - m_new), axis=0)
            m = m_new
        lse = (m + tl.log2(s)) * LN2

        valid = t != ignore_index
        loss_acc += tl.where(valid, lse - x_t, 0.0)
        cnt_acc += tl.where(valid, 1.0, 0.0)

    tl.atomic_add(acc_ptr, loss_acc)
    tl.atomic_add(cnt_ptr, cnt_acc)
    ticket = tl.atomic_add(ticket_ptr, 1)
    is_last = ticket == nprog - 1
    total = tl.atomic_add(acc_ptr, 0.0, mask=is_last)
    count = tl.atomic_add(cnt_ptr, 0.0, mask=is_last)
    tl.store(out_ptr, total / count, mask=is_last)


def _num_sms(device):
    if device.type == "cuda":
        return torch.cuda.get_device_properties(device).multi_processor_count
    return 132  # H100 SXM


class ModelNew(nn.Module):
    def __init__(self):
        super(ModelNew, self).__init__()
        self.ignore_index = -100

    def forward(self, predictions, targets):
        pred = predictions.contiguous()
        tgt = targets.contiguous()
        N, C = pred.shape
        dev = pred.device

        acc = torch.zeros(2, dtype=torch.float32, device=dev)   # [loss_sum, count]
        ticket = torch.zeros(1, dtype=torch.int32, device=dev)
        out = torch.empty((), dtype=torch.float32, device=dev)

        BLOCK_C = min(triton.next_power_of_2(C), 8192)
        if BLOCK_C >= 8192:
            nw = 16
        elif BLOCK_C >= 4096:
            nw = 8
        elif BLOCK_C >= 1024:
            nw = 4
        else:
            nw = 2
        ctas_per_sm = max(1, min(16, 64 // nw))   # 64 resident warps per SM
        grid = (max(1, min(N, _num_sms(dev) * ctas_per_sm)),)
        ce_persistent_exp2_kernel[grid](pred, tgt, acc, acc[1:], ticket, out,
                                        N, C, pred.stride(0), self.ignore_index,
                                        BLOCK_C=BLOCK_C, num_warps=nw)
        return out