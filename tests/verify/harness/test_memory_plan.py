"""The verifier's memory: a plan from the problem's footprint, the problem's limit said with numbers, and the
reference's answers kept for the later candidates of the same problem."""
from __future__ import annotations

import pytest

from ...conftest import CANDIDATES, DEVICE, PROBLEMS
from kernelsearch.problem import load_problem
from kernelsearch.verify import PoolConfig, WorkerPool, make_request
from kernelsearch.verify.errors import Outcome
from kernelsearch.verify.harness.memory import (MAX_TIMING_SETS, VERIFIER_RESERVE, Footprint, GiB,
                                                answers_fit_on_device, one_trial, plan_memory)

# 19_ReLU at KernelBench's size: 6 GiB in, 6 GiB out.
RELU = Footprint(inputs=6 * GiB, outputs=6 * GiB, params=0, scratch=0)


def test_a_problem_that_fits_rotates_four_input_sets():
    plan = plan_memory(RELU, free_bytes=78 * GiB)
    assert plan.timing_sets == MAX_TIMING_SETS and "4 timing input set(s)" in plan.describe()


def test_a_tight_device_rotates_fewer_input_sets():
    trial = 4 * 6 * GiB + VERIFIER_RESERVE  # inputs and their copy, both outputs
    plan = plan_memory(RELU, free_bytes=int((trial + GiB) / 0.85))
    assert plan.timing_sets == 2  # (usable - outputs - reserve) // inputs
    assert "2 timing input set(s)" in plan.describe()


@pytest.mark.parametrize("footprint", [RELU, Footprint(inputs=GiB, outputs=GiB, params=20 * GiB, scratch=0),
                                       Footprint(inputs=GiB, outputs=GiB, params=0, scratch=15 * GiB)])
def test_a_problem_that_cannot_fit_is_the_problems_limit_with_its_numbers(footprint):
    with pytest.raises(Outcome) as caught:
        plan_memory(footprint, free_bytes=20 * GiB)
    assert caught.value.status == "problem_error"
    assert "does not fit this device" in caught.value.message and "usable" in caught.value.message


def test_memory_already_held_by_the_job_counts_as_usable():
    # What the worker holds when the plan is made is part of the need, not extra.
    assert plan_memory(RELU, free_bytes=20 * GiB, held_now=12 * GiB).usable == int(32 * GiB * 0.85)


def verify_with(budget_bytes: int, problem: str, candidate: str, **options):
    config = PoolConfig(device=DEVICE, extra_env={"KS_MEMORY_BUDGET_BYTES": str(budget_bytes)})
    with WorkerPool(config) as pool:
        loaded = load_problem(PROBLEMS / f"{problem}.py")
        source = (CANDIDATES / f"{candidate}.py").read_text()
        return pool.verify(make_request(loaded, source, candidate, timing=False, **options))


def test_an_artificial_budget_below_one_trial_is_a_problem_error_not_the_candidates():
    v = verify_with(VERIFIER_RESERVE // 2, "elementwise_add_relu", "add_relu_triton", trials=2)
    assert v.status == "problem_error", v.message
    assert "does not fit this device" in v.message and "inputs" in v.message


def test_an_artificial_budget_that_fits_is_planned_and_said():
    v = verify_with(4 * GiB, "elementwise_add_relu", "add_relu_triton", trials=2)
    assert v.status == "correct", v.message
    assert "usable" in v.memory and "timing input set(s)" in v.memory


def test_a_search_pays_for_the_reference_once(verify):
    first = verify("softmax", CANDIDATES / "softmax_triton.py", seed=777)
    again = verify("softmax", CANDIDATES / "softmax_triton.py", seed=777)
    assert first.status == again.status == "correct"
    assert first.reference_calls >= 5 and again.reference_calls < first.reference_calls
    if DEVICE == "cpu":  # on a GPU only answers costlier to recompute than to copy back are kept
        assert again.reference_calls == 0
    # the cached answers still judge: a wrong kernel on the same problem and seeds is caught
    wrong = verify("softmax", CANDIDATES / "add_relu_wrong_tail.py", seed=777)
    assert wrong.status != "correct"


def test_answers_from_the_cache_keep_what_the_reference_does_to_its_inputs(verify):
    # An in-place reference returns its input, changed: the candidate may do the same. The second job takes every
    # answer from the cache and runs no reference, so it must learn that from the cache too (it once did not, and
    # rejected the same honest kernel for "aliasing an input").
    first = verify("relu_in_place", CANDIDATES / "relu_in_place_triton.py", seed=555)
    again = verify("relu_in_place", CANDIDATES / "relu_in_place_triton.py", seed=555)
    assert first.status == "correct", first.message
    assert again.status == "correct", again.message
    if DEVICE == "cpu":
        assert again.reference_calls == 0


def test_answers_the_keeper_holds_on_the_device_count_in_the_plan():
    # Right after the keeper's prepare it holds the first two trials' answers on the device: one is the trial's own
    # (already in one_trial), the other is extra; they are usable memory, not gone.
    plan = plan_memory(RELU, free_bytes=60 * GiB, keeper_holds=12 * GiB)
    assert plan.usable == int(72 * GiB * 0.85)
    with pytest.raises(Outcome):  # 2 x 6 in, 2 x 6 out, one more answer, the reserve: 31 GiB
        plan_memory(RELU, free_bytes=int(31 * GiB / 0.85) - 12 * GiB - GiB, keeper_holds=12 * GiB)
    assert plan_memory(RELU, free_bytes=int(31.1 * GiB / 0.85) - 12 * GiB, keeper_holds=12 * GiB)


@pytest.mark.parametrize("free_gib, fits", [(78, True), (int(31 / 0.85) + 1, True), (int(31 / 0.85) - 1, False)])
def test_answers_stay_on_the_device_where_one_trial_and_one_more_answer_fit(free_gib, fits):
    assert answers_fit_on_device(RELU, free_gib * GiB) is fits
    assert one_trial(RELU) + RELU.outputs == 31 * GiB
