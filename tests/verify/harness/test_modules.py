"""Problems and candidates loaded as modules, and their models built from a seed (verify/modules.py); inputs
compared for in-place changes (verify/calls.py)."""
from __future__ import annotations

import pytest
import torch

from kernelsearch.verify.harness import modules
from kernelsearch.verify.harness.calls import same_values


class Wide(torch.nn.Module):
    def __init__(self, n: int):
        super().__init__()
        self.layer = torch.nn.Linear(n, n)


def test_a_model_s_parameters_are_counted_without_memory():
    assert modules.parameter_count(torch, Wide, [1 << 15]) == (1 << 30) + (1 << 15)  # 4 GiB that is never made
    assert modules.parameter_count(torch, lambda n: 1 / 0, [3]) == 0  # cannot be built: counted as small


def test_a_large_model_is_initialized_where_it_runs_and_a_small_one_on_the_cpu(monkeypatch):
    monkeypatch.setattr(modules, "ON_DEVICE_PARAMETERS", 100)
    made_on = []
    real_empty = torch.empty

    def empty(*args, **kwargs):  # what device the parameters are first made on (the default device's)
        made = real_empty(*args, **kwargs)
        made_on.append(made.device.type)
        return made

    monkeypatch.setattr(torch, "empty", empty)
    large = modules.build_model(torch, Wide, [16], seed=1, device="meta", dtype=torch.float32)
    assert large.layer.weight.device.type == "meta" and "meta" in made_on
    # a candidate class follows its problem's reference: built where the reference would be, whatever its size
    made_on.clear()
    follows = modules.build_model(torch, Wide, [4], seed=1, device="meta", dtype=torch.float32, like=Wide)
    assert follows.layer.weight.device.type == "meta"
    small = modules.build_model(torch, Wide, [4], seed=1, device="cpu", dtype=torch.float32)
    again = modules.build_model(torch, Wide, [4], seed=1, device="cpu", dtype=torch.float32)
    assert torch.equal(small.layer.weight, again.layer.weight)  # the seed decides the parameters


@pytest.mark.parametrize("a, b, same", [
    (torch.tensor([1.0, float("nan"), 3.0]), torch.tensor([1.0, float("nan"), 3.0]), True),
    (torch.tensor([1.0, 2.0]), torch.tensor([1.0, 2.5]), False),
    (torch.tensor([1.0, float("nan")]), torch.tensor([1.0, 2.0]), False),
    (torch.tensor([3, 4]), torch.tensor([3, 4]), True),
    (torch.tensor([1.0, 2.0]), torch.tensor([1.0, 2.0], dtype=torch.float64), False),
])
def test_inputs_left_as_they_were_compare_equal_with_nan_equal_to_nan(a, b, same):
    assert same_values(a, b) is same
