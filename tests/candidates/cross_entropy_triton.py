import torch
import torch.nn as nn
import triton
import triton.language as tl


@triton.jit
def cross_entropy_kernel(logits_ptr, targets_ptr, out_ptr, n_rows, n_classes,
                         BLOCK_R: tl.constexpr, BLOCK_C: tl.constexpr):
    cols = tl.arange(0, BLOCK_C)
    total = tl.zeros((BLOCK_R,), dtype=tl.float32)
    for start in range(0, n_rows, BLOCK_R):
        rows = start + tl.arange(0, BLOCK_R)
        row_ok = rows < n_rows
        mask = row_ok[:, None] & (cols[None, :] < n_classes)
        x = tl.load(logits_ptr + rows[:, None] * n_classes + cols[None, :], mask=mask, other=-float("inf"))
        x = x.to(tl.float32)
        m = tl.max(x, axis=1)
        m = tl.where(row_ok, m, 0.0)
        lse = tl.log(tl.sum(tl.exp(x - m[:, None]), axis=1)) + m
        target = tl.load(targets_ptr + rows, mask=row_ok, other=0)
        picked = tl.sum(tl.where(cols[None, :] == target[:, None], x, 0.0), axis=1)
        total += tl.where(row_ok, lse - picked, 0.0)
    tl.store(out_ptr, tl.sum(total, axis=0) / n_rows)


class ModelNew(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, predictions, targets):
        predictions = predictions.contiguous()
        rows, classes = predictions.shape
        out = torch.empty((), device=predictions.device, dtype=torch.float32)
        cross_entropy_kernel[(1,)](predictions, targets, out, rows, classes, BLOCK_R=16,
                                   BLOCK_C=triton.next_power_of_2(classes))
        return out.to(predictions.dtype)
