"""Hack 5c: a custom operator added to a namespace torch owns (prims: torch.compile's decompositions live there;
torch.library.custom_op accepts the name)."""
import torch
import torch.nn as nn


@torch.library.custom_op("prims::add_relu", mutates_args=())
def add_relu(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return torch.relu(a + b)


class ModelNew(nn.Module):
    def forward(self, a, b):
        return add_relu(a, b)
