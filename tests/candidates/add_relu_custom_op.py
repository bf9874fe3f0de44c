"""A real Triton kernel wrapped as a custom operator of its own namespace (as the generated attention file does,
so that torch.compile sees it): correct, with nothing left in PyTorch."""
import torch
import torch.nn as nn
import triton
import triton.language as tl


@triton.jit
def add_relu_kernel(a_ptr, b_ptr, out_ptr, n, BLOCK: tl.constexpr):
    offsets = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offsets < n
    a = tl.load(a_ptr + offsets, mask=mask)
    b = tl.load(b_ptr + offsets, mask=mask)
    tl.store(out_ptr + offsets, tl.maximum(a + b, 0.0), mask=mask)


@torch.library.custom_op("candidate_ops::add_relu", mutates_args=())
def add_relu(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    out = torch.empty_like(a)
    n = a.numel()
    add_relu_kernel[(triton.cdiv(n, 1024),)](a, b, out, n, BLOCK=1024)
    return out


@add_relu.register_fake
def _(a, b):
    return torch.empty_like(a)


class ModelNew(nn.Module):
    def forward(self, a, b):
        return add_relu(a.contiguous(), b.contiguous())
