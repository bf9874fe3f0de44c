"""A job's timing step (verify/worker/timing_step.py) in the order it checks, with the GPU's parts stood in for (the
timer, the profiler, the measured peaks): what it finds, in order, and that it stops at the first outcome."""
from __future__ import annotations

import contextlib
from types import SimpleNamespace

import pytest
import torch

from kernelsearch.verify.harness import gpu_kernels
from kernelsearch.verify.harness.gpu_timing import Samples
from kernelsearch.verify.harness.memory import Footprint, MemoryPlan
from kernelsearch.verify.harness.stopwatch import Stopwatch
from kernelsearch.verify.verdict import FRESH_SEED, VerifyRequest
from kernelsearch.verify.worker import timing_step

CANDIDATE_MS, EAGER_MS = 0.5, 1.0


class StandInJob:
    """What time_candidate asks of its job, with the keeper's answer on the fresh inputs chosen by the test."""

    def __init__(self, fresh_ok: bool = True):
        self.req = VerifyRequest(problem_source="", candidate_source="", seed=42)
        self.plan = MemoryPlan(usable=1 << 30, footprint=Footprint(16, 16, 0, 0), timing_sets=2)
        self.calls = SimpleNamespace(inputs=lambda problem, seed: [torch.ones(4)])
        self.w = SimpleNamespace(compiled=SimpleNamespace(get=lambda *args: "unavailable: not compiled here"),
                                 info={"device_name": "Some Future GPU"})
        self.fresh_ok, self.judged, self.integrity_checked = fresh_ok, [], 0
        self.clock = Stopwatch()

    def baseline_key(self, problem) -> str:
        return "problem:fp32"

    def check_integrity(self) -> None:
        self.integrity_checked += 1

    def call_and_judge(self, model, problem, seed: int, kind: str) -> dict:
        self.judged.append((seed, kind))
        return {"ok": self.fresh_ok, "max_abs_err": 0.0 if self.fresh_ok else 3.0, "message": "42 elements wrong"}


@pytest.fixture
def stand_ins(monkeypatch):
    """The GPU's parts: a timer with fixed times, a profiler naming each function's streams, and measured peaks under
    which the candidate's 0.5 ms is possible: its 32 bytes (four floats in, four out) at 1 MB/s."""
    streams, profiled, times = {"candidate": {7}, "eager": {7}}, {}, {"candidate": CANDIDATE_MS, "eager": EAGER_MS}

    def time_interleaved(fns, sets):
        return {name: Samples(gpu=[times[name]] * 20, host=[0.01] * 20) for name in fns}

    def kernel_times(fn, inputs, calls):
        name = "candidate" if fn is MODEL_NEW else "eager"
        profiled[name] = calls
        return [{"name": f"{name}_kernel", "ms": 0.1, "calls": 1}], streams[name]

    monkeypatch.setattr(timing_step, "time_interleaved", time_interleaved)
    monkeypatch.setattr(timing_step, "kernel_times", kernel_times)
    monkeypatch.setattr(timing_step, "current_stream_id", lambda: 7)
    peaks = {"bandwidth": 1e6, "flops": 1e12}
    monkeypatch.setattr(timing_step, "measured_peaks", lambda: peaks)
    return SimpleNamespace(streams=streams, peaks=peaks, profiled=profiled, times=times)


REFERENCE = torch.nn.Identity()
MODEL_NEW = torch.nn.Identity()


def test_a_fast_honest_candidate_is_timed_rechecked_and_held_to_the_floor(stand_ins):
    job = StandInJob()
    timed = timing_step.time_candidate(job, None, REFERENCE, MODEL_NEW)
    assert [f.check for f in timed.found] == ["kernel_streams", "fresh_inputs_after_timing", "roofline"]
    assert all(f.outcome is None for f in timed.found)
    assert timed.timing["candidate"]["median_ms"] == CANDIDATE_MS and timed.timing["speedup_vs_eager"] == 2.0
    assert timed.timing["compile"] == "unavailable: not compiled here"
    assert "2 input set(s)" in timed.timing["method"] and "beside" not in timed.timing["method"]
    assert timed.timing["kernels"][0]["name"] == "candidate_kernel"
    assert job.judged == [(42 + FRESH_SEED, "fresh")] and job.integrity_checked == 1
    assert timed.found[-1].entry["floor_ms"] == pytest.approx(0.032 / 1.1)  # measured peaks count 10 % over
    assert {"kernel_profile", "fresh_check"} <= set(job.clock.spent)  # a slow timing step says which part was slow


def test_a_call_of_ten_ms_or_more_is_profiled_once_and_a_short_one_three_times(stand_ins):
    stand_ins.times["eager"] = 95.0  # L3 41_GRUBidirectional's cuDNN GRU
    timing_step.time_candidate(StandInJob(), None, REFERENCE, MODEL_NEW)
    assert stand_ins.profiled == {"candidate": gpu_kernels.PROFILED_CALLS, "eager": 1}


