"""The arithmetic of timing that needs no GPU: a call's work for the roofline floor, and speedup intervals."""
from __future__ import annotations

import pytest
import torch

from kernelsearch.verify.timing import roofline_floor_ms, speedup, work_of_call


@pytest.mark.parametrize("batch, n_in, n_out", [(1, 7, 3), (33, 17, 129)])
def test_the_work_of_a_call_counts_its_flops_and_every_byte_once(batch, n_in, n_out):
    model = torch.nn.Linear(n_in, n_out)
    inputs = [torch.randn(batch, n_in)]
    flops, moved = work_of_call(model, inputs)
    assert flops == 2 * batch * n_in * n_out  # the matmul; the bias add is not counted by FlopCounterMode
    assert moved == 4 * (batch * n_in + batch * n_out + n_in * n_out + n_out)


def test_the_roofline_floor_is_the_slower_of_compute_and_memory():
    assert roofline_floor_ms(494e12, 0, "fp32", "NVIDIA H100 80GB HBM3") == pytest.approx(1e3)
    assert roofline_floor_ms(0, 3.35e12, "fp32", "NVIDIA H100 80GB HBM3") == pytest.approx(1e3)
    assert roofline_floor_ms(1.0, 1.0, "fp32", "some other GPU") is None


def test_a_speedup_comes_with_an_interval_around_it():
    base = [2.0 + 0.01 * (i % 7) for i in range(40)]
    new = [1.0 + 0.01 * (i % 5) for i in range(40)]
    point, low, high = speedup(base, new)
    assert low <= point <= high
    assert point == pytest.approx(2.03 / 1.02)
    assert high - low < 0.1
    noisy = [1.0 + 0.5 * (i % 2) for i in range(40)]  # a candidate whose times swing by half
    _, low_noisy, high_noisy = speedup(base, noisy)
    assert high_noisy - low_noisy > high - low
