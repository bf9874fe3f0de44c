import torch
import torch.nn as nn
import torch.nn.functional as F
import triton
import triton.language as tl


@triton.jit
def relu_bias_kernel(x_ptr, bias_ptr, out_ptr, n, hw, channels, BLOCK: tl.constexpr):
    offsets = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offsets < n
    channel = (offsets // hw) % channels
    x = tl.load(x_ptr + offsets, mask=mask)
    b = tl.load(bias_ptr + channel, mask=mask)
    tl.store(out_ptr + offsets, tl.maximum(x, 0.0) + b, mask=mask)


class ModelNew(nn.Module):
    """The convolution stays in PyTorch (cuDNN); ReLU and the bias add are fused in one Triton kernel."""

    def __init__(self, in_channels, out_channels, kernel_size, bias_shape):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size)
        self.bias = nn.Parameter(torch.randn(bias_shape))

    def forward(self, x):
        y = F.conv2d(x, self.conv.weight, self.conv.bias).contiguous()
        out = torch.empty_like(y)
        n = y.numel()
        relu_bias_kernel[(triton.cdiv(n, 256),)](y, self.bias, out, n, y.shape[2] * y.shape[3], y.shape[1], BLOCK=256)
        return out