def test_kernels_on_another_stream_end_the_step_before_the_fresh_inputs(stand_ins):
    stand_ins.streams["candidate"] = {7, 13}
    job = StandInJob()
    timed = timing_step.time_candidate(job, None, REFERENCE, MODEL_NEW)
    assert [f.check for f in timed.found] == ["kernel_streams"]
    assert timed.found[0].outcome.status == "rejected" and "stream(s) [13]" in timed.found[0].outcome.message
    assert job.judged == []


def test_streams_the_reference_itself_runs_on_are_not_side_streams(stand_ins):
    # cuDNN's bidirectional GRU: the reference's kernels all on cuDNN's own streams, none on the one timed (7); the
    # pass-through candidate runs the same GRU and copies its output on the stream timed
    stand_ins.streams["eager"] = set(range(14, 26))
    stand_ins.streams["candidate"] = {7, *range(14, 26)}
    timed = timing_step.time_candidate(StandInJob(), None, REFERENCE, MODEL_NEW)
    assert timed.found[0].check == "kernel_streams" and timed.found[0].outcome is None
    stand_ins.streams["candidate"] = {7, 14, 30}  # a stream of its own, beside them
    timed = timing_step.time_candidate(StandInJob(), None, REFERENCE, MODEL_NEW)
    assert timed.found[0].outcome.status == "rejected" and "stream(s) [30]" in timed.found[0].outcome.message


def test_side_streams_are_judged_against_what_is_known():
    assert timing_step.side_streams({7, 13}, 7, set()) == {13}
    assert timing_step.side_streams({7, 13}, None, {7}) == {13}  # no marker: the reference's streams alone
    assert timing_step.side_streams({7, 13}, None, set()) == set()  # the profiler said nothing: nothing judged


def test_wrong_fresh_inputs_end_the_step_before_the_floor(stand_ins):
    job = StandInJob(fresh_ok=False)
    timed = timing_step.time_candidate(job, None, REFERENCE, MODEL_NEW, beside=True)
    assert [f.check for f in timed.found] == ["kernel_streams", "fresh_inputs_after_timing"]
    assert timed.found[-1].outcome.status == "incorrect" and "results cached?" in timed.found[-1].outcome.message
    assert timed.found[-1].entry == {"ok": False, "max_abs_err": 3.0}
    assert "beside another job on the GPU" in timed.timing["method"]


def test_a_time_under_the_floor_is_the_last_finding(stand_ins):
    stand_ins.peaks["bandwidth"] = 1e4  # 32 bytes now take 2.9 ms: the candidate's 0.5 ms cannot be
    timed = timing_step.time_candidate(StandInJob(), None, REFERENCE, MODEL_NEW)
    assert timed.found[-1].check == "roofline" and timed.found[-1].outcome.status == "suspicious"


SOURCE = '''
import triton

@triton.jit
def add_relu_kernel(x):
    pass
'''


class Profiler:
    def __init__(self, names, broken=False):
        self.names, self.broken = names, broken

    def events(self):
        if self.broken:
            raise RuntimeError("no trace")
        return [SimpleNamespace(name=name, device_type="DeviceType.CUDA") for name in self.names]


@pytest.mark.parametrize("ran, status", [(["add_relu_kernel_0d1d", "at::vectorized_elementwise"], None),
                                          (["ampere_sgemm_128x64_nn"], "rejected")])
def test_the_first_call_must_run_a_kernel_the_candidate_defines(ran, status):
    found = gpu_kernels.own_gpu_kernels(Profiler(ran), SOURCE)
    assert found.check == "gpu_kernels"
    assert (found.outcome.status if found.outcome else None) == status
    assert found.entry["own"] == (["add_relu_kernel_0d1d"] if status is None else [])


def test_a_profiler_that_cannot_be_read_costs_a_warning_not_the_verdict():
    found = gpu_kernels.own_gpu_kernels(Profiler([], broken=True), SOURCE)
    assert found.entry is None and found.outcome is None and "could not read the profiler" in found.warnings[0]


def test_the_compile_baseline_runs_in_the_default_stance_whatever_the_candidate_set(monkeypatch):
    # set_stance("force_eager") from a candidate would time the baseline as eager PyTorch
    entered = []

    @contextlib.contextmanager
    def set_stance(stance):
        entered.append(stance)
        yield

    monkeypatch.setattr(torch.compiler, "set_stance", set_stance, raising=False)
    monkeypatch.setattr(torch, "compile", lambda model: model)  # the wrapper, not Inductor, is under test
    monkeypatch.setattr(torch.cuda, "synchronize", lambda: None)
    baseline = timing_step.CompiledBaselines().get("problem:fp32", lambda x: x * 2, [torch.ones(2)])
    assert entered == ["default"]  # the compile-now call
    assert torch.equal(baseline(torch.ones(2)), torch.full((2,), 2.0)) and entered == ["default", "default"]

