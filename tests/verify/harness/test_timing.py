"""The arithmetic of timing that needs no GPU: a call's work for the roofline floor, and speedup intervals."""
from __future__ import annotations

import pytest
import torch

from kernelsearch.search.feedback import performance
from kernelsearch.verify.harness.gpu_timing import (Samples, narrow, peaks_of, roofline_floor_ms, speedup, summarize,
                                                    work_of_call)
from kernelsearch.verify.verdict import Timing, Verdict
from kernelsearch.verify.worker.timing_step import judge_floor


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


def test_rounds_stop_once_the_median_is_known_within_one_percent():
    steady = [0.050 + 0.0001 * (i % 5) for i in range(40)]
    assert narrow(steady)
    assert not narrow(steady[:9])  # too few calls to say
    swinging = [0.026 + 0.047 * (i % 2) for i in range(400)]  # the 20th-80th percentile span seen in the issue
    assert not narrow(swinging)


def test_a_call_whose_launch_outlasts_its_gpu_work_is_launch_bound():
    quick_kernel = summarize(Samples(gpu=[0.025] * 20, host=[0.045] * 20))
    assert quick_kernel["median_ms"] == pytest.approx(0.025) and quick_kernel["host_ms"] == pytest.approx(0.045)
    assert quick_kernel["launch_bound"]
    assert not summarize(Samples(gpu=[1.2] * 20, host=[0.04] * 20))["launch_bound"]
    timing = {"candidate": quick_kernel, "eager": summarize(Samples(gpu=[0.05] * 20, host=[0.01] * 20)),
              "speedup_vs_eager": 2.0}
    timed = Timing.of(timing)
    assert timed.launch_bound() and not timed.launch_bound("eager")
    assert "launch-bound: the host takes 0.045 ms" in timed.describe()
    assert Timing.of({"candidate": {"median_ms": 0.025}}).launch_bound() is False  # verdicts from before


def test_the_search_reads_a_measured_launch_bound_as_the_bound():
    verdict = Verdict(status="correct", message="", device="NVIDIA H100 80GB HBM3", kernel_launches=1,
                      timing={"candidate": summarize(Samples(gpu=[0.025] * 20, host=[0.045] * 20)),
                              "eager": summarize(Samples(gpu=[0.05] * 20, host=[0.01] * 20)),
                              "speedup_vs_eager": 2.0})
    found = performance(verdict, "fp32")
    assert found.bound == "launch"
    assert any("0.045 ms to launch one call" in line for line in found.lines)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_a_slow_launch_is_timed_apart_from_the_gpu_work_it_launches():
    import time as clock

    from kernelsearch.verify.harness.gpu_timing import time_interleaved

    torch.cuda._sleep(1000)
    x = torch.rand(1 << 20, device="cuda")

    def slow_to_launch(v):  # 2 ms of host work, then a kernel of a few microseconds
        clock.sleep(0.002)
        return v * 2

    samples = time_interleaved({"candidate": slow_to_launch, "eager": lambda v: v * 2}, [[x]], budget_s=0.5)
    slow, quick = summarize(samples["candidate"]), summarize(samples["eager"])
    assert slow["launch_bound"] and slow["host_ms"] > 1.9
    assert slow["median_ms"] < 0.5, slow  # the GPU's time, not the host's 2 ms
    assert slow["median_ms"] == pytest.approx(quick["median_ms"], rel=0.5, abs=0.01)


def test_a_device_the_table_lacks_gets_its_floor_from_its_measured_peaks():
    measured = {"bandwidth": 1e12, "flops": 100e12}  # a stand-in device profile
    assert roofline_floor_ms(0, 1.1e9, "fp32", "Some Future GPU", measured) == pytest.approx(1.0)
    assert roofline_floor_ms(110e9, 0, "bf16", "Some Future GPU", measured) == pytest.approx(1.0)
    # a listed device keeps its datasheet peaks where they are higher than it measured, and the measured elsewhere
    h100 = peaks_of("NVIDIA H100 80GB HBM3", {"bandwidth": 3.2e12, "flops": 1000e12})
    assert h100["bandwidth"] == pytest.approx(3.52e12) and h100["fp32"] == pytest.approx(1100e12)
    assert peaks_of("NVIDIA H100 80GB HBM3", {"bandwidth": 1e12, "flops": 1e12})["bf16"] == 989e12


def test_a_time_under_the_floor_is_suspicious_and_above_it_only_noted():
    measured = {"bandwidth": 1e12, "flops": 100e12}
    fast = judge_floor("Some Future GPU", "fp32", median=0.5, flops=0.0, bytes_moved=int(1.1e9), measured=measured)
    assert fast.outcome.status == "suspicious" and "under the 1 ms this GPU needs" in fast.outcome.message
    slow = judge_floor("Some Future GPU", "fp32", median=2.0, flops=0.0, bytes_moved=int(1.1e9), measured=measured)
    assert slow.outcome is None and slow.check == "roofline"
    assert slow.entry["floor_ms"] == pytest.approx(1.0) and "50.0% of the roofline" in slow.entry["note"]
    # no peaks known: nothing to say
    assert judge_floor("Some Future GPU", "fp32", median=2.0, flops=0.0, bytes_moved=int(1.1e9), measured=None) is None


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_the_marker_names_the_stream_calls_run_on_and_not_a_side_stream():
    from kernelsearch.verify.harness.gpu_kernels import current_stream_id, kernel_times

    x = torch.rand(1 << 16, device="cuda")
    side = torch.cuda.Stream()

    def on_a_side_stream(v):
        with torch.cuda.stream(side):
            return v * 3

    current = current_stream_id()
    assert current is not None
    assert kernel_times(lambda v: v * 2, [x])[1] == {current}  # the same id in another profiling session
    assert current not in kernel_times(on_a_side_stream, [x])[1]
