import torch
import torch.nn as nn


class Model(nn.Module):
    """Softmax over a wide row: every output is ~1/dim, below KernelBench's atol of 1e-4."""

    def __init__(self):
        super().__init__()

    def forward(self, x):
        return torch.softmax(x, dim=1)


batch_size = 2
dim = 20000


def get_inputs():
    return [torch.rand(batch_size, dim)]


def get_init_inputs():
    return []
