"""KernelBench L1 95_CrossEntropyLoss: F.cross_entropy(logits, targets), mean over the rows.

Kernel 1, one program per row: an online log-sum-exp over the classes (running max and rescaled sum per
lane), then loss = logsumexp - logits[target]; rows whose target is ignore_index (-100) count 0 and are left
out of the mean, as in PyTorch. Kernel 2: one program adds the row losses in a fixed order and divides by the
number of counted rows, so the result is deterministic. Each logit is read once.
"""
import torch
import torch.nn as nn
import triton
import triton.language as tl

BLOCK = 4096  # the problem's 4096 classes fit one block; longer rows loop
FINAL_BLOCK = 1024
IGNORE_INDEX = -100  # F.cross_entropy's default
START = -3.0e38  # finite start of the running max: masked lanes give exp(-inf - START) = 0, not NaN


@triton.jit
def row_loss_kernel(x_ptr, t_ptr, loss_ptr, valid_ptr, n_cols, ignore_index,
                    BLOCK: tl.constexpr, START: tl.constexpr):
    row = tl.program_id(0).to(tl.int64)
    row_start = row * n_cols
    lane = tl.arange(0, BLOCK)
    run_max = tl.full((BLOCK,), START, tl.float32)
    run_sum = tl.zeros((BLOCK,), tl.float32)
    for col in range(0, n_cols, BLOCK):
        cols = col + lane
        x = tl.load(x_ptr + row_start + cols, mask=cols < n_cols, other=-float("inf")).to(tl.float32)
        new_max = tl.maximum(run_max, x)
        run_sum = run_sum * tl.exp(run_max - new_max) + tl.exp(x - new_max)
        run_max = new_max
    row_max = tl.max(run_max, axis=0)
    log_sum_exp = row_max + tl.log(tl.sum(run_sum * tl.exp(run_max - row_max), axis=0))
    target = tl.load(t_ptr + row)
    valid = target != ignore_index
    safe_target = tl.where(valid, target, 0)
    target_logit = tl.load(x_ptr + row_start + safe_target).to(tl.float32)
    tl.store(loss_ptr + row, tl.where(valid, log_sum_exp - target_logit, 0.0))
    tl.store(valid_ptr + row, valid.to(tl.float32))


@triton.jit
def masked_mean_kernel(loss_ptr, valid_ptr, out_ptr, n, BLOCK: tl.constexpr):
    loss_acc = tl.zeros((BLOCK,), tl.float32)
    count_acc = tl.zeros((BLOCK,), tl.float32)
    for start in range(0, n, BLOCK):
        offs = start + tl.arange(0, BLOCK)
        mask = offs < n
        loss_acc += tl.load(loss_ptr + offs, mask=mask, other=0.0)
        count_acc += tl.load(valid_ptr + offs, mask=mask, other=0.0)
    mean = tl.sum(loss_acc, axis=0) / tl.sum(count_acc, axis=0)
    tl.store(out_ptr, mean.to(out_ptr.dtype.element_ty))


class ModelNew(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, predictions: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        x = predictions.contiguous()
        t = targets.contiguous()
        n_rows, n_cols = x.shape
        losses = torch.empty(n_rows, dtype=torch.float32, device=x.device)
        valid = torch.empty(n_rows, dtype=torch.float32, device=x.device)
        row_loss_kernel[(n_rows,)](x, t, losses, valid, n_cols, IGNORE_INDEX,
                                   BLOCK=BLOCK, START=START, num_warps=8)
        out = torch.empty((), dtype=x.dtype, device=x.device)
        masked_mean_kernel[(1,)](losses, valid, out, n_rows, BLOCK=FINAL_BLOCK, num_warps=4)
        return out
