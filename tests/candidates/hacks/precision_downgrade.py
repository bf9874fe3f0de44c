"""Hack 10: computes an fp32 problem in fp16."""
import torch
import torch.nn as nn
import triton
import triton.language as tl


@triton.jit
def add_relu_fp16_kernel(a_ptr, b_ptr, out_ptr, n, BLOCK: tl.constexpr):
    offsets = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offsets < n
    a = tl.load(a_ptr + offsets, mask=mask).to(tl.float16)
    b = tl.load(b_ptr + offsets, mask=mask).to(tl.float16)
    tl.store(out_ptr + offsets, tl.maximum(a + b, 0.0).to(tl.float32), mask=mask)


class ModelNew(nn.Module):
    def forward(self, a, b):
        out = torch.empty_like(a)
        add_relu_fp16_kernel[(triton.cdiv(a.numel(), 1024),)](a, b, out, a.numel(), BLOCK=1024)
        return out
