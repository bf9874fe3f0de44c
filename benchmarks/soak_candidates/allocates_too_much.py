import torch
import torch.nn as nn
import triton
import triton.language as tl


@triton.jit
def add_relu_kernel(a_ptr, b_ptr, out_ptr, n, BLOCK: tl.constexpr):
    offsets = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offsets < n
    tl.store(out_ptr + offsets, tl.maximum(tl.load(a_ptr + offsets, mask=mask) + tl.load(b_ptr + offsets, mask=mask),
                                           0.0), mask=mask)


class ModelNew(nn.Module):
    """Right kernel, wrong workspace: asks for 64 GiB in one allocation, far past a CPU worker's 16 GiB
    address-space cap (PoolConfig.memory_limit_gb), so the allocation is refused before a page is touched."""

    def __init__(self):
        super().__init__()

    def forward(self, a, b):
        workspace = torch.empty(16 * 2**30, dtype=torch.float32, device=a.device)
        out = torch.empty_like(a)
        add_relu_kernel[(triton.cdiv(a.numel(), 256),)](a, b, out, a.numel(), BLOCK=256)
        return out + 0 * workspace[0]
