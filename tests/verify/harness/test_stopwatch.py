"""The verdict's step_s: seconds by step, a step inside another counted once."""
import time

from kernelsearch.verify.harness.stopwatch import Stopwatch


def test_inner_steps_are_left_out_of_the_outer_step_and_repeats_add_up():
    clock = Stopwatch()
    with clock("timing"):
        time.sleep(0.05)
        with clock("keeper"):
            time.sleep(0.1)
        with clock("keeper"):
            time.sleep(0.1)
    report = clock.report()
    assert list(report) == ["keeper", "timing"]  # the largest first
    assert 0.2 <= report["keeper"] < 0.3
    assert 0.05 <= report["timing"] < 0.1  # its own 0.05 s, not the 0.25 s it enclosed


def test_a_step_that_raises_is_still_counted():
    clock = Stopwatch()
    try:
        with clock("candidate"):
            time.sleep(0.02)
            raise RuntimeError("the candidate crashed")
    except RuntimeError:
        pass
    assert clock.report()["candidate"] >= 0.02 and clock._inner == []
