"""Several workers on one GPU (verify/gpu_share.py): jobs run beside each other within a share of the memory where
their problem's footprint allows, else alone; a job's timing always runs alone."""
from __future__ import annotations

import threading
import time

import pytest

from kernelsearch.verify.harness.memory import GiB
from kernelsearch.verify.pool.gpu_share import GpuShare

RELU = {"inputs": 6 * GiB, "outputs": 6 * GiB, "params": 0, "scratch": 0}  # 19_ReLU: 31 GiB with its answers
SMALL = {"inputs": GiB // 4, "outputs": GiB // 4, "params": 0, "scratch": 0}


def test_a_job_runs_beside_others_only_once_its_footprint_is_known_and_fits_a_share():
    share = GpuShare(workers=2, device_bytes=60 * GiB)
    assert share.budget_for("softmax") == 0  # not seen yet: alone
    share.learn("softmax", SMALL)
    assert share.budget_for("softmax") == 30 * GiB
    share.learn("relu", RELU)
    assert share.budget_for("relu") == 0  # 31 GiB does not fit 85 % of 30 GiB
    assert GpuShare(workers=2, device_bytes=80 * GiB).budget_for("relu") == 0  # not learned by that one
    assert GpuShare(workers=1, device_bytes=80 * GiB).budget_for("softmax") == 0


def test_jobs_beside_each_other_run_at_once_and_a_job_alone_waits_for_them():
    share = GpuShare(workers=2, device_bytes=80 * GiB)
    assert share.enter(alone=False, timeout_s=1) and share.enter(alone=False, timeout_s=1)
    assert not share.enter(alone=True, timeout_s=0.05)  # two jobs beside each other: no turn alone
    got = []
    waiter = threading.Thread(target=lambda: got.append(share.enter(alone=True, timeout_s=5)))
    waiter.start()
    time.sleep(0.1)
    assert not share.enter(alone=False, timeout_s=0.05)  # a job waiting to be alone keeps new ones out
    share.leave(alone=False)
    time.sleep(0.05)
    assert not got  # one job still beside
    share.leave(alone=False)
    waiter.join(5)
    assert got == [True]
    assert not share.enter(alone=False, timeout_s=0.05)  # the GPU is held alone
    share.leave(alone=True)
    assert share.enter(alone=False, timeout_s=1)


@pytest.mark.parametrize("first_alone", [True, False])
def test_a_turn_that_never_comes_ends_at_its_timeout(first_alone):
    share = GpuShare(workers=2, device_bytes=80 * GiB)
    assert share.enter(alone=first_alone, timeout_s=1)
    began = time.monotonic()
    assert not share.enter(alone=True, timeout_s=0.2)
    assert 0.15 < time.monotonic() - began < 2
    assert share.waiting_alone == 0  # the timed-out waiter no longer holds others back
    if not first_alone:
        assert share.enter(alone=False, timeout_s=0.2)
