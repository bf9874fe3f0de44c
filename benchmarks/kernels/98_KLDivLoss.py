"""KernelBench L1 98_KLDivLoss: F.kl_div(log(predictions), targets, reduction='batchmean').

That is sum(targets * (log(targets) - log(predictions))) / rows, where a zero target contributes 0 (PyTorch
uses xlogy). Kernel 1: each program sums one block of elements into a partial; kernel 2: one program adds
the partials in a fixed order and divides by the row count, so the result is deterministic.
"""
import torch
import torch.nn as nn
import triton
import triton.language as tl

BLOCK = 4096
FINAL_BLOCK = 1024


@triton.jit
def kl_partial_kernel(p_ptr, t_ptr, partial_ptr, n, BLOCK: tl.constexpr):
    pid = tl.program_id(0)
    offs = pid.to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    p = tl.load(p_ptr + offs, mask=mask, other=1.0).to(tl.float32)
    t = tl.load(t_ptr + offs, mask=mask, other=0.0).to(tl.float32)
    # t * (log t - log p) in one product: the two logs are ~-9.7 at full size and nearly cancel, so
    # subtracting before multiplying keeps more digits than t*log(t) - t*log(p)
    # t = 0 gives 0 * log(p): 0, or NaN where p = 0 too, as PyTorch's xlogy(t, t) - t * log(p)
    safe_t = tl.where(t > 0, t, 1.0)
    term = tl.where(t > 0, t * (tl.log(safe_t) - tl.log(p)), 0.0 * tl.log(p))
    tl.store(partial_ptr + pid, tl.sum(tl.where(mask, term, 0.0), axis=0))


@triton.jit
def scaled_sum_kernel(partial_ptr, out_ptr, n_partials, scale, BLOCK: tl.constexpr):
    acc = tl.zeros((BLOCK,), tl.float32)
    for start in range(0, n_partials, BLOCK):
        offs = start + tl.arange(0, BLOCK)
        acc += tl.load(partial_ptr + offs, mask=offs < n_partials, other=0.0)
    tl.store(out_ptr, (tl.sum(acc, axis=0) * scale).to(out_ptr.dtype.element_ty))


class ModelNew(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, predictions: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        p = predictions.contiguous()
        t = targets.contiguous()
        n = p.numel()
        n_blocks = triton.cdiv(n, BLOCK)
        partials = torch.empty(n_blocks, dtype=torch.float32, device=p.device)
        kl_partial_kernel[(n_blocks,)](p, t, partials, n, BLOCK=BLOCK, num_warps=8)
        out = torch.empty((), dtype=p.dtype, device=p.device)
        scaled_sum_kernel[(1,)](partials, out, n_blocks, 1.0 / p.shape[0], BLOCK=FINAL_BLOCK, num_warps=4)
        return out
