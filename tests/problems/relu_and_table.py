import torch
import torch.nn as nn


class Model(nn.Module):
    """relu(x), and a lookup table the model holds (returned as is: the verifier must not overwrite it)."""

    def __init__(self, table_size):
        super().__init__()
        self.register_buffer("table", torch.randn(table_size))

    def forward(self, x):
        return torch.relu(x), self.table


batch_size = 4
dim = 300
table_size = 64


def get_inputs():
    return [torch.randn(batch_size, dim)]


def get_init_inputs():
    return [table_size]
