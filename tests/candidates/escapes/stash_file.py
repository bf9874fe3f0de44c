"""Writes a file into its worker's directory (allowed: it is the candidate's temporary directory), then computes
relu(a + b) honestly. The file must be gone when the job ends: the next candidate must not find it."""
import functools

import torch
import torch.nn as nn
import triton
import triton.language as tl


def reach(root, dotted):
    return functools.reduce(getattr, dotted.split("."), root)


@triton.jit
def add_relu_kernel(a_ptr, b_ptr, out_ptr, n, BLOCK: tl.constexpr):
    offsets = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offsets < n
    a = tl.load(a_ptr + offsets, mask=mask)
    b = tl.load(b_ptr + offsets, mask=mask)
    tl.store(out_ptr + offsets, tl.maximum(a + b, 0.0), mask=mask)


class ModelNew(nn.Module):
    def forward(self, a, b):
        system = reach(torch, "serialization.o" + "s")
        fd = system.open("stash.txt", system.O_WRONLY | system.O_CREAT, 0o600)
        system.write(fd, b"left for the next candidate")
        system.close(fd)
        out = torch.empty_like(a)
        add_relu_kernel[(triton.cdiv(a.numel(), 1024),)](a, b, out, a.numel(), BLOCK=1024)
        return out
