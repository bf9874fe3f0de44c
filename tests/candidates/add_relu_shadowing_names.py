"""An honest add+relu written the way agents often write kernels: parameters and locals named after builtins
(`input`, `vars`, `compile`), and a self-test under a main guard that imports time and sys (it never runs on
import, so the static rules must not judge it)."""
import torch
import torch.nn as nn
import triton
import triton.language as tl


@triton.jit
def add_relu_kernel(input_ptr, other_ptr, out_ptr, n, BLOCK: tl.constexpr):
    offsets = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offsets < n
    input = tl.load(input_ptr + offsets, mask=mask)
    other = tl.load(other_ptr + offsets, mask=mask)
    tl.store(out_ptr + offsets, tl.maximum(input + other, 0.0), mask=mask)


def launch(input, other, compile=True):
    vars = input.numel()  # "vars" and "compile" are plain locals here
    out = torch.empty_like(input)
    if compile:
        add_relu_kernel[(triton.cdiv(vars, 1024),)](input, other, out, vars, BLOCK=1024)
    return out


class ModelNew(nn.Module):
    def forward(self, input, other):
        input, other = (tensor.contiguous() for tensor in (input, other))
        return launch(input, other)


if __name__ == "__main__":
    import sys
    import time

    a, b = torch.randn(4096), torch.randn(4096)
    start = time.perf_counter()
    ok = torch.allclose(ModelNew()(a, b), torch.relu(a + b))
    print(f"ok={ok} in {time.perf_counter() - start:.3f} s")
    sys.exit(0 if ok else 1)
