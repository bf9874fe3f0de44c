"""Shared fixtures: one warm CPU worker pool for the whole session (the interpreter runs the kernels)."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from kernelsearch.problem import load_problem
from kernelsearch.verify import PoolConfig, WorkerPool, make_request

HERE = Path(__file__).parent
REPO = HERE.parent
PROBLEMS = HERE / "problems"
CANDIDATES = HERE / "candidates"
HACKS = CANDIDATES / "hacks"
# KS_TEST_DEVICE=cuda runs the same suite on a GPU (benchmarks/gpu_suite.sh does, on the device machine).
DEVICE = os.environ.get("KS_TEST_DEVICE", "cpu")
ON_GPU = DEVICE == "cuda"


@pytest.fixture(scope="session")
def pool():
    # Short limits: every test candidate finishes in seconds, and the hang test waits for the run limit.
    with WorkerPool(PoolConfig(device=DEVICE, compile_timeout_s=300, run_timeout_s=15)) as p:
        yield p


@pytest.fixture(scope="session")
def verify(pool):
    def run(problem: str, candidate: Path | str, overrides: dict | None = None, **options):
        loaded = load_problem(PROBLEMS / f"{problem}.py", overrides)
        path = Path(candidate)
        options.setdefault("timing", False)  # timing has tests of its own; it costs seconds per candidate on a GPU
        return pool.verify(make_request(loaded, path.read_text(), path.stem, **options))

    return run
