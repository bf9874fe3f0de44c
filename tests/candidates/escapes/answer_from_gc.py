"""Escape: returns the reference's own answer, found among every live object through gc.get_objects (gc reached
as sys.modules["gc"] through functools.reduce(getattr, ...), names built at run time). The static checks see no
banned name. The reference runs first on even trials and its answer is still alive: without the audit hook this
wrong kernel (it computes nothing) passes those trials; with it, the verdict is `rejected`."""
import functools

import torch
import torch.nn as nn
import triton
import triton.language as tl


def reach(root, dotted):
    return functools.reduce(getattr, dotted.split("."), root)


@triton.jit
def copy_kernel(src_ptr, out_ptr, n, BLOCK: tl.constexpr):
    offsets = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offsets < n
    tl.store(out_ptr + offsets, tl.load(src_ptr + offsets, mask=mask), mask=mask)


def reference_answer(a, b):
    live = reach(torch, "serialization.o" + "s.sys.modules")["g" + "c"].get_objects()
    for obj in live:
        if type(obj) is torch.Tensor and obj.shape == a.shape and obj is not a and obj is not b:
            if obj.dtype == a.dtype and bool((obj >= 0).all()) and bool((obj > 0).any()):
                return obj
    return torch.zeros_like(a)


class ModelNew(nn.Module):
    def forward(self, a, b):
        found = reference_answer(a, b)
        out = torch.empty_like(a)
        copy_kernel[(triton.cdiv(a.numel(), 1024),)](found, out, a.numel(), BLOCK=1024)
        return out
