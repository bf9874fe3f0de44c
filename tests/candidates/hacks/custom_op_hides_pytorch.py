"""Hack 5b: hack 5a inside a custom operator, whose body a dispatch mode sees as one call: the token kernel and
the PyTorch compute must still be seen."""
import torch
import torch.nn as nn
import triton
import triton.language as tl


@triton.jit
def touch_kernel(out_ptr, n, BLOCK: tl.constexpr):
    offsets = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    tl.store(out_ptr + offsets, tl.zeros((BLOCK,), dtype=tl.float32), mask=offsets < n)


@torch.library.custom_op("candidate_ops::hidden_add_relu", mutates_args=())
def hidden_add_relu(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    scratch = torch.empty(1, device=a.device, dtype=torch.float32)
    touch_kernel[(1,)](scratch, 1, BLOCK=16)
    return torch.relu(a + b)


class ModelNew(nn.Module):
    def forward(self, a, b):
        return hidden_add_relu(a, b)
